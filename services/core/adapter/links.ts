/**
 * A process's live feed of one shard: one subscriber connection (sharded pub/sub) to the Redis
 * node that holds the shard's slot, subscribed to the channels of the rooms this process has
 * members in, plus the process's barrier channel on the shard. Messages on one connection arrive
 * in the order they were published, and nothing is lost while it stays up: so a link that goes
 * down tells its owner at once (before anything published after the break can arrive), and comes
 * back up only once every wanted channel is subscribed again; the owner then fills the gap.
 */
import Redis, { Cluster, RedisOptions } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import type { Logger } from '../platform/logger';
import { retryDelay, type RedisClient } from '../redis/client';
import { coalesceWrites } from '../redis/coalesce';

export interface LinkEvents {
  /** A message on one of the link's channels. */
  message(channel: string, payload: string): void;
  /** The connection broke: messages may be missed from now until `up`. */
  down(): void;
  /** Connected again with every wanted channel subscribed. */
  up(): void;
  /** `channel` is subscribed on the current connection now (its subscription took effect). */
  subscribed?(channel: string): void;
}

/** Where a shard's node is: the node of a standalone Redis, or the master of the slot on a cluster. */
export function nodeOptions(url: string, command: RedisClient, slotKey: string): RedisOptions | null {
  const u = new URL(url);
  const auth = { username: u.username || undefined, password: u.password ? decodeURIComponent(u.password) : undefined };
  const tls = u.protocol === 'rediss:' ? {} : undefined;
  if (!(command instanceof Cluster)) {
    const db = Number(u.pathname.slice(1) || 0);
    return { host: u.hostname, port: Number(u.port || 6379), db, tls, ...auth };
  }
  const owner = (command as unknown as { slots: string[][] }).slots[calculateSlot(slotKey)]?.[0];
  if (!owner) return null;
  const sep = owner.lastIndexOf(':');
  return { host: owner.slice(0, sep), port: Number(owner.slice(sep + 1)), tls, ...auth };
}

/** The client to send a node-bound command (PUBSUB) for `slotKey` to: the slot's master on a cluster. */
export function clientForSlot(command: RedisClient, slotKey: string): RedisClient {
  if (!(command instanceof Cluster)) return command;
  const owner = (command as unknown as { slots: string[][] }).slots[calculateSlot(slotKey)]?.[0];
  return command.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner) ?? command;
}

export class ShardLink {
  private conn?: Redis;
  /** Channels this link should be subscribed to. */
  private wanted = new Set<string>();
  /** Channels subscribed on the current connection. */
  private active = new Set<string>();
  private waiting = new Map<string, Array<() => void>>();
  private attempts = 0;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  isUp = false;
  /** Counts the connections that came up: a barrier sent on one is answered on that one only. */
  generation = 0;

  constructor(
    readonly shard: number,
    private where: () => RedisOptions | null,
    private events: LinkEvents,
    private logger: Logger,
    private name: string,
  ) {}

  start(): void {
    this.connect();
  }

  /** Resolves once every channel is subscribed on the live connection. */
  subscribe(channels: string[]): Promise<void> {
    const fresh = channels.filter((c) => !this.wanted.has(c));
    for (const c of fresh) this.wanted.add(c);
    const pending = channels.filter((c) => !this.active.has(c));
    if (!pending.length) return Promise.resolve();
    const done = Promise.all(pending.map((c) => new Promise<void>((r) => this.waiting.set(c, [...(this.waiting.get(c) ?? []), r]))));
    if (this.isUp && fresh.length) this.send(fresh);
    return done.then(() => undefined);
  }

  unsubscribe(channels: string[]): void {
    const gone = channels.filter((c) => this.wanted.delete(c));
    if (!gone.length || !this.conn || !this.isUp) return;
    for (const c of gone) this.active.delete(c);
    this.conn.sunsubscribe(...gone).catch(() => undefined);
  }

  /** True while `channel` is subscribed on the live connection: everything published to it from now on arrives here. */
  isActive(channel: string): boolean {
    return this.isUp && this.active.has(channel);
  }

  /** Channels wanted now (the owner's bookkeeping of rooms per shard reads it). */
  channels(): ReadonlySet<string> {
    return this.wanted;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.conn?.disconnect();
  }

  /** Drops the connection (a health check found it silent): down now, then reconnects. */
  restart(): void {
    this.conn?.disconnect();
  }

  private send(channels: string[]): void {
    const conn = this.conn!;
    conn.ssubscribe(...channels).then(
      () => {
        if (conn !== this.conn) return;
        for (const c of channels) if (this.wanted.has(c)) this.confirm(c);
      },
      (e: Error) => {
        this.logger.warn({ link: this.name, err: e.message }, 'sharded subscribe failed; reconnecting the link');
        if (conn === this.conn) conn.disconnect();
      },
    );
  }

  private confirm(c: string): void {
    this.active.add(c);
    this.events.subscribed?.(c);
    const w = this.waiting.get(c);
    this.waiting.delete(c);
    for (const r of w ?? []) r();
  }

  private connect(): void {
    if (this.stopped) return;
    const opts = this.where();
    // The cluster's slot map is not known yet (its client is still starting): look again soon.
    if (!opts) return void (this.timer = setTimeout(() => this.connect(), 100).unref());
    const conn = coalesceWrites(
      new Redis({
        ...opts,
        retryStrategy: () => null,
        maxRetriesPerRequest: 1,
        connectionName: `rtg-${this.name}`,
        lazyConnect: false,
      }),
    );
    this.conn = conn;
    conn.on('error', () => undefined);
    conn.on('smessage', (channel: string, payload: string) => {
      if (conn === this.conn) this.events.message(channel, payload);
    });
    conn.once('ready', () => {
      if (conn !== this.conn) return;
      this.attempts = 0;
      const all = [...this.wanted];
      const subscribed = all.length ? conn.ssubscribe(...all) : Promise.resolve(0);
      subscribed.then(
        () => {
          if (conn !== this.conn) return;
          for (const c of all) if (this.wanted.has(c)) this.confirm(c);
          this.generation++;
          this.isUp = true;
          this.events.up();
        },
        () => conn.disconnect(),
      );
    });
    conn.once('close', () => {
      if (conn !== this.conn) return;
      const wasUp = this.isUp;
      this.isUp = false;
      this.active.clear();
      if (wasUp) this.events.down();
      this.retry();
    });
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.connect(), retryDelay(++this.attempts)).unref();
  }
}
