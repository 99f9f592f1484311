/**
 * The chart and the code agree: environment variables, defaults, ports, probe paths, metrics,
 * shutdown timing, dashboards and alert rules. services/core/config.ts is the source of truth.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import YAML from 'yaml';
import { loadConfig, settings, unknownVariables } from '../../services/core/platform/config';
import {
  CHART,
  K8sObject,
  ROOT,
  RenderOpts,
  containerEnv,
  deployment,
  effectiveValues,
  ofKind,
  one,
  readYaml,
  render,
  renderError,
  selects,
  variants,
} from './helpers';

type Component = 'gateway' | 'worker';
const COMPONENTS: Component[] = ['gateway', 'worker'];

type AnySetting = { env: string; def: unknown; services: ReadonlyArray<Component>; parse: (raw: string, name: string) => any };
const SETTINGS = settings as unknown as Record<string, AnySetting>;
const byEnv = new Map(Object.values(SETTINGS).map((s) => [s.env, s]));

/** Settings of config.ts that the chart deliberately does not expose, with the reason. */
const NOT_MAPPED: Record<string, string> = {
  HOST: 'pods must listen on every address of the pod network; the default 0.0.0.0 is the only sensible value',
  ADVERTISE_ADDRESS:
    'derived from POD_IP (the downward API) and PORT; set it through gateway.extraEnv when pods are reached at another address',
};

/** Variables a variant's values add by `extraEnv` (free-form, not settings of config.ts). */
function extraEnvNames(opts: Parameters<typeof effectiveValues>[0], c: Component): Set<string> {
  return new Set((effectiveValues(opts)[c].extraEnv ?? []).map((e: { name: string }) => e.name));
}

describe.each(variants().map((v) => [v.name, v.opts] as const))('%s: environment', (_name, opts) => {
  let objs: K8sObject[];
  beforeAll(() => {
    objs = render(opts);
  });

  test.each(COMPONENTS)('the %s gets only variables config.ts knows, each meant for that service', (c) => {
    const env = containerEnv(objs, deployment(objs, c));
    const extra = extraEnvNames(opts, c);
    const problems: string[] = [];
    for (const name of Object.keys(env)) {
      if (extra.has(name)) continue;
      const s = byEnv.get(name);
      if (!s) problems.push(`${name} is not a setting of services/core/config.ts`);
      else if (!s.services.includes(c))
        problems.push(`${name} is read by ${s.services.join('+')} only, yet the chart gives it to the ${c}`);
    }
    expect(problems).toEqual([]);
    expect(unknownVariables(env)).toEqual([]);
  });

  test('the gateway configuration loads with the service validator (jwt material unless AUTH_MODE=insecure)', () => {
    const env = containerEnv(objs, deployment(objs, 'gateway'));
    const cfg = loadConfig(env, 'gateway');
    if (env.AUTH_MODE === 'insecure') expect(cfg.authMode).toBe('insecure');
    else {
      expect(cfg.authMode).toBe('jwt');
      expect([env.JWT_SECRET, env.JWT_PUBLIC_KEY, env.JWT_JWKS_URL].filter(Boolean)).toHaveLength(1);
    }
    expect(cfg.redisUrl).toMatch(/^rediss?:\/\//);
    expect(cfg.podName).toContain('gateway');
  });

  test('the worker configuration loads with the service validator (REDIS_URL set)', () => {
    const env = containerEnv(objs, deployment(objs, 'worker'));
    expect(env.REDIS_URL).toMatch(/^rediss?:\/\//);
    const cfg = loadConfig(env, 'worker');
    expect(cfg.redisUrl).toBe(env.REDIS_URL);
  });

  test.each(COMPONENTS)('the %s probes /healthz and /readyz on PORT, and exposes METRICS_PORT as `metrics`', (c) => {
    const dep = deployment(objs, c);
    const ctr = dep.spec.template.spec.containers[0];
    const env = containerEnv(objs, dep);
    const cfg = { port: settings.port.parse(env.PORT, 'PORT'), metricsPort: settings.metricsPort.parse(env.METRICS_PORT, 'METRICS_PORT') };
    const portByName = Object.fromEntries(ctr.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
    expect(portByName).toEqual({ http: cfg.port, metrics: cfg.metricsPort });
    expect(cfg.port).toBe(settings.port.def);
    expect(cfg.metricsPort).toBe(settings.metricsPort.def);
    expect(ctr.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(ctr.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(ctr.args).toEqual(['node', `dist/services/${c}/main.js`]);
  });

  test('terminationGracePeriodSeconds > preStop sleep + SHUTDOWN_DELAY_MS + DRAIN_TIMEOUT_MS', () => {
    for (const c of COMPONENTS) {
      const dep = deployment(objs, c);
      const pod = dep.spec.template.spec;
      const env = containerEnv(objs, dep);
      const cfg = { shutdownDelayMs: Number(env.SHUTDOWN_DELAY_MS), drainTimeoutMs: Number(env.DRAIN_TIMEOUT_MS) };
      expect(cfg.shutdownDelayMs + cfg.drainTimeoutMs).toBeGreaterThan(0);
      const preStop = pod.containers[0].lifecycle?.preStop;
      const sleep = preStop ? (preStop.sleep?.seconds ?? Number(preStop.exec.command[1])) : 0;
      expect(Number.isFinite(sleep)).toBe(true);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(sleep + (cfg.shutdownDelayMs + cfg.drainTimeoutMs) / 1000);
    }
  });

  test('Services and the ServiceMonitor reach the ports the services serve', () => {
    for (const c of COMPONENTS) {
      const svc = objs.find((o) => o.kind === 'Service' && o.metadata.labels?.['app.kubernetes.io/component'] === c)!;
      const pod = deployment(objs, c).spec.template.metadata.labels;
      expect(selects({ matchLabels: svc.spec.selector }, pod)).toBe(true);
      const other = deployment(objs, c === 'gateway' ? 'worker' : 'gateway').spec.template.metadata.labels;
      expect(selects({ matchLabels: svc.spec.selector }, other)).toBe(false);
      expect(svc.spec.ports.map((p: { name: string; targetPort: string }) => [p.name, p.targetPort])).toEqual([
        ['http', 'http'],
        ['metrics', 'metrics'],
      ]);
    }
    for (const sm of ofKind(objs, 'ServiceMonitor')) {
      expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
      const services = ofKind(objs, 'Service').filter((s) => selects(sm.spec.selector, s.metadata.labels));
      expect(services.map((s) => s.metadata.labels!['app.kubernetes.io/component']).sort()).toEqual(['gateway', 'worker']);
    }
  });

  test('the Ingress and the HTTPRoute send clients to the gateway http port, with cookie affinity when asked', () => {
    const values = effectiveValues(opts);
    const gw = objs.find((o) => o.kind === 'Service' && o.metadata.labels?.['app.kubernetes.io/component'] === 'gateway')!;
    for (const ing of ofKind(objs, 'Ingress')) {
      const a = ing.metadata.annotations!;
      if (values.ingress.stickySessions) {
        expect(a['nginx.ingress.kubernetes.io/affinity']).toBe('cookie');
        expect(a['nginx.ingress.kubernetes.io/session-cookie-name']).toMatch(/^[A-Za-z0-9_-]+$/);
      } else {
        expect(Object.keys(a).filter((k) => /affinity|session-cookie/.test(k))).toEqual([]);
      }
      expect(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
      expect(Number(a['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(3600);
      for (const rule of ing.spec.rules)
        for (const p of rule.http.paths) expect(p.backend.service).toEqual({ name: gw.metadata.name, port: { name: 'http' } });
    }
    for (const route of ofKind(objs, 'HTTPRoute')) {
      for (const rule of route.spec.rules) {
        expect(rule.backendRefs).toEqual([{ name: gw.metadata.name, port: gw.spec.ports[0].port }]);
        // Structural check of GEP-1619 session persistence (newer than the @kubernetes-models/gateway-api schema).
        const sp = rule.sessionPersistence;
        if (!values.httpRoute.sessionPersistence.enabled) {
          expect(sp).toBeUndefined();
          continue;
        }
        expect(sp).toBeDefined();
        expect(sp.type).toBe('Cookie');
        expect(sp.sessionName.length).toBeLessThanOrEqual(128);
        for (const d of [sp.absoluteTimeout, sp.idleTimeout].filter(Boolean)) expect(d).toMatch(/^([0-9]{1,5}(h|m|s|ms)){1,4}$/);
        expect(['Session', 'Permanent']).toContain(sp.cookieConfig.lifetimeType);
        if (sp.cookieConfig.lifetimeType === 'Permanent') expect(sp.absoluteTimeout).toBeTruthy();
      }
    }
  });

  test('selectors select their own pods; PDBs exist exactly when more than one pod can', () => {
    const values = effectiveValues(opts);
    for (const c of COMPONENTS) {
      const dep = deployment(objs, c);
      expect(selects(dep.spec.selector, dep.spec.template.metadata.labels)).toBe(true);
      const v = values[c];
      const maxPods = v.autoscaling.enabled ? v.autoscaling.maxReplicas : v.replicas;
      const pdbs = ofKind(objs, 'PodDisruptionBudget').filter((p) => selects(p.spec.selector, dep.spec.template.metadata.labels));
      expect(pdbs).toHaveLength(v.pdb.enabled && maxPods > 1 ? 1 : 0);
      const hpas = ofKind(objs, 'HorizontalPodAutoscaler').filter((h) => h.spec.scaleTargetRef.name === dep.metadata.name);
      expect(hpas).toHaveLength(v.autoscaling.enabled ? 1 : 0);
      expect(dep.spec.replicas).toBe(v.autoscaling.enabled ? undefined : v.replicas);
    }
  });

  test('pods run non-root, read-only, without capabilities, with RuntimeDefault seccomp', () => {
    for (const w of [...ofKind(objs, 'Deployment'), ...ofKind(objs, 'StatefulSet')]) {
      const pod = w.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      expect(pod.automountServiceAccountToken).toBe(false);
      for (const ctr of pod.containers) {
        expect(ctr.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(ctr.resources?.requests).toBeDefined();
      }
    }
  });

  test('the gateway pods get POD_IP from the downward API (the address their heartbeat advertises); the worker does not', () => {
    const env = (c: Component) => deployment(objs, c).spec.template.spec.containers[0].env as Array<{ name: string; valueFrom?: any }>;
    expect(env('gateway').find((e) => e.name === 'POD_IP')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
    expect(env('worker').find((e) => e.name === 'POD_IP')).toBeUndefined();
  });

  test('the gateway NetworkPolicy admits the other gateway pods on the http port (forwarded requests), and what httpFrom / metricsFrom say', () => {
    const values = effectiveValues(opts);
    const gwPods = deployment(objs, 'gateway').spec.template.metadata.labels;
    const policies = ofKind(objs, 'NetworkPolicy').filter((p) => selects(p.spec.podSelector, gwPods));
    if (!values.gateway.networkPolicy.enabled) return expect(policies).toEqual([]);
    expect(policies).toHaveLength(1);
    const rules = policies[0].spec.ingress as Array<{
      from?: Array<{ podSelector?: any; namespaceSelector?: any }>;
      ports: Array<{ port: string }>;
    }>;
    const allowed = (port: string, peer: Record<string, string>) =>
      rules.some(
        (r) =>
          r.ports.some((p) => p.port === port) &&
          (!r.from || r.from.some((f) => f.podSelector && !f.namespaceSelector && selects(f.podSelector, peer))),
      );
    const ctr = deployment(objs, 'gateway').spec.template.spec.containers[0];
    expect(ctr.ports.map((p: { name: string }) => p.name).sort()).toEqual(['http', 'metrics']);
    expect(allowed('http', gwPods)).toBe(true);
    const stranger = { app: 'debug-shell' };
    expect(allowed('http', stranger)).toBe(values.gateway.networkPolicy.httpFrom.length === 0);
    expect(allowed('metrics', stranger)).toBe(values.gateway.networkPolicy.metricsFrom.length === 0);
    expect(allowed('http', { ...gwPods, 'app.kubernetes.io/instance': 'another-release' })).toBe(
      values.gateway.networkPolicy.httpFrom.length === 0,
    );
  });

  test('Redis: bundled means a StatefulSet with AOF, reachable only from this release; external means neither', () => {
    const values = effectiveValues(opts);
    const sts = ofKind(objs, 'StatefulSet');
    const gwPods = deployment(objs, 'gateway').spec.template.metadata.labels;
    const np = ofKind(objs, 'NetworkPolicy').filter((p) => !selects(p.spec.podSelector, gwPods));
    if (!values.redis.bundled.enabled) {
      expect(sts).toEqual([]);
      expect(np).toEqual([]);
      return;
    }
    expect(sts).toHaveLength(1);
    const redis = sts[0].spec.template.spec.containers[0];
    expect(redis.image).toBe('redis:7-alpine');
    expect(redis.args.join(' ')).toContain('--appendonly yes --appendfsync everysec');
    const gwEnv = containerEnv(objs, deployment(objs, 'gateway'));
    const redisSvc = ofKind(objs, 'Service').find(
      (s) => s.metadata.labels?.['app.kubernetes.io/component'] === 'redis' && s.spec.clusterIP !== 'None',
    )!;
    expect(gwEnv.REDIS_URL).toBe(`redis://${redisSvc.metadata.name}:6379`);
    expect(selects({ matchLabels: redisSvc.spec.selector }, sts[0].spec.template.metadata.labels)).toBe(true);
    if (values.redis.bundled.networkPolicy.enabled) {
      expect(np).toHaveLength(1);
      expect(selects(np[0].spec.podSelector, sts[0].spec.template.metadata.labels)).toBe(true);
      const peers = np[0].spec.ingress.flatMap((r: { from: unknown[] }) => r.from);
      const allowed = (labels: Record<string, string>) => peers.some((p: { podSelector: unknown }) => selects(p.podSelector, labels));
      for (const c of COMPONENTS) expect(allowed(deployment(objs, c).spec.template.metadata.labels)).toBe(true);
      const stranger = { ...deployment(objs, 'gateway').spec.template.metadata.labels, 'app.kubernetes.io/instance': 'another-release' };
      expect(allowed(stranger)).toBe(false);
      expect(allowed({ app: 'debug-shell' })).toBe(false);
    }
  });

  test('no Secret holds anything the values did not give inline (the chart invents no secret)', () => {
    const values = effectiveValues(opts);
    const inline = [values.redis.external.url, values.auth.jwt.devSecret, (values.apiKeys.devKeys ?? []).join(',')].filter(Boolean);
    for (const s of ofKind(objs, 'Secret')) {
      for (const v of Object.values(s.stringData ?? {})) expect(inline).toContain(v);
      expect(s.data).toBeUndefined();
    }
    if (!inline.length) expect(ofKind(objs, 'Secret')).toEqual([]);
  });
});

describe('values map one to one onto config.ts settings', () => {
  const values = readYaml(path.join(CHART, 'values.yaml'));
  const sections: Array<[string, Record<string, unknown>, Component[]]> = [
    ['config', values.config, ['gateway', 'worker']],
    ['gateway.config', values.gateway.config, ['gateway']],
    ['worker.config', values.worker.config, ['worker']],
  ];

  test.each(sections)('every key of %s is a config.ts setting read by exactly those services', (_name, section, services) => {
    for (const key of Object.keys(section)) {
      expect({ key, known: key in SETTINGS }).toEqual({ key, known: true });
      expect({ key, services: [...SETTINGS[key].services].sort() }).toEqual({ key, services: [...services].sort() });
    }
  });

  test('each value lands in the variable config.ts names, and the defaults equal the service defaults', () => {
    const objs = render({});
    for (const c of COMPONENTS) {
      const env = containerEnv(objs, deployment(objs, c));
      for (const [, section, services] of sections) {
        if (!services.includes(c)) continue;
        for (const [key, value] of Object.entries(section)) {
          const s = SETTINGS[key];
          const raw = env[s.env];
          expect({ key, env: s.env, rendered: raw !== undefined }).toEqual({ key, env: s.env, rendered: true });
          const parsed = s.parse(raw, s.env);
          const norm = (v: unknown) => (v instanceof RegExp ? v.source : v);
          expect({ key, value: norm(parsed) }).toEqual({ key, value: norm(s.def) });
          expect({ key, value: norm(parsed) }).toEqual({
            key,
            value: norm(s.parse(Array.isArray(value) ? value.join(',') : String(value), s.env)),
          });
        }
      }
    }
  });

  test('every setting of config.ts is set by the chart in some variant, for every service that reads it', () => {
    const seen: Record<Component, Set<string>> = { gateway: new Set(), worker: new Set() };
    for (const v of variants()) {
      const objs = render(v.opts);
      for (const c of COMPONENTS) for (const k of Object.keys(containerEnv(objs, deployment(objs, c)))) seen[c].add(k);
    }
    const missing: string[] = [];
    for (const s of Object.values(SETTINGS)) {
      if (NOT_MAPPED[s.env]) continue;
      for (const c of s.services) {
        if (!seen[c].has(s.env)) missing.push(`${s.env} (${c})`);
      }
    }
    // A new setting in config.ts needs a value in values.yaml (+ values.schema.json, + _env.tpl envNames)
    // or an entry in NOT_MAPPED above saying why the chart leaves it alone.
    expect(missing).toEqual([]);
    for (const env of Object.keys(NOT_MAPPED)) expect(byEnv.has(env)).toBe(true);
  });
});

describe('rebalancing and the paced drain', () => {
  const gatewayEnv = (opts: RenderOpts) => {
    const objs = render(opts);
    return containerEnv(objs, deployment(objs, 'gateway'));
  };

  test('the affinity cookie of the sticky router reaches the gateways as REBALANCE_AFFINITY_COOKIE; none without affinity', () => {
    expect(gatewayEnv({}).REBALANCE_AFFINITY_COOKIE).toBeUndefined();
    const ingress = ['ingress.enabled=true', 'ingress.nginx.affinity.cookieName=rtg_sticky'];
    expect(gatewayEnv({ set: ingress }).REBALANCE_AFFINITY_COOKIE).toBe('rtg_sticky');
    expect(gatewayEnv({ set: [...ingress, 'ingress.stickySessions=false'] }).REBALANCE_AFFINITY_COOKIE).toBeUndefined();
    const route = ['httpRoute.enabled=true', 'httpRoute.parentRefs[0].name=gw', 'httpRoute.sessionPersistence.sessionName=rtg_route'];
    expect(gatewayEnv({ set: route }).REBALANCE_AFFINITY_COOKIE).toBe('rtg_route');
    expect(gatewayEnv({ set: [...route, 'httpRoute.sessionPersistence.enabled=false'] }).REBALANCE_AFFINITY_COOKIE).toBeUndefined();
    // the service accepts what the chart derives
    expect(loadConfig(gatewayEnv({ set: ingress }), 'gateway').rebalanceAffinityCookie).toBe('rtg_sticky');
  });

  test('an Ingress and an HTTPRoute both sticky with different cookies fail the render, naming both', () => {
    const err = renderError({
      set: [
        'ingress.enabled=true',
        'ingress.nginx.affinity.cookieName=a_cookie',
        'httpRoute.enabled=true',
        'httpRoute.parentRefs[0].name=gw',
        'httpRoute.sessionPersistence.sessionName=b_cookie',
      ],
    });
    expect(err).toContain('must be the same cookie');
    expect(err).toContain('a_cookie');
  });

  test('a fractional REBALANCE_RATE_PERCENT is rendered as written; DRAIN_SPREAD_PERCENT above 80 fails the schema', () => {
    // `--set` gives strings for decimals: a values file, as users write it
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-chart-')), 'values.yaml');
    fs.writeFileSync(file, 'gateway:\n  config:\n    rebalanceRatePercent: 0.5\n    rebalanceEnabled: false\n');
    const env = gatewayEnv({ valuesFiles: [file] });
    expect(env.REBALANCE_RATE_PERCENT).toBe('0.5');
    expect(env.REBALANCE_ENABLED).toBe('false');
    expect(loadConfig(env, 'gateway').rebalanceRatePercent).toBe(0.5);
    expect(renderError({ set: ['gateway.config.drainSpreadPercent=90'] })).toMatch(/drainSpreadPercent/);
  });
});

describe('shutdown timing is enforced by the template', () => {
  test('a terminationGracePeriodSeconds too short for preStop + shutdown delay + drain fails the render', () => {
    // 5 s preStop + 3 s SHUTDOWN_DELAY_MS + 10 s DRAIN_TIMEOUT_MS = 18 s
    expect(renderError({ set: ['gateway.terminationGracePeriodSeconds=18'] })).toContain('must be larger than 18');
    expect(renderError({ set: ['worker.terminationGracePeriodSeconds=5', 'config.drainTimeoutMs=20000'] })).toContain(
      'worker.terminationGracePeriodSeconds=5 must be larger than 23',
    );
    expect(
      deployment(render({ set: ['gateway.terminationGracePeriodSeconds=19'] }), 'gateway').spec.template.spec.terminationGracePeriodSeconds,
    ).toBe(19);
  });

  test('a null grace period follows the shutdown settings', () => {
    const objs = render({ set: ['config.drainTimeoutMs=60000', 'gateway.preStopSleepSeconds=10'] });
    expect(deployment(objs, 'gateway').spec.template.spec.terminationGracePeriodSeconds).toBe(10 + 63 + 10);
    expect(deployment(objs, 'worker').spec.template.spec.terminationGracePeriodSeconds).toBe(63 + 10);
  });

  test('preStop uses the native sleep action from Kubernetes 1.30 and `exec sleep` before', () => {
    const pre = (kubeVersion: string) => deployment(render({ kubeVersion }), 'gateway').spec.template.spec.containers[0].lifecycle.preStop;
    expect(pre('1.30.0')).toEqual({ sleep: { seconds: 5 } });
    expect(pre('1.33.1')).toEqual({ sleep: { seconds: 5 } });
    expect(pre('1.29.4')).toEqual({ exec: { command: ['sleep', '5'] } });
    expect(
      deployment(render({ set: ['gateway.preStopSleepSeconds=0'] }), 'gateway').spec.template.spec.containers[0].lifecycle,
    ).toBeUndefined();
  });
});

describe('value combinations the schema cannot express fail with a message naming the fix', () => {
  test.each([
    [['redis.external.url=redis://r:6379'], 'exactly one of redis.bundled.enabled'],
    [['redis.bundled.enabled=false'], 'exactly one of redis.bundled.enabled'],
    [['redis.external.cluster=true'], 'needs an external Redis Cluster'],
    [['auth.jwt.devSecret=too-short'], 'at least 32 bytes'],
    [['auth.jwt.verification=jwks', 'auth.jwt.jwksUrl=ftp://x'], 'http(s) URL'],
    [['auth.jwt.verification=jwks', 'auth.jwt.devSecret=0123456789abcdef0123456789abcdef'], 'needs auth.jwt.verification=secret'],
    [['auth.jwt.existingSecret=s', 'auth.jwt.devSecret=0123456789abcdef0123456789abcdef'], 'either existingSecret or one inline value'],
    [['apiKeys.devKeys={short}'], 'devKeys'],
    [['apiKeys.devKeys={0123456789abcdef}', 'apiKeys.existingSecret=keys'], 'either existingSecret or devKeys'],
    [['ports.metrics=3000'], 'ports.metrics must differ from ports.http'],
    [['config.httpHeadersTimeoutMs=40000'], 'httpHeadersTimeoutMs must not exceed config.httpRequestTimeoutMs'],
    [
      ['gateway.config.devLogin=true', 'auth.jwt.verification=jwks', 'auth.jwt.jwksUrl=https://i.example/jwks'],
      'devLogin=true needs auth.jwt.verification=secret',
    ],
    [['gateway.config.forwardTimeoutMs=1000'], 'forwardConnectTimeoutMs must not exceed gateway.config.forwardTimeoutMs'],
    [['httpRoute.enabled=true'], 'needs httpRoute.parentRefs'],
    [
      ['gateway.autoscaling.enabled=true', 'gateway.autoscaling.minReplicas=5', 'gateway.autoscaling.maxReplicas=3'],
      'minReplicas must not exceed',
    ],
  ])('--set %j', (set, message) => {
    expect(renderError({ set })).toContain(message);
  });

  test('stickiness is optional: a non-sticky Ingress and HTTPRoute with long-polling and several pods render', () => {
    const objs = render({
      set: [
        'ingress.enabled=true',
        'ingress.stickySessions=false',
        'gateway.replicas=5',
        'httpRoute.enabled=true',
        'httpRoute.parentRefs[0].name=gw',
        'httpRoute.sessionPersistence.enabled=false',
      ],
    });
    expect(one(objs, 'Ingress').metadata.annotations!['nginx.ingress.kubernetes.io/affinity']).toBeUndefined();
    expect(one(objs, 'HTTPRoute').spec.rules[0].sessionPersistence).toBeUndefined();
    expect(containerEnv(objs, deployment(objs, 'gateway')).TRANSPORTS).toBe('polling,websocket');
  });

  test('the removed ingress.nginx.affinity.enabled fails the schema (ingress.stickySessions replaced it)', () => {
    expect(renderError({ set: ['ingress.nginx.affinity.enabled=false'] })).toMatch(/enabled/);
  });
});

describe('names', () => {
  const cases: Array<[string, RenderOpts]> = [
    ['the longest release name helm accepts', { release: 'a-very-long-release-name-that-goes-on-and-on-and-on-x' }],
    ['a 63-character fullnameOverride', { set: [`fullnameOverride=${'f'.repeat(62)}x`] }],
  ];
  test.each(cases)('stay within the Kubernetes limits for %s', (_what, opts) => {
    expect(opts.release?.length ?? 53).toBe(53);
    const objs = render(opts);
    for (const o of objs) {
      expect(o.metadata.name.length).toBeLessThanOrEqual(o.kind === 'StatefulSet' ? 52 : 63);
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      for (const v of Object.values(o.metadata.labels ?? {})) expect(v.length).toBeLessThanOrEqual(63);
    }
    const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('dashboards and alert rules come from grafana/', () => {
  const dashDir = path.join(ROOT, 'grafana', 'dashboards');
  const alertDir = path.join(ROOT, 'grafana', 'alerts');

  test('the chart reads them through symlinks into grafana/ (one copy, no drift)', () => {
    expect(fs.readlinkSync(path.join(CHART, 'dashboards'))).toBe('../../grafana/dashboards');
    expect(fs.readlinkSync(path.join(CHART, 'alerts'))).toBe('../../grafana/alerts');
  });

  test('the dashboards ConfigMap holds exactly grafana/dashboards/*.json, byte for byte, for the sidecar', () => {
    const files = fs
      .readdirSync(dashDir)
      .filter((f) => f.endsWith('.json'))
      .sort();
    const objs = render({});
    const cms = ofKind(objs, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
    if (!files.length) {
      expect(cms).toEqual([]);
      return;
    }
    expect(cms).toHaveLength(1);
    expect(Object.keys(cms[0].data).sort()).toEqual(files);
    for (const f of files) {
      expect(cms[0].data[f]).toBe(fs.readFileSync(path.join(dashDir, f), 'utf8'));
      expect(() => JSON.parse(cms[0].data[f])).not.toThrow();
    }
  });

  test('the PrometheusRule holds the groups of grafana/alerts/*.yml', () => {
    const files = fs
      .readdirSync(alertDir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
    const groups = files.flatMap((f) => YAML.parse(fs.readFileSync(path.join(alertDir, f), 'utf8'))?.groups ?? []);
    const objs = render({ set: ['metrics.prometheusRule.enabled=true'] });
    const rules = ofKind(objs, 'PrometheusRule');
    if (!groups.length) {
      expect(rules).toEqual([]);
      return;
    }
    expect(rules).toHaveLength(1);
    expect(rules[0].spec.groups).toEqual(groups);
    const alerts = groups.flatMap((g: { rules: Array<{ alert?: string }> }) => g.rules.map((r) => r.alert));
    expect(alerts).toContain('RealtimeGatewayNoReadyGateway');
  });
});
