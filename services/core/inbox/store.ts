/** Durable per-user inboxes (PROTOCOL.md, Direct messages and the offline inbox): the types and the store interface. */

/** What an inbox holds: a direct message between users, or a backend publish to a user. */
export type InboxMessage =
  | { kind: 'direct'; from: string; text?: string; data?: unknown; timestamp: number; traceparent?: string }
  | { kind: 'publish'; event: string; data: unknown; publishId: string; timestamp: number; traceparent?: string };

/** A stored message with its inbox id, as `queued-messages` carries it. */
export type QueuedMessage = { id: string } & Record<string, unknown>;

/** The shape clients receive (live or replayed): the id first, no internal fields. */
export function clientView(id: string, m: InboxMessage): QueuedMessage {
  if (m.kind === 'direct') return { id, from: m.from, text: m.text, data: m.data, timestamp: m.timestamp };
  return { id, event: m.event, data: m.data, publishId: m.publishId, timestamp: m.timestamp };
}

export interface InboxOptions {
  maxLen: number;
  /** Bytes kept per inbox (the messages' JSON), next to `maxLen`. */
  maxBytes: number;
  maxAgeMs: number;
  dedupWindowMs: number;
}

/** Durable per-user inboxes (PROTOCOL.md, Direct messages and the offline inbox). */
export interface InboxStore {
  /** Appends (once per `dedupId` when given: a publish id within its scope, keys.ts scopedPublishId); resolves once durable in the store. */
  append(nsp: string, userId: string, m: InboxMessage, dedupId?: string): Promise<{ id: string; appended: boolean }>;
  /** Moves the acknowledged position forward (never back, never past the newest message); returns the position. */
  ack(nsp: string, userId: string, upTo: string): Promise<string>;
  /** The acknowledged position, or null. */
  position(nsp: string, userId: string): Promise<string | null>;
  /** Messages strictly after `after` ('0-0' = from the start), oldest first. */
  range(nsp: string, userId: string, after: string, count: number): Promise<Array<{ id: string; message: InboxMessage }>>;
  /** Drops messages older than the retention age from every inbox; returns how many, and what is left. */
  trimByAge(now: number): Promise<number>;
  /** What the last retention pass saw: inbox streams and messages held. */
  lastDepth(): { streams: number; messages: number };
}

/** The next stream id after `id` (XRANGE is inclusive). */
export function nextId(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${BigInt(seq) + 1n}`;
}

/** Compares two stream ids. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}
