import { spawnSync } from 'child_process';
import fs from 'fs';
import path from 'path';
import {
  alertGroups,
  exportedSeriesNames,
  findBinary,
  INSTALL_HINT,
  referencedMetrics,
  RULE_TESTS_DIR,
  RULES_FILE,
} from './observability-shared';

// The alert rules pass `promtool check rules` and their unit tests (grafana/alerts/tests/*.yml,
// each alert firing and not firing), reference only metrics the services export, and carry the
// labels and annotations an on-call person needs.

const promtool = findBinary('promtool', 'PROMTOOL');

/** Runs promtool; returns its combined output, failing with it when the exit code is not 0. */
function run(args: string[]): string {
  if (!promtool) throw new Error(`promtool not found. ${INSTALL_HINT}`);
  const r = spawnSync(promtool, args, { encoding: 'utf8', timeout: 60000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) throw new Error(`promtool ${args.join(' ')} exited ${r.status ?? r.signal}:\n${out}`);
  return out;
}

const groups = alertGroups();
const alerts = groups.flatMap((g) => g.rules.filter((r) => r.alert));
const testFiles = fs
  .readdirSync(RULE_TESTS_DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => path.join(RULE_TESTS_DIR, f));

test('promtool check rules accepts the rule file', () => {
  expect(run(['check', 'rules', RULES_FILE])).toContain(`SUCCESS: ${groups.flatMap((g) => g.rules).length} rules found`);
});

test('promtool test rules passes every unit test', () => {
  expect(testFiles.length).toBeGreaterThan(0);
  expect(run(['test', 'rules', ...testFiles])).toMatch(/SUCCESS/);
});

test('every alert has a unit test that sees it fire and one that sees it stay silent', () => {
  const text = testFiles.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  for (const a of alerts) {
    // An alert_rule_test names the alert, then lists exp_alerts: a non-empty list is "fires", [] "does not".
    const cases = [...text.matchAll(new RegExp(`alertname: ${a.alert}\\n\\s+exp_alerts:( \\[\\])?`, 'g'))];
    expect({ alert: a.alert, fires: cases.some((c) => !c[1]) }).toEqual({ alert: a.alert, fires: true });
    expect({ alert: a.alert, silent: cases.some((c) => !!c[1]) }).toEqual({ alert: a.alert, silent: true });
  }
});

test('the requested alerts exist with a severity, a summary, a description and a runbook hint', () => {
  expect(alerts.map((a) => a.alert).sort()).toEqual(
    [
      'RealtimeDeliveryLatencyHigh',
      'RealtimeEventLoopLagHigh',
      'RealtimeGatewayNoReadyGateway',
      'RealtimeOutboxDeadLetters',
      'RealtimeOutboxLagGrowing',
      'RealtimeRedisDown',
      'RealtimeRedisErrors',
    ].sort(),
  );
  for (const a of alerts) {
    expect({ alert: a.alert, severity: a.labels?.severity }).toEqual({
      alert: a.alert,
      severity: expect.stringMatching(/^(critical|warning|info)$/),
    });
    for (const k of ['summary', 'description', 'runbook'])
      expect({ alert: a.alert, [k]: (a.annotations?.[k] ?? '').length > 10 }).toEqual({ alert: a.alert, [k]: true });
  }
});

test('alert expressions use only metrics the services export', async () => {
  const known = await exportedSeriesNames();
  const unknown = alerts.flatMap((a) =>
    referencedMetrics(a.expr)
      .filter((m) => !known.has(m))
      .map((m) => `${a.alert}: ${m}`),
  );
  expect(unknown).toEqual([]);
});
