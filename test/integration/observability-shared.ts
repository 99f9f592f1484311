import { spawnSync } from 'child_process';
import fs from 'fs';
import path from 'path';
import { Registry } from 'prom-client';
import YAML from 'yaml';
import { createMetrics } from '../../services/core/platform/metrics';

// What the observability tests share: the dashboards and alert rules as data, and the metric catalogue.

export const ROOT = path.resolve(__dirname, '../..');
export const DASHBOARD_DIR = path.join(ROOT, 'grafana', 'dashboards');
export const ALERT_DIR = path.join(ROOT, 'grafana', 'alerts');
export const RULES_FILE = path.join(ALERT_DIR, 'realtime-gateway.rules.yml');
export const RULE_TESTS_DIR = path.join(ALERT_DIR, 'tests');

/** The dashboard variables every query uses, and what the tests substitute for them. */
export const VARIABLES: Record<string, string> = {
  namespace: '.*',
  pod: '.*',
  __rate_interval: '1m',
  __interval: '15s',
  __range: '5m',
};

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Array<{ refId: string; expr?: string; datasource?: { type?: string; uid?: string } }>;
  panels?: Panel[];
}

export interface Dashboard {
  file: string;
  json: {
    uid: string;
    title: string;
    description?: string;
    schemaVersion: number;
    __inputs?: unknown;
    templating: {
      list: Array<{ name: string; type: string; query: unknown; definition?: string; datasource?: { type?: string; uid?: string } }>;
    };
    panels: Panel[];
  };
}

/** Every grafana/dashboards/*.json, parsed. */
export function loadDashboards(): Dashboard[] {
  return fs
    .readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, json: JSON.parse(fs.readFileSync(path.join(DASHBOARD_DIR, file), 'utf8')) }));
}

/** Every panel that shows data (rows flattened, collapsed rows' panels included). */
export function dataPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  for (const p of d.json.panels) {
    if (p.type === 'row') out.push(...(p.panels ?? []));
    else out.push(p);
  }
  return out;
}

export interface PanelQuery {
  dashboard: string;
  panel: string;
  refId: string;
  expr: string;
}

/** Every target expression of every data panel of `d`. */
export function panelQueries(d: Dashboard): PanelQuery[] {
  return dataPanels(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ dashboard: d.file, panel: p.title, refId: t.refId, expr: t.expr ?? '' })),
  );
}

/** Replaces Grafana variables (`$x`, `${x}`, `[[x]]`) with the values Grafana would send; throws on an unknown one. */
export function substitute(expr: string, vars: Record<string, string> = VARIABLES): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (m, a, b, c) => {
    const name = a ?? b ?? c;
    if (!(name in vars)) throw new Error(`unknown variable ${m} in ${expr}`);
    return vars[name];
  });
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The groups of grafana/alerts/realtime-gateway.rules.yml. */
export function alertGroups(): Array<{ name: string; rules: AlertRule[] }> {
  return YAML.parse(fs.readFileSync(RULES_FILE, 'utf8')).groups;
}

/**
 * Series names the services export: our catalogue plus prom-client's defaults, histograms
 * expanded into `_bucket`, `_sum` and `_count`.
 */
export async function exportedSeriesNames(): Promise<Set<string>> {
  const m = createMetrics(new Registry());
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    if (String(metric.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s);
    else names.add(metric.name);
  }
  return names;
}

/** Metric names referenced by a PromQL expression (ours and prom-client's prefixes). */
export function referencedMetrics(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:realtime|nodejs|process)_[a-z0-9_]+\b/g) ?? [])];
}

/** Path of an executable (env override first), or undefined when it is not installed. */
export function findBinary(name: string, envVar: string): string | undefined {
  const given = process.env[envVar];
  if (given) return given;
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Why a missing Prometheus binary fails the test, and how to fix it. */
export const INSTALL_HINT =
  "promtool and prometheus come with Debian's `prometheus` package: apt-get install -y prometheus (or set PROMTOOL / PROMETHEUS to the binaries)";
