/** A token bucket: `ratePerSec` tokens refill continuously up to `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private ratePerSec: number,
    private burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes `n` tokens (one by default); false, taking none, when the bucket holds fewer. */
  take(now = Date.now(), n = 1): boolean {
    if (this.ratePerSec <= 0) return true;
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSec) / 1000);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

/** Per-key token buckets (e.g. handshakes per client address), forgetting idle keys. */
export class KeyedLimiter {
  private buckets = new Map<string, TokenBucket>();
  private sweep = 0;
  constructor(
    private ratePerSec: number,
    private burst: number,
  ) {}

  take(key: string, now = Date.now()): boolean {
    if (this.ratePerSec <= 0) return true;
    if (++this.sweep % 1000 === 0 || this.buckets.size > 100000) this.buckets.clear();
    let b = this.buckets.get(key);
    if (!b) {
      b = new TokenBucket(this.ratePerSec, this.burst, now);
      this.buckets.set(key, b);
    }
    return b.take(now);
  }
}
