import { z } from 'zod';
import {
  adminBroadcastSchema,
  adminDisconnectSchema,
  directMessageSchema,
  eventNameSchema,
  inboxAckSchema,
  messageSchema,
  MAX_DATA_DEPTH,
  nestedDeeperThan,
  payloadBytes,
  roomIdSchema,
  streamIdSchema,
  userIdListSchema,
  userIdSchema,
  zodMessage,
} from '../../services/core/schemas';

/** The one-line message a client would get in its `bad_request` answer. */
function rejects(schema: z.ZodTypeAny, value: unknown): string {
  const r = schema.safeParse(value);
  if (r.success) throw new Error(`expected ${JSON.stringify(value)} to be rejected`);
  const msg = zodMessage(r.error);
  expect(msg.length).toBeGreaterThan(0);
  expect(msg).not.toContain('\n');
  return msg;
}
const accepts = (schema: z.ZodTypeAny, value: unknown) => {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`expected ${JSON.stringify(value)} to be accepted: ${zodMessage(r.error)}`);
  return r.data;
};

describe('ids and names', () => {
  test('roomIdSchema', () => {
    for (const ok of ['a', 'lobby', 'team-1.a:b_c', 'x'.repeat(128)]) expect(accepts(roomIdSchema, ok)).toBe(ok);
    expect(rejects(roomIdSchema, 'has space')).toBe('room ids are 1-128 chars of [A-Za-z0-9_.:-]');
    expect(rejects(roomIdSchema, '')).toBe('room ids are 1-128 chars of [A-Za-z0-9_.:-]');
    expect(rejects(roomIdSchema, 'x'.repeat(129))).toBe('room ids are 1-128 chars of [A-Za-z0-9_.:-]');
    expect(rejects(roomIdSchema, 42)).toMatch(/Expected string, received number/);
    expect(rejects(roomIdSchema, undefined)).toMatch(/Required/);
  });

  test('userIdSchema', () => {
    expect(accepts(userIdSchema, 'bob@example.com')).toBe('bob@example.com');
    expect(rejects(userIdSchema, 'a b')).toBe('user ids are 1-255 printable ASCII characters, no spaces, "#", "{" or "}"');
    expect(rejects(userIdSchema, null)).toMatch(/Expected string, received null/);
  });

  test('eventNameSchema refuses Socket.IO reserved names and odd characters', () => {
    for (const ok of ['notice', 'chat:message', 'a.b-c_d', 'x'.repeat(64)]) expect(accepts(eventNameSchema, ok)).toBe(ok);
    for (const reserved of ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener', 'error']) {
      expect(rejects(eventNameSchema, reserved)).toBe('reserved event name');
    }
    for (const bad of ['', 'has space', 'x'.repeat(65), 'a/b'])
      expect(rejects(eventNameSchema, bad)).toBe('event names are 1-64 chars of [A-Za-z0-9_.:-]');
  });

  test('streamIdSchema', () => {
    for (const ok of ['1700000000000-0', '0-1', '1-18446744073709551615']) expect(accepts(streamIdSchema, ok)).toBe(ok);
    for (const bad of ['1700000000000', '-0', 'abc-1', '1-2-3', '$', '>', '1700000000000-0 ', 17]) rejects(streamIdSchema, bad);
    expect(rejects(streamIdSchema, 'latest')).toBe('a message id like "1700000000000-0"');
  });
});

describe('messageSchema', () => {
  test('accepts one room or a list, with optional text/data/flags', () => {
    expect(accepts(messageSchema, { roomId: 'lobby', text: 'hi' })).toEqual({ roomId: 'lobby', text: 'hi' });
    expect(accepts(messageSchema, { roomIds: ['a', 'b'], data: { n: [1, 2] }, exceptSender: true, volatile: false })).toMatchObject({
      roomIds: ['a', 'b'],
    });
    expect(accepts(messageSchema, { roomId: 'lobby' })).toEqual({ roomId: 'lobby' });
    expect(accepts(messageSchema, { roomId: 'lobby', data: null })).toEqual({ roomId: 'lobby', data: null });
    expect(accepts(messageSchema, { roomIds: Array.from({ length: 50 }, (_, i) => `r${i}`) }).roomIds).toHaveLength(50);
  });

  test('rejects with a message naming the problem', () => {
    expect(rejects(messageSchema, { text: 'nowhere' })).toBe('give exactly one of roomId or roomIds');
    expect(rejects(messageSchema, { roomId: 'a', roomIds: ['b'] })).toBe('give exactly one of roomId or roomIds');
    expect(rejects(messageSchema, { roomId: 'a', extra: 1 })).toMatch(/Unrecognized key.*extra/);
    expect(rejects(messageSchema, { roomId: 'bad room' })).toBe('roomId: room ids are 1-128 chars of [A-Za-z0-9_.:-]');
    expect(rejects(messageSchema, { roomIds: ['ok', 'bad room'] })).toBe('roomIds.1: room ids are 1-128 chars of [A-Za-z0-9_.:-]');
    expect(rejects(messageSchema, { roomIds: [] })).toMatch(/^roomIds: .*at least 1/);
    expect(rejects(messageSchema, { roomIds: Array.from({ length: 1001 }, (_, i) => `r${i}`) })).toMatch(/^roomIds: .*at most 1000/);
    expect(rejects(messageSchema, { roomId: 'a', text: 5 })).toMatch(/^text: Expected string, received number/);
    expect(rejects(messageSchema, { roomId: 'a', exceptSender: 'yes' })).toMatch(/^exceptSender: Expected boolean/);
    expect(rejects(messageSchema, { roomId: 'a', volatile: 1 })).toMatch(/^volatile: Expected boolean/);
    for (const notObject of ['lobby', 42, null, undefined, ['lobby'], true]) rejects(messageSchema, notObject);
    expect(rejects(messageSchema, 'lobby')).toMatch(/Expected object, received string/);
  });
});

describe('presence, direct messages, inbox', () => {
  test('userIdListSchema: up to 1000 valid ids', () => {
    expect(accepts(userIdListSchema, [])).toEqual([]);
    expect(accepts(userIdListSchema, ['a', 'b@c'])).toEqual(['a', 'b@c']);
    expect(
      accepts(
        userIdListSchema,
        Array.from({ length: 1000 }, (_, i) => `u${i}`),
      ),
    ).toHaveLength(1000);
    expect(
      rejects(
        userIdListSchema,
        Array.from({ length: 1001 }, (_, i) => `u${i}`),
      ),
    ).toBe('at most 1000 user ids');
    expect(rejects(userIdListSchema, ['ok', 'not ok'])).toBe(
      '1: user ids are 1-255 printable ASCII characters, no spaces, "#", "{" or "}"',
    );
    expect(rejects(userIdListSchema, 'alice')).toMatch(/Expected array, received string/);
    expect(rejects(userIdListSchema, [1])).toBe('0: Expected string, received number');
    expect(rejects(userIdListSchema, ['a', ['b']])).toBe('1: Expected string, received array');
    expect(rejects(userIdListSchema, null)).toBe('Expected array, received null');
    expect(rejects(userIdListSchema, { 0: 'a', length: 1 })).toBe('Expected array, received object');
    expect(rejects(userIdListSchema, ['a', 'x'.repeat(256)])).toBe(
      '1: user ids are 1-255 printable ASCII characters, no spaces, "#", "{" or "}"',
    );
  });

  test('directMessageSchema', () => {
    expect(accepts(directMessageSchema, { toUserId: 'bob', text: 'hi', data: { x: 1 } })).toEqual({
      toUserId: 'bob',
      text: 'hi',
      data: { x: 1 },
    });
    expect(accepts(directMessageSchema, { toUserId: 'bob' })).toEqual({ toUserId: 'bob' });
    expect(rejects(directMessageSchema, { text: 'hi' })).toMatch(/^toUserId: Required/);
    expect(rejects(directMessageSchema, { toUserId: 'b o b' })).toBe(
      'toUserId: user ids are 1-255 printable ASCII characters, no spaces, "#", "{" or "}"',
    );
    expect(rejects(directMessageSchema, { toUserId: 'bob', roomId: 'x' })).toMatch(/Unrecognized key.*roomId/);
    expect(rejects(directMessageSchema, { toUserId: 'bob', text: ['a'] })).toMatch(/^text: Expected string/);
  });

  test('inboxAckSchema', () => {
    expect(accepts(inboxAckSchema, { upTo: '1700000000000-3' })).toEqual({ upTo: '1700000000000-3' });
    expect(rejects(inboxAckSchema, { upTo: 'last' })).toBe('upTo: a message id like "1700000000000-0"');
    expect(rejects(inboxAckSchema, {})).toMatch(/^upTo: Required/);
    expect(rejects(inboxAckSchema, { upTo: '1-0', more: true })).toMatch(/Unrecognized key/);
  });
});

describe('admin schemas', () => {
  test('adminBroadcastSchema: defaults timeoutMs to 5000 and checks every field', () => {
    expect(accepts(adminBroadcastSchema, { event: 'notice', data: { a: 1 } })).toEqual({
      event: 'notice',
      data: { a: 1 },
      timeoutMs: 5000,
    });
    expect(
      accepts(adminBroadcastSchema, { namespace: '/workspace-acme', room: 'lobby', event: 'n', data: null, timeoutMs: 10 }),
    ).toMatchObject({ namespace: '/workspace-acme', timeoutMs: 10 });
    expect(accepts(adminBroadcastSchema, { namespace: '/', event: 'n', data: 1, timeoutMs: 60000 }).timeoutMs).toBe(60000);
    expect(rejects(adminBroadcastSchema, { data: 1 })).toMatch(/^event: Required/);
    expect(rejects(adminBroadcastSchema, { event: 'disconnect', data: 1 })).toBe('event: reserved event name');
    expect(rejects(adminBroadcastSchema, { event: 'n', data: 1, timeoutMs: 5 })).toMatch(/^timeoutMs: .*10/);
    expect(rejects(adminBroadcastSchema, { event: 'n', data: 1, timeoutMs: 60001 })).toMatch(/^timeoutMs: .*60000/);
    expect(rejects(adminBroadcastSchema, { event: 'n', data: 1, timeoutMs: 1.5 })).toMatch(/^timeoutMs: .*integer/);
    expect(rejects(adminBroadcastSchema, { event: 'n', data: 1, timeoutMs: '100' })).toMatch(/^timeoutMs: Expected number/);
    expect(rejects(adminBroadcastSchema, { event: 'n', data: 1, namespace: 'workspace-a' })).toMatch(/^namespace: /);
    expect(rejects(adminBroadcastSchema, { event: 'n', data: 1, room: 'bad room' })).toMatch(/^room: room ids/);
    expect(rejects(adminBroadcastSchema, { event: 'n', data: 1, rooms: ['a'] })).toMatch(/Unrecognized key/);
    expect(rejects(adminBroadcastSchema, 'notice')).toMatch(/Expected object/);
  });

  test('adminDisconnectSchema', () => {
    expect(accepts(adminDisconnectSchema, { userId: 'alice' })).toEqual({ userId: 'alice' });
    expect(rejects(adminDisconnectSchema, {})).toMatch(/^userId: Required/);
    expect(rejects(adminDisconnectSchema, { userId: '' })).toBe(
      'userId: user ids are 1-255 printable ASCII characters, no spaces, "#", "{" or "}"',
    );
    expect(rejects(adminDisconnectSchema, 'alice')).toMatch(/Expected object/);
  });
});

describe('zodMessage and payloadBytes', () => {
  test('zodMessage formats the first issue with its path, or a fallback', () => {
    expect(zodMessage(new z.ZodError([]))).toBe('invalid payload');
    const r = z.object({ a: z.object({ b: z.number() }) }).safeParse({ a: { b: 'x' } });
    expect(r.success).toBe(false);
    if (!r.success) expect(zodMessage(r.error)).toBe('a.b: Expected number, received string');
  });

  test('payloadBytes counts UTF-8 text bytes plus JSON bytes of data', () => {
    expect(payloadBytes(undefined, undefined)).toBe(0);
    expect(payloadBytes('abc', undefined)).toBe(3);
    expect(payloadBytes('é', undefined)).toBe(2);
    expect(payloadBytes(undefined, { a: 1 })).toBe(JSON.stringify({ a: 1 }).length);
    expect(payloadBytes('ab', [1, 2])).toBe(2 + 5);
    expect(payloadBytes(undefined, null)).toBe(4);
    expect(payloadBytes(42, undefined)).toBe(0); // non-string text is caught by the schema, not counted
  });

  test('payloadBytes makes unserialisable data infinitely large (answered too_large, never a crash)', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(payloadBytes(undefined, circular)).toBe(Infinity);
    expect(payloadBytes(undefined, { n: BigInt(1) })).toBe(Infinity);
  });
});

describe('data nesting depth', () => {
  const nested = (levels: number, leaf: unknown = 1): unknown => {
    let v = leaf;
    for (let i = 0; i < levels; i++) v = i % 2 ? { k: v } : [v];
    return v;
  };

  test('nestedDeeperThan counts objects and arrays; primitives and binary values are leaves', () => {
    expect(nestedDeeperThan(1, 0)).toBe(false);
    expect(nestedDeeperThan(null, 0)).toBe(false);
    expect(nestedDeeperThan([], 0)).toBe(true);
    expect(nestedDeeperThan([], 1)).toBe(false);
    expect(nestedDeeperThan(nested(5), 5)).toBe(false);
    expect(nestedDeeperThan(nested(6), 5)).toBe(true);
    expect(nestedDeeperThan(nested(5, Buffer.from('x')), 5)).toBe(false);
    expect(nestedDeeperThan(nested(5, new Uint8Array(3)), 5)).toBe(false);
    expect(nestedDeeperThan(nested(5, new ArrayBuffer(3)), 5)).toBe(false);
    expect(nestedDeeperThan({ wide: Array.from({ length: 1000 }, () => ({ a: [1] })) }, 4)).toBe(false);
    expect(nestedDeeperThan({ a: 1, b: { c: [{ d: [] }] } }, 4)).toBe(true);
  });

  test('payloadBytes refuses data nested deeper than MAX_DATA_DEPTH with bad_request, binary or not', () => {
    expect(MAX_DATA_DEPTH).toBe(32);
    expect(payloadBytes(undefined, nested(32))).toBe(JSON.stringify(nested(32)).length);
    for (const data of [nested(33), nested(101, Buffer.from([1])), { a: nested(32) }])
      expect(() => payloadBytes('text', data)).toThrow(
        expect.objectContaining({ code: 'bad_request', message: 'data: nested deeper than 32 levels' }),
      );
    expect(payloadBytes(nested(100) as never, undefined)).toBe(0); // text is not data
  });
});
