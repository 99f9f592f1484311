/**
 * The chart lints, renders for every variant, and every rendered object is valid Kubernetes:
 *  - kubernetes-models (JSON schemas of the Kubernetes 1.3x OpenAPI: required fields, types, enums,
 *    formats), @kubernetes-models/prometheus-operator (ServiceMonitor, PrometheusRule CRD schemas),
 *    @kubernetes-models/gateway-api (HTTPRoute v1 CRD schema);
 *  - kube-strict (test/chart/kube-strict): a strict decode into the Go types of k8s.io/api v0.34,
 *    sigs.k8s.io/gateway-api v1.4 and prometheus-operator v0.86, which rejects unknown or duplicate
 *    fields (the JSON schemas above allow unknown fields, as the API server's pruning does).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { CHART, K8sObject, KUBE_VERSION, ciValuesFiles, helm, kubeStrict, render, renderText, variants } from './helpers';

type ModelClass = new (data: any) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'gateway.networking.k8s.io/v1/HTTPRoute': HTTPRoute,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

function schemaErrors(o: K8sObject): string | undefined {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return `no schema known for ${o.apiVersion}/${o.kind}: add one to MODELS`;
  try {
    new Model(o).validate();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('helm lint --strict', () => {
  test('passes with the default values', () => {
    const r = helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION]);
    expect(r.stderr + r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.status).toBe(0);
  });

  test.each(ciValuesFiles().map((f) => [path.basename(f), f]))('passes with ci/%s', (_name, file) => {
    const r = helm(['lint', '--strict', CHART, '-f', file, '--kube-version', KUBE_VERSION]);
    expect({ status: r.status, out: r.stdout.includes('0 chart(s) failed') ? 'ok' : r.stdout + r.stderr }).toEqual({
      status: 0,
      out: 'ok',
    });
  });

  test('there are ci variants for every install shape the chart supports', () => {
    const names = ciValuesFiles().map((f) => path.basename(f));
    for (const n of [
      'default',
      'bundled-redis',
      'external-redis-existing-secret',
      'ingress-hpa-pdb',
      'httproute',
      'jwks',
      'public-key',
      'kind',
    ]) {
      expect(names).toContain(`${n}-values.yaml`);
    }
  });
});

describe('the values schema rejects typos (negative)', () => {
  const lintWith = (yamlText: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-values-'));
    const file = path.join(dir, 'values.yaml');
    fs.writeFileSync(file, yamlText);
    try {
      return helm(['lint', '--strict', CHART, '-f', file, '--kube-version', KUBE_VERSION]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  test.each([
    ['a misspelled nested key', 'gateway:\n  replica: 3\n', 'replica'],
    ['a misspelled top-level key', 'ingres:\n  enabled: true\n', 'ingres'],
    ['a misspelled setting', 'config:\n  logLevl: debug\n', 'logLevl'],
    ['a misspelled key deep inside', 'ingress:\n  nginx:\n    affinity:\n      cookiName: x\n', 'cookiName'],
    ['a wrong type', 'gateway:\n  replicas: two\n', 'replicas'],
    ['a value outside its enum', 'auth:\n  jwt:\n    verification: hs256\n', 'verification'],
    ['an invalid log level', 'config:\n  logLevel: verbose\n', 'logLevel'],
  ])('%s fails helm lint', (_what, yamlText, word) => {
    const r = lintWith(yamlText);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/schema/);
    expect(r.stdout + r.stderr).toContain(word);
  });

  test('the same file without the typo passes (the negative cases fail for the typo alone)', () => {
    expect(lintWith('gateway:\n  replicas: 3\nconfig:\n  logLevel: debug\n').status).toBe(0);
  });
});

describe.each(variants().map((v) => [v.name, v.opts] as const))('%s', (_name, opts) => {
  let objs: K8sObject[];
  beforeAll(() => {
    objs = render(opts);
  });

  test('renders objects, each with a name, labels of the release and no duplicates', () => {
    expect(objs.length).toBeGreaterThan(5);
    const ids = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
    for (const o of objs) {
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(o.metadata.labels?.['app.kubernetes.io/instance']).toBe('rtg');
      expect(o.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
    }
  });

  test('every object is valid against its Kubernetes / CRD JSON schema (kubernetes-models)', () => {
    const problems = objs.map((o) => [`${o.kind}/${o.metadata.name}`, schemaErrors(o)]).filter(([, e]) => e);
    expect(problems).toEqual([]);
  });

  test('every object decodes strictly into its Go API type (no unknown, duplicate or mistyped field)', () => {
    const results = kubeStrict(renderText(opts));
    expect(results.length).toBe(objs.length);
    expect(results.filter((r) => r.errors.length)).toEqual([]);
  });
});

describe('the validators catch broken objects (they are not vacuous)', () => {
  const base = () => render({});

  test('kubernetes-models rejects a wrongly typed container port', () => {
    const dep = base().find((o) => o.kind === 'Deployment')!;
    const broken = JSON.parse(JSON.stringify(dep));
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    expect(schemaErrors(broken)).toMatch(/containerPort/);
    expect(schemaErrors(dep)).toBeUndefined();
  });

  test('kube-strict rejects a misspelled field that the JSON schemas let through', () => {
    const text = renderText({}).replace(/readinessProbe:/g, 'readinesProbe:');
    const dep = render({}).find((o) => o.kind === 'Deployment')!;
    const broken = JSON.parse(JSON.stringify(dep));
    broken.spec.template.spec.containers[0].readinesProbe = broken.spec.template.spec.containers[0].readinessProbe;
    expect(schemaErrors(broken)).toBeUndefined(); // why kube-strict exists
    const bad = kubeStrict(text).filter((r) => r.errors.length);
    expect(bad.map((r) => r.kind).sort()).toEqual(['Deployment', 'Deployment', 'StatefulSet']);
    expect(bad[0].errors.join()).toContain('readinesProbe');
  });

  test('kube-strict rejects an unknown field of an HTTPRoute session persistence and of a ServiceMonitor', () => {
    const text = renderText({ valuesFiles: [path.join(CHART, 'ci', 'httproute-values.yaml')] }).replace('sessionName:', 'sessionNam:');
    expect(
      kubeStrict(text)
        .find((r) => r.kind === 'HTTPRoute')
        ?.errors.join(),
    ).toContain('sessionNam');
    const sm = renderText({ valuesFiles: [path.join(CHART, 'ci', 'ingress-hpa-pdb-values.yaml')] }).replace(
      'scrapeTimeout:',
      'scrapeTimout:',
    );
    expect(
      kubeStrict(sm)
        .find((r) => r.kind === 'ServiceMonitor')
        ?.errors.join(),
    ).toContain('scrapeTimout');
  });
});
