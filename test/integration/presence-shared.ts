import { closeClients, collect, connect, token, until } from '../helpers/cluster';

export const GRACE = 400;

/** What a presence suite runs against: gateway URLs (one or several pods) and how to stop them. */
export interface PresenceSetup {
  urls: string[];
  stop(): Promise<void>;
  /**
   * The real number of online/offline transitions of a user recorded by the engine (the `v`
   * field of the Redis presence hash), when the engine exposes it.
   */
  transitions?(nsp: string, userId: string): Promise<number>;
}

/**
 * The presence behaviour of PROTOCOL.md (Presence), as a user sees it, against any deployment:
 * the memory engine, several gateways on one redis-server, or on a Redis Cluster.
 * `setup` starts gateways with PRESENCE_GRACE_MS = GRACE.
 */
export function describePresence(name: string, setup: () => Promise<PresenceSetup>): void {
  describe(name, () => {
    let env: PresenceSetup | undefined;
    const url = (i: number) => env!.urls[i % env!.urls.length];

    beforeAll(async () => {
      env = await setup();
    });
    afterEach(() => closeClients());
    afterAll(async () => {
      closeClients();
      await env?.stop();
    });

    const user = async (id: string, i: number) => connect(url(i), { token: await token(id) });

    test('two sockets on two pods: one closing announces nothing, both closing announce one offline after the grace period', async () => {
      const watcher = await user('watcher', 0);
      const sub = await watcher.emitWithAck('presence:subscribe', ['pat']);
      expect(sub).toEqual({ ok: true, users: [{ userId: 'pat', status: 'offline', lastSeen: null }] });
      const events = collect(watcher, 'presence');
      const s1 = await user('pat', 1);
      await until(() => events.length === 1, 5000, 'online');
      expect(events[0]).toEqual({ userId: 'pat', status: 'online', lastSeen: expect.any(Number) });
      const s2 = await user('pat', 2);
      s1.disconnect();
      await new Promise((r) => setTimeout(r, GRACE * 3)); // past the grace period: still online, nothing announced
      expect(events).toHaveLength(1);
      expect((await watcher.emitWithAck('get-presence', ['pat'])).users[0].status).toBe('online');
      const t0 = Date.now();
      s2.disconnect();
      // within the grace period: still online, lastSeen is when the last socket went
      await new Promise((r) => setTimeout(r, 100));
      const pending = (await watcher.emitWithAck('get-presence', ['pat'])).users[0];
      expect(pending.status).toBe('online');
      expect(pending.lastSeen).toBeGreaterThanOrEqual(t0);
      await until(() => events.length === 2, 5000, 'offline');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(GRACE - 50);
      expect(events[1]).toEqual({ userId: 'pat', status: 'offline', lastSeen: pending.lastSeen });
      expect((await watcher.emitWithAck('get-presence', ['pat'])).users[0]).toEqual({
        userId: 'pat',
        status: 'offline',
        lastSeen: events[1].lastSeen,
      });
      if (env!.transitions) expect(await env!.transitions('/', 'pat')).toBe(2);
    });

    test('a reconnect within the grace period (to another pod) announces nothing', async () => {
      const watcher = await user('w2', 0);
      await watcher.emitWithAck('presence:subscribe', ['quinn']);
      const events = collect(watcher, 'presence');
      const s1 = await user('quinn', 1);
      await until(() => events.length === 1, 5000, 'online');
      s1.disconnect();
      await new Promise((r) => setTimeout(r, GRACE / 4));
      const s2 = await user('quinn', 2);
      await new Promise((r) => setTimeout(r, GRACE * 3)); // past the first socket's deadline: nothing may come
      expect(events).toHaveLength(1);
      s2.disconnect();
      await until(() => events.length === 2, 5000, 'offline');
      expect(events.map((e) => e.status)).toEqual(['online', 'offline']);
      if (env!.transitions) expect(await env!.transitions('/', 'quinn')).toBe(2);
    });

    test('presence events go to subscribers only; unsubscribe stops them', async () => {
      const sub = await user('sub', 0);
      const other = await user('other', 1);
      await sub.emitWithAck('presence:subscribe', ['rita']);
      const got = collect(sub, 'presence');
      const notSub = collect(other, 'presence');
      const r = await user('rita', 2);
      await until(() => got.length === 1, 5000, 'online');
      expect(await sub.emitWithAck('presence:unsubscribe', ['rita'])).toEqual({ ok: true });
      r.disconnect();
      await until(async () => (await other.emitWithAck('get-presence', ['rita'])).users[0].status === 'offline', 5000, 'rita offline');
      await new Promise((res) => setTimeout(res, GRACE)); // an (unwanted) announcement would have arrived by now
      expect(got).toHaveLength(1);
      expect(notSub).toHaveLength(0);
    });

    test('50 rounds of concurrent connects and disconnects of one user on 3 pods: final state right, announced = real transitions', async () => {
      const watcher = await user('w3', 0);
      await watcher.emitWithAck('presence:subscribe', ['sam']);
      const events = collect(watcher, 'presence');
      const t = await token('sam');
      for (let round = 0; round < 50; round++) {
        const socks = await Promise.all([0, 1, 2].map((i) => connect(url(i), { token: t })));
        await Promise.all(
          socks.map(
            (s) =>
              new Promise<void>((res) => {
                s.disconnect();
                res();
              }),
          ),
        );
        // every few rounds, let the grace period pass so that some rounds really go offline and back
        if (round % 10 === 9)
          await until(
            async () => (await watcher.emitWithAck('get-presence', ['sam'])).users[0].status === 'offline',
            8000,
            `offline after round ${round}`,
          );
      }
      const last = await Promise.all([0, 1].map((i) => connect(url(i), { token: t })));
      await new Promise((r) => setTimeout(r, GRACE * 3)); // any pending offline of the rounds is past its deadline
      expect((await watcher.emitWithAck('get-presence', ['sam'])).users[0].status).toBe('online');
      last.forEach((s) => s.disconnect());
      await until(async () => (await watcher.emitWithAck('get-presence', ['sam'])).users[0].status === 'offline', 8000, 'offline');
      await new Promise((r) => setTimeout(r, GRACE)); // late or duplicate announcements would have arrived by now
      // transitions alternate, start online, end offline: announced = real transitions
      expect(events.length).toBeGreaterThanOrEqual(2);
      expect(events.length % 2).toBe(0);
      events.forEach((e, i) => expect(e.status).toBe(i % 2 === 0 ? 'online' : 'offline'));
      // at least the 5 forced offline rounds plus the final one
      expect(events.length).toBeGreaterThanOrEqual(12);
      if (env!.transitions) expect(events.length).toBe(await env!.transitions('/', 'sam'));
    });

    test('bulk get-presence of 1,000 ids; invalid ids and oversized lists answer bad_request', async () => {
      const s = await user('bulk', 0);
      const ids = Array.from({ length: 1000 }, (_, i) => `u${i}`);
      const on = await user('u7', 1);
      await until(async () => (await s.emitWithAck('get-presence', ['u7'])).users[0].status === 'online', 5000, 'u7 online');
      const res = await s.emitWithAck('get-presence', ids);
      expect(res.ok).toBe(true);
      expect(res.users).toHaveLength(1000);
      expect(res.users[7]).toEqual({ userId: 'u7', status: 'online', lastSeen: expect.any(Number) });
      expect(res.users.filter((u: any) => u.status === 'online')).toHaveLength(1);
      expect((await s.emitWithAck('get-presence', [...ids, 'one-more'])).error.code).toBe('bad_request');
      expect((await s.emitWithAck('get-presence', ['ok', 'bad id'])).error.code).toBe('bad_request');
      expect((await s.emitWithAck('get-presence', 'nope')).error.code).toBe('bad_request');
      expect((await s.emitWithAck('presence:subscribe', [42])).error.code).toBe('bad_request');
      on.disconnect();
    });
  });
}
