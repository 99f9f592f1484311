import fs from 'fs';
import path from 'path';
import { retryDelay } from '../../services/core/redis/client';
import { commandName, SCRIPTS } from '../../services/core/redis/scripts';

describe('retryDelay', () => {
  test('grows exponentially to a 2 s cap, jittered over the upper half of each step', () => {
    expect(retryDelay(1, () => 0)).toBe(50);
    expect(retryDelay(1, () => 1)).toBe(100);
    expect(retryDelay(3, () => 0)).toBe(200);
    expect(retryDelay(3, () => 1)).toBe(400);
    expect(retryDelay(50, () => 0)).toBe(1000);
    expect(retryDelay(50, () => 1)).toBe(2000);
  });

  test('pods reconnecting after the same outage do not wait the same time', () => {
    const delays = new Set(Array.from({ length: 20 }, () => retryDelay(10)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(1000);
  });
});

describe('Lua scripts', () => {
  const dir = path.join(__dirname, '../../services/core/redis/lua');
  test('every file is declared in scripts.ts and every declared script has its file', () => {
    const files = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.lua'))
      .map((f) => f.slice(0, -4))
      .sort();
    expect([...SCRIPTS].sort()).toEqual(files);
  });

  test('each opens with its KEYS/ARGV/return documentation', () => {
    for (const s of SCRIPTS) {
      const text = fs.readFileSync(path.join(dir, `${s}.lua`), 'utf8');
      const keys = Number(/-(\d+)$/.exec(s)![1]);
      expect(text.startsWith('--[[')).toBe(true);
      for (let i = 1; i <= keys; i++) expect(text).toContain(`KEYS[${i}]`);
      expect(text).toMatch(/Returns/);
    }
  });

  test('command names are the camelCase file names', () => {
    expect(commandName('room-join-2')).toBe('roomJoin');
    expect(commandName('outbox-dead-letter-2')).toBe('outboxDeadLetter');
  });
});
