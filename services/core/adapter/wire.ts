/**
 * What a room broadcast looks like in Redis: one text, the same in the room's stream (field `m`)
 * and on its live channel (prefixed by the entry id), with the routing and telemetry fields first,
 * each on its own line, so a pod decides and measures without decoding the payload:
 *
 *   <enc>\n<origin ms>\n<kind>\n<traceparent>\n<except JSON or empty>\n<payload>
 *
 * `enc` is `j` (payload = JSON of the packet's data array, `[event, ...args]`) or `b` (msgpack of
 * it, base64: the packet carries binary). Empty fields are empty lines. User ids, room ids and
 * traceparents never contain a newline; JSON and base64 never do either.
 */
import { decode, encode } from '@msgpack/msgpack';
import * as WebSocket from 'ws';

export interface Body {
  enc: 'j' | 'b';
  ts: number;
  kind: string;
  tp: string;
  except: string[];
  payload: string;
}

/** True when a value holds binary data (a Buffer, an ArrayBuffer or a typed array), at any depth. */
export function hasBinary(v: unknown, depth = 0): boolean {
  if (!v || typeof v !== 'object' || depth > 64) return false;
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return true;
  if (Array.isArray(v)) return v.some((x) => hasBinary(x, depth + 1));
  for (const k in v) if (hasBinary((v as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
}

/** The body text of a broadcast of `data` (`[event, ...args]`). */
export function encodeBody(data: unknown[], meta: { ts?: number; kind?: string; tp?: string; except?: string[] }): string {
  const binary = hasBinary(data);
  const payload = binary ? Buffer.from(encode(data)).toString('base64') : JSON.stringify(data);
  const except = meta.except?.length ? JSON.stringify(meta.except) : '';
  return `${binary ? 'b' : 'j'}\n${meta.ts ?? ''}\n${meta.kind ?? ''}\n${meta.tp ?? ''}\n${except}\n${payload}`;
}

/** Splits a body into its fields; null when it is not one of ours. */
export function parseBody(text: string): Body | null {
  let at = 0;
  const fields: string[] = [];
  for (let i = 0; i < 5; i++) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) return null;
    fields.push(text.slice(at, nl));
    at = nl + 1;
  }
  const [enc, ts, kind, tp, except] = fields;
  if (enc !== 'j' && enc !== 'b') return null;
  let ex: string[] = [];
  if (except) {
    try {
      ex = JSON.parse(except) as string[];
    } catch {
      return null;
    }
  }
  return { enc, ts: ts ? Number(ts) : 0, kind, tp, except: ex, payload: text.slice(at) };
}

/** The packet data (`[event, ...args]`) of a body. */
export function bodyData(b: Body): unknown[] {
  return b.enc === 'j' ? (JSON.parse(b.payload) as unknown[]) : (decode(Buffer.from(b.payload, 'base64')) as unknown[]);
}

/**
 * The Socket.IO EVENT packet (as socket.io-parser writes it) of a JSON payload, with `offset`
 * appended as its last argument, built from the payload text without decoding it.
 */
const frameOf = (WebSocket as unknown as { Sender?: { frame?(data: Buffer, o: object): Buffer[] } }).Sender?.frame;

/**
 * The websocket frame of a one-string Engine.IO message, built once for all the recipients of a
 * broadcast and handed to each connection in the packet options (what socket.io-adapter's
 * `_encode` does for its own broadcasts; engine.io sends it as is to websocket connections without
 * per-message deflate, and encodes as usual for the others). Without it every websocket recipient
 * converts the string to bytes and builds its own frame.
 */
export function preEncodeFrame(encoded: unknown[], opts: { wsPreEncodedFrame?: unknown }): void {
  if (!frameOf || encoded.length !== 1 || typeof encoded[0] !== 'string') return;
  opts.wsPreEncodedFrame = frameOf(Buffer.from('4' + encoded[0]), { readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true });
}

export function eventFrame(nsp: string, jsonPayload: string, offset: string | undefined): string {
  const head = nsp === '/' ? '2' : `2${nsp},`;
  if (offset === undefined) return head + jsonPayload;
  return `${head}${jsonPayload.slice(0, -1)},${JSON.stringify(offset)}]`;
}
