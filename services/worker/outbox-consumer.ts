import type { Server } from 'socket.io';
import type { Config } from '../core/platform/config';
import type { InboxStore } from '../core/inbox/store';
import type { Keys } from '../core/redis/keys';
import type { Logger } from '../core/platform/logger';
import type { Metrics } from '../core/platform/metrics';
import { decodeEntry, deliver, Publish } from '../core/outbox/publish';
import type { RedisClient } from '../core/redis/client';
import { contextFrom, inSpan, SpanKind } from '../core/platform/telemetry';

export const GROUP = 'workers';
const BLOCK_MS = 2000;

type Entry = [id: string, fields: string[]];

/**
 * Drains the outbox with a consumer group, in the manner of Centrifugo's redisqueue: tolerates
 * BUSYGROUP, blocks at most 2 s so shutdown is prompt, XACKs only after delivery, reclaims
 * entries idle past the visibility timeout with XAUTOCLAIM (a dead worker's work is taken
 * over), moves an entry to the dead-letter stream after N attempts, and bounds in-flight work.
 * Shutdown order: stop reading, finish in-flight deliveries (bounded), return.
 */
export class OutboxConsumer {
  private running = false;
  private loop?: Promise<void>;
  private inflight = new Set<Promise<void>>();
  private inflightIds = new Set<string>();
  private lastClaim = 0;
  /** Last delivery error per entry id, recorded for the dead-letter stream. */
  private errors = new Map<string, string>();

  constructor(
    private redis: RedisClient,
    /** A blocking connection of its own: XREADGROUP BLOCK must not hold up other commands. */
    private reader: RedisClient,
    private io: Server,
    private inbox: InboxStore,
    private keys: Keys,
    private cfg: Config,
    private logger: Logger,
    private metrics: Metrics,
    private onDelivered?: (p: Publish, entryId: string) => void,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops reading, then waits for in-flight deliveries (at most `timeoutMs`). */
  async stop(timeoutMs: number): Promise<void> {
    this.running = false;
    await Promise.race([this.loop, sleep(timeoutMs)]);
    await Promise.race([Promise.allSettled([...this.inflight]), sleep(timeoutMs)]);
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.keys.outbox().stream, GROUP, '0', 'MKSTREAM');
    } catch (e) {
      if (!/BUSYGROUP/.test((e as Error).message)) throw e;
    }
  }

  private async run(): Promise<void> {
    let backoff = 100;
    let grouped = false;
    while (this.running) {
      try {
        if (this.redis.status !== 'ready' || this.reader.status !== 'ready') {
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 2000);
          continue;
        }
        if (!grouped) {
          await this.ensureGroup();
          grouped = true;
        }
        const room = this.cfg.workerConcurrency - this.inflight.size;
        if (room <= 0) {
          await Promise.race(this.inflight);
          continue;
        }
        if (Date.now() - this.lastClaim > Math.min(this.cfg.workerVisibilityTimeoutMs / 2, 5000)) {
          this.lastClaim = Date.now();
          await this.claim(room);
          continue;
        }
        const res = (await this.reader.xreadgroup(
          'GROUP',
          GROUP,
          this.cfg.podName,
          'COUNT',
          room,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.keys.outbox().stream,
          '>',
        )) as [string, Entry[]][] | null;
        for (const [, entries] of res ?? []) for (const e of entries) this.dispatch(e, 1);
        backoff = 100;
      } catch (e) {
        const msg = (e as Error).message ?? String(e);
        if (/NOGROUP/.test(msg)) grouped = false;
        this.metrics.redisErrors.inc({ op: 'outbox_read' });
        this.logger.warn({ err: msg, stream: this.keys.outbox().stream }, 'outbox read failed; backing off');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  /** Takes over entries idle past the visibility timeout (from dead or slow workers). */
  private async claim(count: number): Promise<void> {
    const stream = this.keys.outbox().stream;
    const res = (await this.redis.xautoclaim(
      stream,
      GROUP,
      this.cfg.podName,
      this.cfg.workerVisibilityTimeoutMs,
      '0-0',
      'COUNT',
      count,
    )) as [string, Entry[], string[]?];
    const entries = (res[1] ?? []).filter((e) => e && e[1] && !this.inflightIds.has(e[0]));
    if (!entries.length) return;
    // The delivery counter (XPENDING) says how many times each was handed out, this claim included.
    const pending = (await this.redis.xpending(stream, GROUP, entries[0][0], entries[entries.length - 1][0], entries.length * 4)) as [
      string,
      string,
      number,
      number,
    ][];
    const counts = new Map(pending.map(([id, , , n]) => [id, Number(n)]));
    this.logger.info({ stream, claimed: entries.length }, 'claimed idle outbox entries');
    for (const e of entries) this.dispatch(e, counts.get(e[0]) ?? 2);
  }

  private dispatch(entry: Entry, attempt: number): void {
    const id = entry[0];
    this.inflightIds.add(id);
    const p = this.handle(entry, attempt)
      .catch((e) => this.logger.error({ err: (e as Error).message, id }, 'outbox handler failed'))
      .finally(() => {
        this.inflight.delete(p);
        this.inflightIds.delete(id);
      });
    this.inflight.add(p);
  }

  private async handle([id, fields]: Entry, attempt: number): Promise<void> {
    const k = this.keys.outbox();
    if (attempt > this.cfg.workerMaxAttempts) {
      const reason = this.errors.get(id) ?? 'failed on another worker (or the worker died while delivering)';
      const dead = await this.redis.outboxDeadLetter(k.stream, k.dead, GROUP, id, attempt - 1, reason.slice(0, 500));
      this.errors.delete(id);
      if (dead) {
        this.metrics.deadLetters.inc();
        this.logger.warn({ stream: k.stream, id, attempts: attempt - 1, err: reason }, 'outbox entry moved to the dead-letter stream');
      }
      return;
    }
    try {
      const p = decodeEntry(id, fields, this.cfg);
      // The publish's trace continues here (its traceparent rode in the entry) and on through the adapter.
      await inSpan(
        'outbox deliver',
        {
          kind: SpanKind.CONSUMER,
          parent: contextFrom(p.traceparent),
          attributes: {
            'messaging.system': 'redis-streams',
            'messaging.message.id': id,
            'realtime.target': p.target.kind,
            'realtime.attempt': attempt,
          },
        },
        () => deliver(this.io, this.inbox, p, this.metrics),
      );
      // Acknowledge only after delivery; then the entry has no further use.
      await this.redis.multi().xack(k.stream, GROUP, id).xdel(k.stream, id).exec();
      this.errors.delete(id);
      this.onDelivered?.(p, id);
    } catch (e) {
      // Left pending: retried after the visibility timeout, dead-lettered after N attempts.
      const msg = (e as Error).message ?? String(e);
      this.errors.set(id, msg);
      if (this.errors.size > 10000) this.errors.clear();
      this.metrics.deliveryFailures.inc();
      this.logger.warn({ stream: k.stream, id, attempt, err: msg }, 'outbox delivery failed; will retry');
    }
  }

  /** Queue gauges: length, lag, pending, oldest pending age, dead letters. */
  async collect(): Promise<void> {
    const k = this.keys.outbox();
    const [len, dead, groups, summary] = await Promise.all([
      this.redis.xlen(k.stream),
      this.redis.xlen(k.dead),
      this.redis.xinfo('GROUPS', k.stream).catch(() => []) as Promise<unknown[]>,
      this.redis.xpending(k.stream, GROUP).catch(() => null) as Promise<[number, string | null, string | null, unknown] | null>,
    ]);
    this.metrics.outboxLength.set(len);
    this.metrics.deadLetterLength.set(dead);
    for (const g of groups as unknown[][]) {
      const m = new Map<string, unknown>();
      for (let i = 0; i + 1 < g.length; i += 2) m.set(String(g[i]), g[i + 1]);
      if (m.get('name') === GROUP) {
        this.metrics.outboxLag.set(Number(m.get('lag') ?? 0) || 0);
      }
    }
    const pending = summary ? Number(summary[0]) : 0;
    this.metrics.outboxPending.set(pending);
    const oldest = summary?.[1];
    this.metrics.outboxOldestPendingAge.set(pending && oldest ? Math.max(0, (Date.now() - Number(oldest.split('-')[0])) / 1000) : 0);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
