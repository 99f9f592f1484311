import {
  DIRECT_SCOPE,
  isReservedRoom,
  isValidRoomId,
  isValidUserId,
  Keys,
  RESERVED_ROOM_PREFIXES,
  scopedPublishId,
  userRoom,
} from '../../services/core/redis/keys';

/** The Redis Cluster hash tags of a key: every `{...}` section (only the first one counts for slotting). */
const tags = (key: string) => [...key.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);

describe('Keys', () => {
  const keys = new Keys('rtg');

  test('room keys: both hashes share exactly one hash tag naming namespace and room', () => {
    const k = keys.room('/', 'lobby');
    expect(k).toEqual({ sockets: 'rtg:room:{/|lobby}:sockets', users: 'rtg:room:{/|lobby}:users' });
    expect(tags(k.sockets)).toEqual(['/|lobby']);
    expect(tags(k.users)).toEqual(['/|lobby']);
    const w = keys.room('/workspace-acme', 'a:b.c-d_e');
    expect(tags(w.sockets)).toEqual(['/workspace-acme|a:b.c-d_e']);
    expect(tags(w.users)).toEqual(tags(w.sockets));
    // the same room in another namespace is another key (and another slot)
    expect(keys.room('/workspace-acme', 'lobby').sockets).not.toBe(k.sockets);
  });

  test('room keys validate the namespace and room id before building a key', () => {
    for (const room of ['', 'has space', 'x'.repeat(129), 'a}b', 'a{b', 'a\nb', 'ü'])
      expect(() => keys.room('/', room)).toThrow(/invalid room id for a Redis key/);
    for (const nsp of ['', 'admin', '/a b', '/a}', '/' + 'x'.repeat(129), '/a/b'])
      expect(() => keys.room(nsp, 'lobby')).toThrow(/invalid namespace for a Redis key/);
    expect(() => keys.room('/', 'x'.repeat(128))).not.toThrow();
    expect(() => keys.room('/' + 'x'.repeat(128), 'lobby')).not.toThrow();
    expect(() => keys.room('/', 'bad room')).toThrow(TypeError);
  });

  test('the error message quotes a bounded prefix of the bad value', () => {
    try {
      keys.room('/', 'bad room ' + 'x'.repeat(500));
      throw new Error('expected a throw');
    } catch (e) {
      expect((e as Error).message.length).toBeLessThan(160);
    }
  });

  test('pod room keys validate the pod name and use it as the hash tag', () => {
    expect(keys.podRooms('gw-0.example')).toBe('rtg:pod:{gw-0.example}:rooms');
    expect(tags(keys.podRooms('gw-0'))).toEqual(['gw-0']);
    for (const pod of ['', 'a b', 'a}b', 'x'.repeat(301)]) expect(() => keys.podRooms(pod)).toThrow(/invalid pod name/);
  });

  test('presence hash and view of a user share one hash tag; bulk views validate every id', () => {
    expect(keys.presence('/', 'alice')).toBe('rtg:presence:{/|alice}');
    expect(keys.presenceView('/', 'alice')).toBe('rtg:presence-view:{/|alice}');
    expect(tags(keys.presenceView('/workspace-a', 'b@c'))).toEqual(tags(keys.presence('/workspace-a', 'b@c')));
    expect(keys.presenceViews('/', ['a', 'b'])).toEqual(['rtg:presence-view:{/|a}', 'rtg:presence-view:{/|b}']);
    expect(keys.presenceViews('/', [])).toEqual([]);
    expect(() => keys.presenceViews('/', ['a', 'b}c'])).toThrow(/invalid user id for a Redis key/);
    expect(() => keys.presenceViews('nsp', ['a'])).toThrow(/invalid namespace for a Redis key/);
  });

  test('every key starts with the configured prefix', () => {
    const k = new Keys('tenant.1');
    const all = [k.adapterStream(), k.sessionPrefix(), k.channelPrefix(), k.pods(), k.podRooms('p'), ...Object.values(k.room('/', 'r'))];
    for (const key of all) expect(key.startsWith('tenant.1:')).toBe(true);
    expect(k.adapterStream()).toBe('tenant.1:adapter');
    expect(k.sessionPrefix()).toBe('tenant.1:session:');
    expect(k.channelPrefix()).toBe('tenant.1:sio');
    expect(k.pods()).toBe('tenant.1:pods');
  });
});

describe('ids and reserved rooms', () => {
  test('room ids: 1-128 chars of [A-Za-z0-9_.:-]', () => {
    for (const ok of ['a', 'lobby', 'team-1', 'a.b:c_d-e', 'x'.repeat(128)]) expect(isValidRoomId(ok)).toBe(true);
    for (const bad of ['', 'x'.repeat(129), 'a b', 'a/b', 'a@b', 'é', 42, null, undefined, ['a'], { a: 1 }])
      expect(isValidRoomId(bad)).toBe(false);
  });

  test('user ids also allow @', () => {
    // identity providers' subjects (OpenID Connect: up to 255 ASCII characters)
    for (const ok of [
      'alice',
      'bob@example.com',
      'svc:worker-1',
      'auth0|5f1e2d',
      'google-oauth2|1098',
      'a/b',
      'x'.repeat(255),
      'https://idp.example/u?id=1&x=~!$%',
    ])
      expect(isValidUserId(ok)).toBe(true);
    // no spaces or control characters, no hash tag braces, no "#" (counter fields), no non-ASCII
    for (const bad of ['', 'x'.repeat(256), 'a b', 'a\tb', 'a\nb', 'a{b', 'a}b', '#count', 'José', 7, null, undefined])
      expect(isValidUserId(bad)).toBe(false);
    // a valid id always makes a key with exactly one hash tag
    expect(new Keys('rtg').presence('/', 'auth0|x').match(/\{[^}]*\}/g)).toEqual(['{/|auth0|x}']);
  });

  test('user:, presence: and _ prefixes are reserved; look-alikes are not', () => {
    expect(RESERVED_ROOM_PREFIXES).toEqual(['user:', 'presence:', '_']);
    for (const r of ['user:alice', 'user:', 'presence:bob', '_internal', '_']) expect(isReservedRoom(r)).toBe(true);
    for (const r of ['user', 'users:alice', 'userx:alice', 'presence', 'a_b', 'lobby', 'User:alice']) expect(isReservedRoom(r)).toBe(false);
  });

  test("a user's private room is reserved", () => {
    expect(userRoom('alice')).toBe('user:alice');
    expect(isReservedRoom(userRoom('alice'))).toBe(true);
  });
});

describe('publish id scopes', () => {
  const keys = new Keys('rtg');
  test('idempotency and inbox de-duplication keys carry the scope; ids of two scopes never share a key', () => {
    expect(scopedPublishId('0a1b2c3d4e5f', 'order-1')).toBe('0a1b2c3d4e5f:order-1');
    expect(keys.outbox().idem('0a1b2c3d4e5f', 'order-1')).toBe('rtg:{outbox}:idem:0a1b2c3d4e5f:order-1');
    expect(keys.outbox().idem(DIRECT_SCOPE, 'order-1')).toBe('rtg:{outbox}:idem:direct:order-1');
    expect(keys.inbox('/', 'alice').dedup(scopedPublishId(DIRECT_SCOPE, 'a:b'))).toBe('rtg:inbox:{/|alice}:pub:direct:a:b');
    expect(keys.outbox().idem('aaaa', 'x')).not.toBe(keys.outbox().idem('bbbb', 'x'));
  });

  test('scopes and ids are validated before they become keys', () => {
    for (const scope of ['', 'UPPER', 'has:colon', 'x'.repeat(17)])
      expect(() => keys.outbox().idem(scope, 'id')).toThrow(/invalid publish scope/);
    expect(() => keys.outbox().idem('direct', 'bad id')).toThrow(/invalid publish id/);
    expect(() => keys.inbox('/', 'alice').dedup('unscoped')).toThrow(/invalid scoped publish id/);
    expect(() => keys.inbox('/', 'alice').dedup('direct:' + 'x'.repeat(129))).toThrow(/invalid scoped publish id/);
  });
});
