import { execFileSync, spawnSync } from 'child_process';
import fs from 'fs';
import path from 'path';
import YAML from 'yaml';

/** Repository root. */
export const ROOT = path.resolve(__dirname, '..', '..');
/** The chart under test. */
export const CHART = path.join(ROOT, 'helm', 'realtime-gateway');
/** Kubernetes version the renders assume unless a test names another (>= 1.30: native preStop sleep). */
export const KUBE_VERSION = '1.31.0';
/** Release name of every render. */
export const RELEASE = 'rtg';

/** A rendered Kubernetes object. */

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any;
};

function tool(envVar: string, name: string, hint: string): string {
  const candidates = [process.env[envVar], path.join(ROOT, '.tools', 'bin', name)].filter(Boolean) as string[];
  for (const c of candidates) if (fs.existsSync(c)) return c;
  const onPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  throw new Error(`${name} not found (${envVar}, .tools/bin/${name}, PATH): ${hint}`);
}

/** The helm binary: $HELM, .tools/bin/helm or helm on PATH. */
export const helmBin = (): string => tool('HELM', 'helm', 'run `make helm-test` or `bash scripts/install-helm.sh`');

/** Runs helm; returns status, stdout and stderr (never throws on a non-zero exit). */
export function helm(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(helmBin(), args, { encoding: 'utf8', cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  // Helm logs a line per followed symlink (dashboards/, alerts/); that is expected noise.
  const stderr = r.stderr
    .split('\n')
    .filter((l) => !/found symbolic link in path/.test(l))
    .join('\n')
    .trim();
  return { status: r.status ?? 1, stdout: r.stdout, stderr };
}

/** Options of one render. */
export interface RenderOpts {
  valuesFiles?: string[];
  set?: string[];
  kubeVersion?: string;
  release?: string;
}

function templateArgs(o: RenderOpts): string[] {
  const args = ['template', o.release ?? RELEASE, CHART, '--namespace', 'rtg-test', '--kube-version', o.kubeVersion ?? KUBE_VERSION];
  for (const f of o.valuesFiles ?? []) args.push('-f', f);
  for (const s of o.set ?? []) args.push('--set', s);
  return args;
}

const cache = new Map<string, string>();

/** `helm template` output (YAML text); throws with helm's message when the render fails. */
export function renderText(o: RenderOpts = {}): string {
  const key = JSON.stringify(o);
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const r = helm(templateArgs(o));
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  cache.set(key, r.stdout);
  return r.stdout;
}

/** `helm template` output parsed into objects. */
export function render(o: RenderOpts = {}): K8sObject[] {
  return YAML.parseAllDocuments(renderText(o))
    .map((d) => {
      if (d.errors.length) throw new Error(`rendered YAML does not parse: ${d.errors[0].message}`);
      return d.toJSON() as K8sObject | null;
    })
    .filter((x): x is K8sObject => x !== null);
}

/** A render that must fail: returns helm's error output. */
export function renderError(o: RenderOpts): string {
  const r = helm(templateArgs(o));
  if (r.status === 0) throw new Error(`expected the render to fail, it succeeded (${JSON.stringify(o)})`);
  return r.stderr;
}

/** The values files under ci/, as absolute paths. */
export function ciValuesFiles(): string[] {
  const dir = path.join(CHART, 'ci');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('-values.yaml'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Every variant the tests render: the defaults and each ci/*-values.yaml. */
export function variants(): Array<{ name: string; opts: RenderOpts }> {
  return [
    { name: 'default values', opts: {} },
    ...ciValuesFiles().map((f) => ({ name: `ci/${path.basename(f)}`, opts: { valuesFiles: [f] } })),
  ];
}

/** Reads a YAML file. */

export const readYaml = (file: string): any => YAML.parse(fs.readFileSync(file, 'utf8'));

/** The chart's values.yaml merged with one values file (maps merged deeply, lists replaced, as helm does). */

export function effectiveValues(o: RenderOpts = {}): any {
  const merge = (a: unknown, b: unknown): unknown => {
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
      for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = merge(out[k], v);
      return out;
    }
    return b === undefined ? a : b;
  };
  let v = readYaml(path.join(CHART, 'values.yaml'));
  for (const f of o.valuesFiles ?? []) v = merge(v, readYaml(f));
  return v;
}

/** Objects of one kind. */
export const ofKind = (objs: K8sObject[], kind: string): K8sObject[] => objs.filter((o) => o.kind === kind);

/** The one object of a kind whose name ends with `suffix` (throws when there is not exactly one). */
export function one(objs: K8sObject[], kind: string, suffix = ''): K8sObject {
  const found = objs.filter((o) => o.kind === kind && o.metadata.name.endsWith(suffix));
  if (found.length !== 1)
    throw new Error(`expected one ${kind} named *${suffix}, found ${found.map((o) => o.metadata.name).join(', ') || 'none'}`);
  return found[0];
}

/** The Deployment of a component (gateway or worker). */
export const deployment = (objs: K8sObject[], component: 'gateway' | 'worker'): K8sObject =>
  one(
    objs.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === component),
    'Deployment',
  );

/** Whether a Kubernetes label selector (matchLabels + matchExpressions) selects `labels`. */

export function selects(selector: any, labels: Record<string, string> = {}): boolean {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Placeholder contents of existing Secrets (the chart only references them), shaped as the services expect. */
export const EXISTING_SECRET_SAMPLES: Record<string, string> = {
  JWT_SECRET: 'an-existing-secret-of-at-least-32-bytes!!',
  JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----',
  JWT_JWKS_URL: 'https://issuer.example.com/.well-known/jwks.json',
  API_KEYS: 'existing-api-key-0123456789',
  REDIS_URL: 'redis://redis.example.internal:6379',
};

/** The environment a container of a rendered Deployment starts with: its ConfigMaps (envFrom), the
 * chart's Secret, samples for existing Secrets (by variable name) and the downward API. */
export function containerEnv(objs: K8sObject[], dep: K8sObject): Record<string, string> {
  const c = dep.spec.template.spec.containers[0];
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === from.configMapRef.name);
      if (!cm) throw new Error(`envFrom names the ConfigMap ${from.configMapRef.name}, which the chart does not render`);
      Object.assign(env, cm.data ?? {});
    } else throw new Error(`unexpected envFrom ${JSON.stringify(from)}`);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = `${dep.metadata.name}-5d8f9c7b6-abcde`;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'status.podIP') env[e.name] = '10.244.1.7';
    else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const own = objs.find((o) => o.kind === 'Secret' && o.metadata.name === ref.name);
      if (own) {
        const v =
          own.stringData?.[ref.key] ??
          (own.data?.[ref.key] !== undefined ? Buffer.from(own.data[ref.key], 'base64').toString() : undefined);
        if (v === undefined) throw new Error(`Secret ${ref.name} has no key ${ref.key} (needed by ${e.name})`);
        env[e.name] = v;
      } else {
        const sample = EXISTING_SECRET_SAMPLES[e.name];
        if (sample === undefined) throw new Error(`no sample for ${e.name} from the existing Secret ${ref.name}`);
        env[e.name] = sample;
      }
    } else if (e.valueFrom) env[e.name] = '<valueFrom>';
  }
  return env;
}

/** Result of the strict decoder for one document. */
export interface StrictResult {
  apiVersion: string;
  kind: string;
  name: string;
  errors: string[];
}

let kubeStrictPath: string | undefined;

/** The kube-strict binary ($KUBE_STRICT or .tools/bin/kube-strict), built with go when missing or stale. */
export function kubeStrictBin(): string {
  if (kubeStrictPath) return kubeStrictPath;
  const src = path.join(ROOT, 'test', 'chart', 'kube-strict');
  const bin = process.env.KUBE_STRICT ?? path.join(ROOT, '.tools', 'bin', 'kube-strict');
  const newest = Math.max(...['main.go', 'go.mod', 'go.sum'].map((f) => fs.statSync(path.join(src, f)).mtimeMs));
  if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest) {
    const go = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).stdout.trim();
    if (!go) throw new Error(`${bin} is missing and go is not installed: run \`make helm-test\` on a machine with Go`);
    execFileSync(go, ['build', '-trimpath', '-o', bin, '.'], { cwd: src, stdio: 'pipe', env: { ...process.env, CGO_ENABLED: '0' } });
  }
  kubeStrictPath = bin;
  return bin;
}

/** Decodes every document of a render strictly into its Kubernetes / Gateway API / Prometheus Operator Go type. */
export function kubeStrict(yamlText: string): StrictResult[] {
  const out = execFileSync(kubeStrictBin(), [], { input: yamlText, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StrictResult);
}
