import { KeyedLimiter, TokenBucket } from '../../services/gateway/rate-limit';

/** How many of `n` takes at time `t` succeed. */
const takes = (b: { take(now: number): boolean }, n: number, t: number) =>
  Array.from({ length: n }, () => b.take(t)).filter(Boolean).length;

describe('TokenBucket', () => {
  const T0 = 1_000_000;

  test('starts full: a burst of `burst` events passes, the next one is refused', () => {
    const b = new TokenBucket(5, 10, T0);
    expect(takes(b, 10, T0)).toBe(10);
    expect(b.take(T0)).toBe(false);
    expect(b.take(T0)).toBe(false);
  });

  test('refills continuously at `ratePerSec`', () => {
    const b = new TokenBucket(10, 10, T0);
    expect(takes(b, 10, T0)).toBe(10);
    expect(b.take(T0 + 50)).toBe(false); // half a token
    expect(b.take(T0 + 100)).toBe(true); // one token after 100 ms at 10/s
    expect(b.take(T0 + 100)).toBe(false);
    expect(takes(b, 10, T0 + 600)).toBe(5); // 500 ms more: 5 tokens
  });

  test('never holds more than `burst` tokens however long it idles', () => {
    const b = new TokenBucket(100, 3, T0);
    expect(takes(b, 3, T0)).toBe(3);
    expect(takes(b, 10, T0 + 3_600_000)).toBe(3);
  });

  test('a sustained rate at the refill rate is allowed indefinitely', () => {
    const b = new TokenBucket(5, 1, T0);
    for (let i = 0; i < 100; i++) expect(b.take(T0 + i * 200)).toBe(true);
    expect(b.take(T0 + 99 * 200 + 100)).toBe(false);
  });

  test('a clock going backwards does not mint tokens', () => {
    const b = new TokenBucket(10, 2, T0);
    expect(takes(b, 2, T0)).toBe(2);
    expect(b.take(T0 - 10_000)).toBe(false);
    expect(b.take(T0 - 10_000)).toBe(false);
  });

  test('rate 0 means no limit', () => {
    const b = new TokenBucket(0, 1, T0);
    expect(takes(b, 1000, T0)).toBe(1000);
  });

  test('uses the real clock by default', () => {
    const b = new TokenBucket(1, 1);
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
  });
});

describe('KeyedLimiter', () => {
  const T0 = 5_000_000;

  test('each key has its own bucket', () => {
    const l = new KeyedLimiter(1, 2);
    expect(takes({ take: (t) => l.take('10.0.0.1', t) }, 5, T0)).toBe(2);
    expect(takes({ take: (t) => l.take('10.0.0.2', t) }, 5, T0)).toBe(2);
    expect(l.take('10.0.0.1', T0 + 1000)).toBe(true);
    expect(l.take('10.0.0.1', T0 + 1000)).toBe(false);
  });

  test('rate 0 never refuses', () => {
    const l = new KeyedLimiter(0, 1);
    for (let i = 0; i < 50; i++) expect(l.take('k', T0)).toBe(true);
  });

  test('forgets keys periodically so memory stays bounded (a forgotten key starts with a full bucket)', () => {
    const l = new KeyedLimiter(1, 1);
    expect(l.take('a', T0)).toBe(true);
    expect(l.take('a', T0)).toBe(false);
    // many distinct keys (e.g. a scan from many addresses) trigger a sweep
    for (let i = 0; i < 1000; i++) l.take(`k${i}`, T0);
    expect(l.take('a', T0)).toBe(true);
  });
});
