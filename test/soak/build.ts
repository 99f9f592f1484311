import { spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { ROOT } from '../e2e/cluster';

// The build a soak runs: the services compiled into a folder of the run's own (with the cluster
// script and a link to node_modules), never into the shared dist/, so that a rebuild in the
// working tree during a 10-minute run cannot mix versions, and a soak never overwrites dist/.
// From the working tree by default, or from a commit (SOAK_REF=HEAD, a branch, a sha) exported
// with `git archive` (the working tree is only read).

export interface Snapshot {
  dir: string;
  source: string;
  commit: string;
  /** Uncommitted changes under services/ and scripts/ (working-tree builds). */
  changed: string[];
  compileMs: number;
}

function run(cmd: string, args: string[], cwd: string, input?: Buffer): { status: number | null; out: string; stdout: Buffer } {
  const r = spawnSync(cmd, args, { cwd, input, maxBuffer: 256 * 1024 * 1024, timeout: 300000 });
  return { status: r.status, out: `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`, stdout: r.stdout ?? Buffer.alloc(0) };
}

const git = (args: string[]) => {
  const r = run('git', args, ROOT);
  return r.status === 0 ? r.stdout.toString().trim() : '';
};

export function buildSnapshot(ref?: string): Snapshot {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtg-soak-app-'));
  let src = ROOT;
  let commit = git(['rev-parse', 'HEAD']);
  let changed: string[] = [];
  if (ref) {
    commit = git(['rev-parse', '--verify', `${ref}^{commit}`]);
    if (!commit) throw new Error(`SOAK_REF=${ref}: not a commit of this repository`);
    src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const tar = run(
      'git',
      ['archive', '--format=tar', commit, 'services', 'scripts', 'tsconfig.json', 'tsconfig.build.json', 'package.json'],
      ROOT,
    );
    if (tar.status !== 0) throw new Error(`git archive ${commit} failed: ${tar.out.slice(-2000)}`);
    const x = run('tar', ['-x', '-C', src], ROOT, tar.stdout);
    if (x.status !== 0) throw new Error(`tar -x failed: ${x.out.slice(-2000)}`);
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  } else {
    changed = git(['status', '--porcelain', '--', 'services', 'scripts']).split('\n').filter(Boolean);
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  // Only the services (bench/ is not needed and may not compile while someone edits the adapter).
  const tsconfig = path.join(dir, 'tsconfig.soak.json');
  fs.writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(src, 'tsconfig.build.json'),
      compilerOptions: { rootDir: src, outDir: path.join(dir, 'dist'), noEmitOnError: true, sourceMap: true },
      include: [path.join(src, 'services/**/*.ts')],
    }),
  );
  const t0 = Date.now();
  const tsc = run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', tsconfig], ROOT);
  const compileMs = Date.now() - t0;
  if (tsc.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `the services of ${ref ? `${ref} (${commit})` : 'the working tree'} do not compile; ` +
        `${ref ? '' : 'someone may be in the middle of an edit: SOAK_REF=HEAD make soak runs the last commit instead. '}tsc:\n${tsc.out.slice(-4000)}`,
    );
  }
  // What scripts/copy-assets.js copies next to the compiled code: Lua scripts and the demo page.
  for (const d of ['services/core/redis/lua', 'services/gateway/public']) {
    if (fs.existsSync(path.join(src, d))) fs.cpSync(path.join(src, d), path.join(dir, 'dist', d), { recursive: true });
  }
  fs.mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  for (const f of ['scripts/local-cluster.sh', 'scripts/dev-token.js', 'package.json'])
    if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  return { dir, source: ref ? `${ref} (${commit})` : 'working tree', commit, changed, compileMs };
}
