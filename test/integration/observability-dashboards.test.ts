import fs from 'fs';
import path from 'path';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { createMetrics } from '../../services/core/platform/metrics';
import { dataPanels, exportedSeriesNames, loadDashboards, panelQueries, referencedMetrics, ROOT, substitute } from './observability-shared';

// The dashboards as files (no server needed): importable by the Grafana sidecar as they are,
// every panel on the `datasource` variable, with a unit and a description, every query scoped
// by the `namespace` and `pod` variables and naming only metrics the services export.
// observability-prometheus.test.ts then runs every query against real data.

const dashboards = loadDashboards();
const DS = { type: 'prometheus', uid: '${datasource}' };

test('the three dashboards exist with stable uids, titles and schemaVersion >= 39', () => {
  expect(dashboards.map((d) => [d.file, d.json.uid]).sort()).toEqual([
    ['delivery.json', 'rtg-delivery'],
    ['overview.json', 'rtg-overview'],
    ['runtime.json', 'rtg-runtime'],
  ]);
  for (const d of dashboards) {
    expect(d.json.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(d.json.title).toMatch(/^Realtime gateway \/ /);
    expect(d.json.description?.length).toBeGreaterThan(20);
    // The sidecar does not resolve import-time inputs: the datasource must be a variable.
    expect(d.json.__inputs).toBeUndefined();
  }
});

test.each(dashboards.map((d) => [d.file, d] as const))('%s: datasource, namespace and pod variables', (_f, d) => {
  const vars = Object.fromEntries(d.json.templating.list.map((v) => [v.name, v]));
  expect(vars.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
  for (const name of ['namespace', 'pod']) {
    expect(vars[name]).toMatchObject({ type: 'query', datasource: DS });
    expect(vars[name].definition).toMatch(new RegExp(`^label_values\\(realtime_process_ready.*, ${name}\\)$`));
  }
});

test.each(dashboards.map((d) => [d.file, d] as const))(
  '%s: every panel uses ${datasource}, has a title, a description and a unit',
  (_f, d) => {
    const panels = dataPanels(d);
    expect(panels.length).toBeGreaterThan(8);
    const problems: string[] = [];
    for (const p of panels) {
      if (JSON.stringify(p.datasource) !== JSON.stringify(DS))
        problems.push(`${p.title}: panel datasource ${JSON.stringify(p.datasource)}`);
      if (!p.title) problems.push(`panel ${p.id}: no title`);
      if (!p.description || p.description.length < 20) problems.push(`${p.title}: no description`);
      if (!p.fieldConfig?.defaults?.unit) problems.push(`${p.title}: no fieldConfig.defaults.unit`);
      if (!p.targets?.length) problems.push(`${p.title}: no targets`);
      for (const t of p.targets ?? [])
        if (JSON.stringify(t.datasource) !== JSON.stringify(DS))
          problems.push(`${p.title} ${t.refId}: target datasource ${JSON.stringify(t.datasource)}`);
    }
    expect(problems).toEqual([]);
  },
);

test.each(dashboards.map((d) => [d.file, d] as const))(
  '%s: unique panel ids, panels inside the 24-column grid and not overlapping',
  (_f, d) => {
    const all = d.json.panels;
    expect(new Set(all.map((p) => p.id)).size).toBe(all.length);
    const cells = new Map<string, string>();
    for (const p of all) {
      const g = p.gridPos;
      expect(g.x + g.w).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          const k = `${x},${y}`;
          expect({ cell: k, taken: cells.get(k) }).toEqual({ cell: k, taken: undefined });
          cells.set(k, p.title);
        }
    }
  },
);

test.each(dashboards.map((d) => [d.file, d] as const))(
  '%s: every metric selector is scoped by $namespace and $pod, and every metric exists',
  async (_f, d) => {
    const known = await exportedSeriesNames();
    const problems: string[] = [];
    for (const q of panelQueries(d)) {
      expect(() => substitute(q.expr)).not.toThrow();
      for (const m of referencedMetrics(q.expr)) if (!known.has(m)) problems.push(`${q.panel} ${q.refId}: unknown metric ${m}`);
      // Every `metric{...}` selector carries both matchers (and no metric appears without braces).
      const bare = q.expr.match(/\b(?:realtime|nodejs|process)_[a-z0-9_]+\b(?!\{)/g);
      if (bare) problems.push(`${q.panel} ${q.refId}: selector without matchers: ${bare.join(', ')}`);
      for (const sel of q.expr.match(/\b(?:realtime|nodejs|process)_[a-z0-9_]+\{[^}]*\}/g) ?? []) {
        if (!sel.includes('namespace=~"$namespace"') || !sel.includes('pod=~"$pod"'))
          problems.push(`${q.panel} ${q.refId}: ${sel} is not scoped by $namespace and $pod`);
      }
    }
    expect(problems).toEqual([]);
  },
);

test('grafana/README.md lists exactly the metrics of services/core/metrics.ts, with their type and labels', async () => {
  const readme = fs.readFileSync(path.join(ROOT, 'grafana', 'README.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of readme.split('\n')) {
    const m = /^\| `(realtime_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|/.exec(line);
    if (m) rows.set(m[1], [m[2], m[3].trim()]);
  }
  const metrics = createMetrics(new Registry(), { defaults: false });
  const expected = new Map<string, string[]>();
  for (const v of Object.values(metrics)) {
    if (!(v instanceof Counter || v instanceof Gauge || v instanceof Histogram)) continue;
    const m = v as unknown as { name: string; labelNames?: string[] };
    const labels = (m.labelNames ?? []).map((l) => `\`${l}\``).join(', ') || '—';
    expected.set(m.name, [v.constructor.name.toLowerCase(), labels]);
  }
  expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(expected));
});
