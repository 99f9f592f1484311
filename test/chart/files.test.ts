/**
 * Everything around the chart: values documentation and schema strictness, the Dockerfile against the
 * chart and tsconfig, the kind config, and the shell scripts (shellcheck, preflight, idempotency).
 */
import { spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { CHART, ROOT, deployment, readYaml, render } from './helpers';

const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');

describe('values.yaml and values.schema.json', () => {
  const schema: any = JSON.parse(fs.readFileSync(path.join(CHART, 'values.schema.json'), 'utf8'));

  test('every object of the schema is closed (additionalProperties false), a typed map, or a declared Kubernetes passthrough', () => {
    const open: string[] = [];

    const walk = (node: any, at: string) => {
      if (!node || typeof node !== 'object') return;
      const types = [node.type].flat();
      if (types.includes('object')) {
        const closed = node.additionalProperties === false;
        const typedMap = typeof node.additionalProperties === 'object' && !node.properties;
        const passthrough = typeof node.$comment === 'string' && node.$comment.startsWith('passthrough: Kubernetes ');
        if (!closed && !typedMap && !passthrough) open.push(at || '/');
      }
      for (const [k, v] of Object.entries(node.properties ?? {})) walk(v, `${at}/${k}`);
      if (node.items) walk(node.items, `${at}[]`);
      if (typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${at}/*`);
      for (const k of ['anyOf', 'oneOf', 'allOf']) for (const [i, v] of (node[k] ?? []).entries()) walk(v, `${at}/${k}${i}`);
    };
    walk(schema, '');
    expect(open).toEqual([]);
  });

  test('the schema describes every key of values.yaml, and values.yaml every property of the schema', () => {
    const values = readYaml(path.join(CHART, 'values.yaml'));
    const diff: string[] = [];

    const walk = (v: any, s: any, at: string, inKubernetesShape = false) => {
      if (!s?.properties || !v || typeof v !== 'object' || Array.isArray(v)) return;
      // Kubernetes-shaped values (resources, HPA behavior) are closed but every key in them is optional.
      const optionalKeys = inKubernetesShape || (typeof s.$comment === 'string' && s.$comment.startsWith('Kubernetes '));
      for (const k of Object.keys(v)) if (!(k in s.properties)) diff.push(`values.yaml ${at}.${k} has no schema`);
      for (const k of Object.keys(s.properties)) {
        if (!(k in v)) {
          if (!optionalKeys) diff.push(`schema ${at}.${k} has no default in values.yaml`);
        } else walk(v[k], s.properties[k], `${at}.${k}`, optionalKeys);
      }
    };
    walk(values, schema, '');
    expect(diff).toEqual([]);
  });

  /** Values without documentation: a value is documented by a `# --` comment block right above it or above an enclosing key. */
  function undocumentedValues(text: string): string[] {
    const lines = text.split('\n');
    const undocumented: string[] = [];
    let skipDeeperThan = -1;
    for (let i = 0; i < lines.length; i++) {
      const m = /^( *)([A-Za-z0-9_.-]+):(.*)$/.exec(lines[i]);
      if (!m) continue;
      const indent = m[1].length;
      if (skipDeeperThan >= 0 && indent > skipDeeperThan) continue;
      skipDeeperThan = -1;
      const comment: string[] = [];
      for (let j = i - 1; j >= 0 && /^\s*#/.test(lines[j]) && lines[j].indexOf('#') === indent; j--) comment.unshift(lines[j].trim());
      if (comment.some((c) => c.startsWith('# --'))) {
        skipDeeperThan = indent; // documented as a whole (its content is data)
        continue;
      }
      const inline = m[3].replace(/#.*/, '').trim();
      const next = lines.slice(i + 1).find((l) => l.trim() && !/^\s*#/.test(l)) ?? '';
      const isSection = !inline && /^ *[A-Za-z0-9_.-]+:/.test(next) && next.search(/\S/) > indent;
      if (!isSection) undocumented.push(`line ${i + 1}: ${m[2]}`);
    }
    return undocumented;
  }

  test('every value is documented in place: a `# --` comment above it, or above the section holding it', () => {
    expect(undocumentedValues(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'))).toEqual([]);
  });

  test('the documentation check finds undocumented values (not vacuous)', () => {
    const sample = [
      'a:',
      '  # -- documented',
      '  b: 1',
      '  c: 2',
      '  d:',
      '    - x',
      '# plain comment is not documentation',
      'e: 3',
      '# -- data',
      'f:',
      '  g: 1',
    ].join('\n');
    expect(undocumentedValues(sample)).toEqual(['line 4: c', 'line 5: d', 'line 8: e']);
  });

  test('dev-only values say so, and are off by default', () => {
    const values = readYaml(path.join(CHART, 'values.yaml'));
    const text = fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8');
    expect(values.auth.insecure).toBe(false);
    expect(values.auth.jwt.devSecret).toBe('');
    expect(values.apiKeys.devKeys).toEqual([]);
    for (const key of ['insecure:', 'devSecret:', 'devKeys:']) {
      const at = text.indexOf(`\n    ${key}`) >= 0 ? text.indexOf(`\n    ${key}`) : text.indexOf(`\n  ${key}`);
      expect(text.slice(Math.max(0, at - 400), at)).toMatch(/DEVELOPMENT ONLY/);
    }
  });
});

describe('Dockerfile', () => {
  const docker = read('Dockerfile');
  const stages = docker.split(/^FROM /m).slice(1);
  const runtime = stages[stages.length - 1];
  const jsonArray = (instr: string, text: string) => {
    const m = new RegExp(`^${instr} (\\[.*\\])$`, 'm').exec(text);
    return m ? (JSON.parse(m[1]) as string[]) : undefined;
  };

  test('is multi-stage: build with npm ci + npm run build, runtime on node:20-bookworm-slim with npm ci --omit=dev', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(docker).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(stages[0]).toMatch(/RUN npm ci\b/);
    expect(stages[0]).toMatch(/RUN npm run build/);
    expect(runtime).toMatch(/RUN npm ci --omit=dev/);
    expect(runtime).toMatch(/COPY --from=build \/app\/dist \.\/dist/);
    expect(JSON.parse(read('package.json')).scripts.build).toMatch(/tsc/);
  });

  test('runs as a numeric non-root user matching the chart, under tini', () => {
    const user = /^USER (\d+):(\d+)$/m.exec(runtime);
    expect(user).not.toBeNull();
    const values = readYaml(path.join(CHART, 'values.yaml'));
    expect(Number(user![1])).toBe(values.podSecurity.runAsUser);
    expect(Number(user![1])).toBeGreaterThan(0);
    expect(runtime).toMatch(/apt-get install -y --no-install-recommends tini/);
    expect(jsonArray('ENTRYPOINT', runtime)).toEqual(['/usr/bin/tini', '--']);
  });

  test('CMD starts the gateway exactly as the chart does; the worker path follows tsconfig outDir', () => {
    const cmd = jsonArray('CMD', runtime);
    const objs = render({});
    expect(cmd).toEqual(deployment(objs, 'gateway').spec.template.spec.containers[0].args);
    expect(deployment(objs, 'worker').spec.template.spec.containers[0].args).toEqual(['node', 'dist/services/worker/main.js']);
    // The build's tsconfig (from `npm run build`, following `extends`) compiles services/ to dist/services/.
    const project = /tsc -p (\S+)/.exec(JSON.parse(read('package.json')).scripts.build)?.[1] ?? 'tsconfig.json';
    const options = (file: string): Record<string, string> => {
      const json = JSON.parse(read(file));
      return { ...(json.extends ? options(path.join(path.dirname(file), json.extends)) : {}), ...json.compilerOptions };
    };
    const ts = options(project);
    expect([ts.outDir, ts.rootDir]).toEqual(['dist', '.']);
    expect(fs.existsSync(path.join(ROOT, project))).toBe(true);
    expect(docker).toMatch(/^COPY tsconfig\*\.json \.\/$/m);
    for (const c of ['gateway', 'worker']) expect(fs.existsSync(path.join(ROOT, 'services', c, 'main.ts'))).toBe(true);
  });

  test('EXPOSEs PORT and METRICS_PORT', () => {
    expect(/^EXPOSE (.*)$/m.exec(runtime)?.[1].split(/\s+/).map(Number).sort()).toEqual([3000, 9091]);
  });

  test('.dockerignore keeps the build inputs and drops the rest', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'services', 'scripts'])
      expect(ignored).not.toContain(needed);
    for (const dropped of ['**/node_modules', 'dist', '.git', 'test', 'helm']) expect(ignored).toContain(dropped);
    const copied = [...docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1].split(/\s+/));
    for (const c of copied) {
      const re = new RegExp(`^${c.replace(/\/$/, '').replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`);
      expect({ c, present: fs.readdirSync(ROOT).some((f) => re.test(f)) }).toEqual({ c, present: true });
    }
  });
});

describe('kind cluster config', () => {
  test('one control-plane node labelled ingress-ready=true with ports 80/443 mapped on loopback', () => {
    const cfg = readYaml(path.join(ROOT, 'k8s', 'kind-config.yaml'));
    expect(cfg.kind).toBe('Cluster');
    expect(cfg.nodes).toHaveLength(1);
    expect(cfg.nodes[0].role).toBe('control-plane');
    expect(cfg.nodes[0].kubeadmConfigPatches.join()).toContain('node-labels: "ingress-ready=true"');
    expect(
      cfg.nodes[0].extraPortMappings.map((p: { containerPort: number; listenAddress: string }) => [p.containerPort, p.listenAddress]),
    ).toEqual([
      [80, '127.0.0.1'],
      [443, '127.0.0.1'],
    ]);
    // the script rewrites these two lines to KIND_HTTP_PORT / KIND_HTTPS_PORT
    const text = read('k8s/kind-config.yaml');
    expect(text.match(/^ *hostPort: 80$/gm)).toHaveLength(1);
    expect(text.match(/^ *hostPort: 443$/gm)).toHaveLength(1);
  });

  test('kind-values.yaml uses the Secret the script creates and the image it loads', () => {
    const v = readYaml(path.join(CHART, 'ci', 'kind-values.yaml'));
    const script = read('scripts/kind-e2e.sh');
    expect(script).toContain(`AUTH_SECRET=${v.auth.jwt.existingSecret}`);
    expect(v.apiKeys.existingSecret).toBe(v.auth.jwt.existingSecret);
    expect(script).toContain(`--from-literal=${v.auth.jwt.existingSecretKey}=`);
    expect(script).toContain(`--from-literal=${v.apiKeys.existingSecretKey}=`);
    expect(script).toContain(`IMAGE="\${E2E_IMAGE:-${v.image.repository}:${v.image.tag}}"`);
    expect(v.image.pullPolicy).toBe('Never');
    expect(v.auth.insecure).toBe(false);
    expect(v.redis.bundled.enabled).toBe(true);
    expect(v.gateway.replicas).toBe(3);
    expect(v.ingress.enabled).toBe(true);
  });
});

describe('scripts', () => {
  const shellcheck = spawnSync('sh', ['-c', 'command -v shellcheck'], { encoding: 'utf8' }).stdout.trim();

  test.each(['scripts/kind-e2e.sh', 'scripts/install-helm.sh'])('%s passes shellcheck', (script) => {
    if (!shellcheck) throw new Error('shellcheck is not installed: `make helm-test` installs it (apt-get install shellcheck)');
    const r = spawnSync(shellcheck, [path.join(ROOT, script)], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  /** Runs kind-e2e.sh with PATH limited to stub tools (each logs its call) plus what the stubs need. */
  function preflight(stubs: Record<string, string>) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-kind-'));
    const calls = path.join(dir, 'calls.log');
    for (const [name, body] of Object.entries(stubs)) {
      fs.writeFileSync(path.join(dir, name), `#!/bin/sh\necho "${name} $*" >> "${calls}"\n${body}\n`, { mode: 0o755 });
    }
    for (const t of ['bash', 'sh', 'dirname', 'cat', 'sed', 'grep', 'mktemp', 'rm', 'date', 'mkdir']) {
      const p = spawnSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
      if (p) fs.symlinkSync(p, path.join(dir, t));
    }
    const r = spawnSync(path.join(dir, 'bash'), [path.join(ROOT, 'scripts', 'kind-e2e.sh')], {
      encoding: 'utf8',
      env: { PATH: dir, HOME: dir, HELM: path.join(dir, 'helm'), KIND_LOG_DIR: path.join(dir, 'logs') },
      timeout: 20000,
    });
    const log = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8') : '';
    fs.rmSync(dir, { recursive: true, force: true });
    return { status: r.status, stderr: r.stderr, calls: log };
  }
  const ok = 'exit 0';

  test('kind-e2e.sh exits 3 with a clear message when the Docker engine does not answer, creating nothing', () => {
    const r = preflight({ docker: 'exit 1', kind: ok, kubectl: ok, helm: ok, node: ok, npx: ok, curl: ok });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/Docker engine does not answer/);
    expect(r.calls).toContain('docker info');
    expect(r.calls).not.toMatch(/^kind /m);
    expect(r.calls).not.toMatch(/^kubectl /m);
  });

  test.each(['docker', 'kind', 'kubectl', 'curl'])('kind-e2e.sh exits 3 naming %s when it is missing', (tool) => {
    const stubs: Record<string, string> = { docker: ok, kind: ok, kubectl: ok, helm: ok, node: ok, npx: ok, curl: ok };
    delete stubs[tool];
    const r = preflight(stubs);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`'${tool}' is not on PATH`);
    expect(r.calls).not.toMatch(/^kind create/m);
  });

  test('install-helm.sh does nothing when helm is already installed', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-helm-'));
    fs.writeFileSync(path.join(dir, 'helm'), '#!/bin/sh\necho v3.99.0-stub\n', { mode: 0o755 });
    const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'install-helm.sh')], {
      encoding: 'utf8',
      env: { ...process.env, HELM_INSTALL_DIR: dir, PATH: '/usr/bin:/bin' },
    });
    const files = fs.readdirSync(dir);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('already installed');
    expect(files).toEqual(['helm']);
  });

  test('mk/chart.mk defines the documented targets', () => {
    const mk = read('mk/chart.mk');
    for (const t of ['image', 'helm-install', 'helm-lint', 'helm-test', 'shellcheck', 'kind-e2e'])
      expect(mk).toMatch(new RegExp(`^${t}:.*## `, 'm'));
    expect(mk).toMatch(/^\tdocker build -t \$\(IMAGE\) \.$/m);
    expect(mk).toMatch(/IMAGE\s+\?= realtime-gateway:dev/);
    expect(mk).toMatch(/npx jest --selectProjects chart/);
  });
});
