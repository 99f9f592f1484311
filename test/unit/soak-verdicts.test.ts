import type { ClientRecord } from '../soak/client';
import { planFaults } from '../soak/plan';
import { derive } from '../soak/rng';
import { inboxVerdict, membershipVerdict, presenceVerdict, RoomSent, roomVerdict, sessionsOf } from '../soak/verdicts';

// The chaos soak's verdicts (test/soak, `make soak`) on made-up timelines: what counts as lost,
// what is excused after an unrecovered reconnect, duplicates, and the fault schedule's determinism.

function client(over: Partial<ClientRecord> = {}): ClientRecord {
  return {
    label: 'r001',
    userId: 'r001',
    role: 'resident',
    transport: 'websocket',
    desiredRooms: ['a'],
    createdAt: 0,
    connects: [{ at: 10, recovered: false, sid: 's1', server: 'gw1' }],
    disconnects: [],
    engineOpens: [5],
    engineEvents: [],
    connectErrors: [],
    joins: [{ room: 'a', at: 20, sid: 's1' }],
    joinFailures: {},
    deliveries: [],
    maxOffset: {},
    directs: [],
    notices: [],
    connectedAtEnd: true,
    ...over,
  };
}

const msg = (key: string, tSend: number, room = 'a'): RoomSent => ({ kind: 'msg', key, room, sender: 'x', tSend, tAck: tSend + 5 });
const got = (key: string, at: number, sid: string, offset?: string) => ({ key, kind: 'msg' as const, room: 'a', at, sid, offset });

describe('soak verdicts: room deliveries', () => {
  test('a connected member that misses a message lost it; one sent before the join is not expected', () => {
    const rec = client({ deliveries: [got('m2', 60, 's1', '100-0')] });
    const v = roomVerdict([rec], [msg('m0', 15), msg('m1', 40), msg('m2', 50)], []);
    expect(v.expected).toBe(2);
    expect(v.lost.map((l) => [l.key, l.when])).toEqual([['m1', 'connected']]);
  });

  test('a message sent while away and missing after a recovered reconnect is lost (silent partial recovery)', () => {
    const rec = client({
      connects: [
        { at: 10, recovered: false, sid: 's1', server: 'gw1' },
        { at: 200, recovered: true, sid: 's1', server: 'gw2' },
      ],
      disconnects: [{ at: 100, reason: 'transport close', sid: 's1', server: 'gw1' }],
      deliveries: [got('m1', 60, 's1')],
    });
    const v = roomVerdict([rec], [msg('m1', 50), msg('m2', 150)], []);
    expect(v.lost.map((l) => [l.key, l.when, l.recoveredAfter.length])).toEqual([['m2', 'recovered-gap', 1]]);
    expect(v.recoveredReconnects).toBe(1);
    expect(v.unrecovered).toEqual([]);
  });

  test('after an unrecovered reconnect, what came after the last delivery is excused, a gap before it is not', () => {
    const rec = client({
      connects: [
        { at: 10, recovered: false, sid: 's1', server: 'gw1' },
        { at: 200, recovered: false, sid: 's2', server: 'gw2' },
      ],
      disconnects: [{ at: 100, reason: 'transport close', sid: 's1', server: 'gw1' }],
      engineOpens: [5, 150, 190],
      joins: [
        { room: 'a', at: 20, sid: 's1' },
        { room: 'a', at: 250, sid: 's2' },
      ],
      // m3 (offset 30-0) arrived, m2 (offset 20-0, seen by someone else) never did: a gap.
      deliveries: [got('m1', 45, 's1', '10-0'), got('m3', 95, 's1', '30-0'), got('m5', 300, 's2', '50-0')],
    });
    const other = client({
      label: 'r002',
      userId: 'r002',
      deliveries: [got('m2', 70, 's9', '20-0')],
      connects: [{ at: 1, recovered: false, sid: 's9' }],
      joins: [],
    });
    const sent = [msg('m1', 40), msg('m2', 60), msg('m3', 90), msg('m4', 97), msg('m6', 120), msg('m7', 230), msg('m5', 290)];
    const v = roomVerdict([rec, other], sent, [{ seq: 1, type: 'gateway-sigkill', target: 'gateway-1', startedAt: 99, endedAt: 110 }]);
    expect(v.lost.map((l) => [l.key, l.when])).toEqual([['m2', 'gap-in-ended-session']]);
    // m4: sent before the end, after the last delivery: excused. m6: after the end. m7: before the new join.
    expect(v.excused).toBe(1);
    expect(v.unrecovered).toHaveLength(1);
    expect(v.unrecovered[0]).toMatchObject({ interruptedHandshakes: 1, from: 'gw1', to: 'gw2' });
    expect(v.unrecovered[0].cause).toBe('gateway-sigkill: a reconnect attempt was cut mid-handshake');
  });

  test('a client closed on purpose is excused for what was in flight, and the same id twice in a session is a duplicate', () => {
    const rec = client({
      closedAt: 100,
      connectedAtEnd: false,
      disconnects: [{ at: 100, reason: 'io client disconnect', sid: 's1' }],
      deliveries: [got('m1', 45, 's1'), got('m1', 46, 's1')],
    });
    const v = roomVerdict([rec], [msg('m1', 40), msg('m2', 98), msg('m3', 150)], []);
    expect(v.lost).toEqual([]);
    expect(v.excused).toBe(1);
    expect(v.duplicates.map((d) => [d.key, d.count])).toEqual([['m1', 2]]);
    expect(sessionsOf(rec, new Map()).map((s) => s.kind)).toEqual(['closed']);
  });

  test('a room publish is expected by members who joined before the POST', () => {
    const pub: RoomSent = { kind: 'pub', key: 'p1', room: 'a', tSend: 30, tAck: 35 };
    const late: RoomSent = { kind: 'pub', key: 'p2', room: 'a', tSend: 15, tAck: 18 };
    const v = roomVerdict([client()], [pub, late], []);
    expect(v.lost.map((l) => [l.kind, l.key])).toEqual([['pub', 'p1']]);
  });
});

describe('soak verdicts: presence, membership, inboxes', () => {
  test('ghosts, wrong offline and users not judged', () => {
    const v = presenceVerdict(
      ['u1', 'u2', 'u3', 'u4'],
      new Map([
        ['u1', 'online'],
        ['u2', 'offline'],
        ['u3', 'online'],
        ['u4', 'online'],
      ]),
      new Set(['u2', 'u3']),
      new Set(['u4']),
    );
    expect(v).toMatchObject({ ghosts: ['u1'], wrongOffline: ['u2'], ambiguous: ['u4'], checked: 3 });
  });

  test('membership ghosts, ghost sockets and missing members', () => {
    const v = membershipVerdict(
      new Map([
        [
          'a',
          [
            { userId: 'u1', sockets: 1 },
            { userId: 'u2', sockets: 2 },
          ],
        ],
        ['b', undefined],
      ]),
      new Map([
        [
          'a',
          new Map([
            ['u2', 1],
            ['u3', 1],
          ]),
        ],
      ]),
      new Set(),
    );
    expect(v.ghostUsers).toEqual([{ room: 'a', userId: 'u1', sockets: 1 }]);
    expect(v.ghostSockets).toEqual([{ room: 'a', userId: 'u2', listed: 2, actual: 1 }]);
    expect(v.missing).toEqual([{ room: 'a', userId: 'u3' }]);
    expect(v.failedQueries).toEqual(['b']);
  });

  test('a direct message is lost only when neither in the inbox nor delivered live', () => {
    const d = (id: string) => ({ id, from: 'x', to: 'u1', tSend: 1, tAck: 2 });
    const rec = client({ userId: 'u1', directs: [{ id: 'd2', at: 5, via: 'live' }] });
    const v = inboxVerdict(
      [d('d1'), d('d2'), d('d3')],
      [{ pid: 'p1', to: 'u1', tSend: 1, tAck: 2 }],
      new Map([['u1', { ids: ['d1', 'd1'], pids: ['p1'], complete: true }]]),
      [rec],
    );
    expect(v.lostDirect.map((x) => x.id)).toEqual(['d3']);
    expect(v.liveOnlyDirect).toBe(1);
    expect(v.lostNotices).toEqual([]);
    expect(v.inboxDuplicates).toEqual([{ userId: 'u1', id: 'd1', count: 2 }]);
  });
});

describe('soak fault plan', () => {
  const opts = { durationMs: 600000, gateways: ['gateway-1', 'gateway-2', 'gateway-3'], workers: ['worker-1', 'worker-2'] };

  test('a seed fixes the schedule; faults are 15-30 s apart, never overlap and end before the load does', () => {
    const a = planFaults({ seed: 42, ...opts });
    expect(planFaults({ seed: 42, ...opts })).toEqual(a);
    expect(planFaults({ seed: 43, ...opts })).not.toEqual(a);
    for (let i = 1; i < a.length; i++) {
      expect(a[i].atMs - a[i - 1].atMs).toBeGreaterThanOrEqual(15000);
      expect(a[i].atMs).toBeGreaterThanOrEqual(a[i - 1].atMs + a[i - 1].estimateMs);
    }
    expect(a[a.length - 1].atMs + a[a.length - 1].estimateMs).toBeLessThanOrEqual(opts.durationMs - 5000);
    expect(new Set(a.map((f) => f.type))).toEqual(
      new Set([
        'gateway-sigkill',
        'gateway-same-name',
        'gateway-sigterm',
        'gateway-pause',
        'gateway-double-pause',
        'worker-sigkill',
        'redis-sigkill',
      ]),
    );
    expect(a.filter((f) => f.type === 'redis-sigkill').length).toBeGreaterThanOrEqual(2);
  });

  test('a 120 s plan has a Redis kill and several gateway faults', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const p = planFaults({ seed, ...opts, durationMs: 120000 });
      expect(p.filter((f) => f.type === 'redis-sigkill')).toHaveLength(1);
      expect(p.length).toBeGreaterThanOrEqual(3);
    }
  });

  test('derived streams differ per label and repeat per seed', () => {
    expect(derive(1, 'a')()).toBe(derive(1, 'a')());
    expect(derive(1, 'a')()).not.toBe(derive(1, 'b')());
  });
});
