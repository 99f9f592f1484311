import { clientAddress } from '../../services/gateway/handshake';

const hs = (address: string, xff?: string) =>
  ({ handshake: { address, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } } }) as any;

describe('clientAddress (handshake rate limit key)', () => {
  test('without trusted proxies the TCP peer is used, whatever X-Forwarded-For says', () => {
    expect(clientAddress(hs('10.0.0.9', '1.2.3.4'), 0)).toBe('10.0.0.9');
  });
  test('behind one trusted proxy the entry it appended (the rightmost) is used, not a forged one', () => {
    expect(clientAddress(hs('10.0.0.9', 'forged, 203.0.113.7'), 1)).toBe('203.0.113.7');
    expect(clientAddress(hs('10.0.0.9', '203.0.113.7'), 1)).toBe('203.0.113.7');
  });
  test('behind two proxies the second entry from the right is used', () => {
    expect(clientAddress(hs('10.0.0.9', 'forged, 198.51.100.1, 10.1.1.1'), 2)).toBe('198.51.100.1');
  });
  test('no header falls back to the TCP peer', () => {
    expect(clientAddress(hs('10.0.0.9'), 1)).toBe('10.0.0.9');
  });
});
