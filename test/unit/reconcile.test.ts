import { VERIFY_PER_PASS, verifyCount } from '../../services/gateway/reconcile';

// The reconciliation reads the records of a share of each pod's sockets per pass: the cluster's
// reads follow its sockets, whatever the number of pods holding them (ARCHITECTURE.md rule 8).
describe('reconciliation: sockets verified per pass', () => {
  test('the same 4,000 sockets cost the same reads on 1, 2 or 4 pods', () => {
    const cluster = (pods: number) => pods * verifyCount(4000 / pods);
    expect(cluster(1)).toBe(1000);
    expect(cluster(2)).toBe(1000);
    expect(cluster(4)).toBe(1000);
  });

  test('every socket is read within 4 passes until a pass is capped; small pods read all of theirs', () => {
    expect(verifyCount(0)).toBe(0);
    expect(verifyCount(50)).toBe(50);
    expect(verifyCount(200)).toBe(200);
    expect(verifyCount(1000)).toBe(250);
    expect(verifyCount(3999)).toBe(1000);
    expect(verifyCount(20000)).toBe(VERIFY_PER_PASS);
    for (const n of [1, 199, 201, 801, 1000, 3000, 4000]) expect(verifyCount(n) * 4).toBeGreaterThanOrEqual(n);
  });
});
