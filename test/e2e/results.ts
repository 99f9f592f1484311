import fs from 'fs';
import os from 'os';
import path from 'path';
import { OUT_DIR } from './cluster';

// Figures each scenario measured, collected into .run/e2e/results.json (git-ignored). Every test
// file writes its own fragment (jest may run files in separate worker processes); the fragments of
// this jest run are merged into results.json after each write, and the summary of the whole run
// is printed by the last file to finish.

const FRAGMENTS = path.join(OUT_DIR, 'results');
/** Identifies this jest run across its worker processes (workers are children of the jest process). */
const RUN_ID = String(process.send ? process.ppid : process.pid);

type Figures = Record<string, unknown>;

function fragmentPath(file: string): string {
  return path.join(FRAGMENTS, `${path.basename(file).replace(/\.test\.ts$/, '')}.json`);
}

/** Records the figures of one scenario of `file` (pass __filename). */
export function record(file: string, scenario: string, figures: Figures): void {
  fs.mkdirSync(FRAGMENTS, { recursive: true });
  const p = fragmentPath(file);
  let frag: { run: string; file: string; finishedAt: string; scenarios: Record<string, Figures> } = {
    run: RUN_ID,
    file: path.basename(file),
    finishedAt: '',
    scenarios: {},
  };
  try {
    const prev = JSON.parse(fs.readFileSync(p, 'utf8'));
    if (prev.run === RUN_ID) frag = prev;
  } catch {
    /* first scenario of this file in this run */
  }
  frag.scenarios[scenario] = figures;
  frag.finishedAt = new Date().toISOString();
  fs.writeFileSync(p, JSON.stringify(frag, null, 2));
  merge();

  console.log(`[e2e results] ${scenario}: ${JSON.stringify(figures)}`);
}

function fragments(): Array<{ run: string; file: string; finishedAt: string; scenarios: Record<string, Figures> }> {
  if (!fs.existsSync(FRAGMENTS)) return [];
  return fs
    .readdirSync(FRAGMENTS)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      try {
        return JSON.parse(fs.readFileSync(path.join(FRAGMENTS, f), 'utf8'));
      } catch {
        return null;
      }
    })
    .filter((f) => f && f.run === RUN_ID);
}

function merge(): void {
  const frags = fragments();
  const out = {
    generatedAt: new Date().toISOString(),
    mode: process.env.E2E_BASE_URL ? `external ${process.env.E2E_BASE_URL}` : 'local cluster (scripts/local-cluster.sh)',
    host: { cpus: os.cpus().length, node: process.version },
    scenarios: Object.fromEntries(frags.flatMap((f) => Object.entries(f.scenarios).map(([k, v]) => [k, { file: f.file, ...v }]))),
  };
  fs.writeFileSync(path.join(OUT_DIR, 'results.json'), JSON.stringify(out, null, 2));
}

/** Prints the summary of the run once every e2e test file has reported (call from afterAll). */
export function summary(file: string): void {
  const all = fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.ts'));
  const frags = fragments();
  const done = new Set(frags.map((f) => f.file));
  if (!done.has(path.basename(file))) return;
  if (!all.every((f) => done.has(f))) return;
  const lines = ['', 'e2e summary (.run/e2e/results.json)'];
  for (const f of frags.sort((a, b) => a.file.localeCompare(b.file))) {
    for (const [name, figs] of Object.entries(f.scenarios)) {
      lines.push(`  ${name}`);
      for (const [k, v] of Object.entries(figs)) lines.push(`    ${k.padEnd(34)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    }
  }

  console.log(lines.join('\n'));
}
