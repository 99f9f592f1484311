/**
 * Every test fails on an unhandled rejection (STYLE.md: an unexpected rejection anywhere fails the
 * tests): the rejection is recorded and the test during which it surfaced fails with it.
 */
const seen: unknown[] = [];
const onRejection = (reason: unknown) => void seen.push(reason);
process.on('unhandledRejection', onRejection);

const failOnRejections = () => {
  if (!seen.length) return;
  const reasons = seen.splice(0).map((r) => (r instanceof Error ? (r.stack ?? r.message) : String(r)));
  throw new Error(`unhandled rejection${reasons.length > 1 ? 's' : ''}:\n${reasons.join('\n')}`);
};
afterEach(failOnRejections);
afterAll(() => {
  process.off('unhandledRejection', onRejection);
  failOnRejections();
});
export {};
