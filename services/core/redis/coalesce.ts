/**
 * One write per turn of the event loop on a Redis connection. ioredis writes every command to its
 * socket on its own: a connect on the gateway issues a dozen commands from as many callbacks, and
 * each paid a `write` syscall of its own (a profile of 3,000 connects: 14 % of the gateway's CPU in
 * writeUtf8String, bare Socket.IO 4 %). Here the socket is corked at the first write of a turn and
 * uncorked once the turn's I/O callbacks have run (setImmediate): everything written meanwhile
 * leaves in one writev. Commands keep their order and replies their matching (one connection, one
 * byte stream); a command waits at most until the end of the current turn.
 */
import type { Socket } from 'net';
import type Redis from 'ioredis';

const COALESCED = Symbol('coalesced writes');
type Stream = Socket & { [COALESCED]?: true };

/** Coalesces the writes of `redis` (now and on every reconnect: each connection gets a new socket). */
export function coalesceWrites(redis: Redis): Redis {
  const wrap = () => {
    const stream = (redis as unknown as { stream?: Stream }).stream;
    if (!stream || stream[COALESCED] || typeof stream.cork !== 'function') return;
    stream[COALESCED] = true;
    const write = stream.write;
    let corked = false;
    const flush = () => {
      corked = false;
      stream.uncork();
    };
    stream.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
      if (!corked) {
        corked = true;
        stream.cork();
        setImmediate(flush);
      }
      return write.apply(this, args);
    } as Socket['write'];
  };
  redis.on('connect', wrap);
  wrap();
  return redis;
}
