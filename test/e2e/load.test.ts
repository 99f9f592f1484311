import { useCluster } from './cluster';
import { ask, askRetry, closeAll, connectMany, duplicates, E2EClient, FAST_RECONNECT, pct, until } from './clients';
import { record, summary } from './results';

// 200 clients in rooms exchanging messages through the balancer: every client receives every
// message of its rooms exactly once (counted by id), and nothing of rooms it is not in.

jest.setTimeout(180000);

const CLIENTS = 200;
const ROOMS = 20;
const PER_CLIENT = 5;
const ALL_SENDERS = 10;
const PER_ALL_SENDER = 2;

describe('200 clients in rooms behind the balancer', () => {
  const cluster = useCluster({ name: 'load', gateways: 3, workers: 2 });
  afterAll(() => {
    closeAll();
    summary(__filename);
  });

  test('nothing lost, nothing duplicated', async () => {
    const c = cluster();
    const tag = Date.now().toString(36);
    const ids = Array.from({ length: CLIENTS }, (_, i) => `load-${tag}-${i}`);
    const roomOf = (i: number) => `load-${tag}-r${i % ROOMS}`;
    const all = `load-${tag}-all`;

    const t0 = Date.now();
    // One in ten long-polling only (sticky cookie), the rest websocket. Against an external cluster
    // (which the kind script disturbs meanwhile) clients reconnect and sends retry transient errors.
    const opts = c.local ? {} : FAST_RECONNECT;
    const send = c.local ? ask : askRetry;
    const polling = await connectMany(
      c,
      ids.filter((_, i) => i % 10 === 0),
      { ...opts, transports: ['polling'] },
      10,
    );
    const ws = await connectMany(
      c,
      ids.filter((_, i) => i % 10 !== 0),
      { ...opts, transports: ['websocket'] },
      20,
    );
    const byId = new Map([...polling, ...ws].map((cl) => [cl.userId, cl]));
    const clients: E2EClient[] = ids.map((id) => byId.get(id)!);
    const connectMs = Date.now() - t0;

    const receivedAt = new Map<string, number[]>();
    for (const cl of clients)
      cl.socket.on('message', (m: { id: string; timestamp: number }) =>
        receivedAt.set(m.id, [...(receivedAt.get(m.id) ?? []), Date.now() - m.timestamp]),
      );

    const joins = await Promise.all(
      clients.map(async (cl, i) => [await send(cl.socket, 'join-room', roomOf(i)), await send(cl.socket, 'join-room', all)]),
    );
    expect(joins.flat().filter((j) => !j.ok)).toEqual([]);
    const members = await ask(clients[0].socket, 'get-room-members', roomOf(0));
    expect(members).toMatchObject({ ok: true, count: CLIENTS / ROOMS });
    const allMembers = await ask(clients[1].socket, 'get-room-members', all);
    expect(allMembers).toMatchObject({ ok: true, count: CLIENTS });

    // Every client sends to its room (acks awaited one after the other); ten also send to the room of all.
    const sentTo = new Map<string, string[]>(); // room -> message ids
    const failedAcks: unknown[] = [];
    const add = (room: string, id: string) => sentTo.set(room, [...(sentTo.get(room) ?? []), id]);
    const t1 = Date.now();
    await Promise.all(
      clients.map(async (cl, i) => {
        for (let k = 0; k < PER_CLIENT; k++) {
          const a = await send(cl.socket, 'message', { roomId: roomOf(i), text: `${cl.userId} ${k}`, data: { k } });
          if (a.ok) add(roomOf(i), a.id as string);
          else failedAcks.push(a);
        }
        if (i < ALL_SENDERS) {
          for (let k = 0; k < PER_ALL_SENDER; k++) {
            const a = await send(cl.socket, 'message', { roomId: all, text: `to all ${k}` });
            if (a.ok) add(all, a.id as string);
            else failedAcks.push(a);
          }
        }
      }),
    );
    const sendMs = Date.now() - t1;
    expect(failedAcks).toEqual([]);

    const expected = (i: number) => [...(sentTo.get(roomOf(i)) ?? []), ...(sentTo.get(all) ?? [])];
    const complete = (cl: E2EClient, i: number) => expected(i).every((id) => cl.counts.has(id));
    await until(() => clients.every(complete), 60000, 'every client to receive every message of its rooms').catch(() => undefined);
    const deliverMs = Date.now() - t1;
    await new Promise((r) => setTimeout(r, 500)); // late duplicates would show up here

    let lost = 0;
    let foreign = 0;
    let expectedDeliveries = 0;
    clients.forEach((cl, i) => {
      const exp = new Set(expected(i));
      expectedDeliveries += exp.size;
      for (const id of exp) if (!cl.counts.has(id)) lost++;
      for (const id of cl.counts.keys()) if (!exp.has(id)) foreign++;
    });
    const dup = duplicates(clients);
    const latencies = [...receivedAt.values()].flat();
    const sent = [...sentTo.values()].reduce((n, l) => n + l.length, 0);
    record(__filename, 'load: 200 clients in 20 rooms + 1 shared room', {
      clients: CLIENTS,
      pollingClients: polling.length,
      messagesSent: sent,
      deliveriesExpected: expectedDeliveries,
      deliveriesLost: lost,
      duplicates: dup,
      deliveredToNonMembers: foreign,
      connectAllMs: connectMs,
      sendAllMs: sendMs,
      deliverAllMs: deliverMs,
      latencyP50Ms: pct(latencies, 50),
      latencyP99Ms: pct(latencies, 99),
      latencyMaxMs: pct(latencies, 100),
      gateways: clients.reduce<Record<string, number>>(
        (m, cl) => ((m[cl.connects[0]?.server ?? 'ws'] = (m[cl.connects[0]?.server ?? 'ws'] ?? 0) + 1), m),
        {},
      ),
    });
    expect(sent).toBe(CLIENTS * PER_CLIENT + ALL_SENDERS * PER_ALL_SENDER);
    expect(lost).toBe(0);
    expect(dup).toBe(0);
    expect(foreign).toBe(0);
    if (c.local) expect(clients.filter((cl) => cl.disconnects.length > 0).map((cl) => cl.userId)).toEqual([]);
  });
});
