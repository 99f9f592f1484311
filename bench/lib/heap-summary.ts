/**
 * Aggregates a V8 .heapsnapshot by kind of object (constructor name for objects, function name for
 * closures, one bucket for strings, ...) and compares two snapshots: what each connection added.
 * Used by the memory benchmark with BENCH_HEAP_DIFF=1, or on its own:
 *   node dist/bench/lib/heap-summary.js before.heapsnapshot after.heapsnapshot <connections>
 */
import fs from 'fs';

export type HeapCounts = Map<string, { count: number; bytes: number }>;

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function aggregateHeap(json: string): HeapCounts {
  const s = JSON.parse(json) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const nf = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out: HeapCounts = new Map();
  for (let i = 0; i < s.nodes.length; i += nf) {
    const type = types[s.nodes[i + iType]];
    const name = s.strings[s.nodes[i + iName]];
    let key: string;
    switch (type) {
      case 'object':
        key = name;
        break;
      case 'closure':
        key = `closure ${name || '(anonymous)'}`;
        break;
      case 'string':
      case 'concatenated string':
      case 'sliced string':
        key = '(string)';
        break;
      case 'array':
        key = `(array) ${name}`;
        break;
      case 'number':
        key = '(heap number)';
        break;
      case 'native':
        key = `(native) ${name.split(' ')[0]}`;
        break;
      default:
        key = `(${type})`;
    }
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += s.nodes[i + iSize];
    out.set(key, e);
  }
  return out;
}

export interface HeapDiffRow {
  what: string;
  countPerConnection: number;
  bytesPerConnection: number;
}

/** What grew between two snapshots, per connection, biggest first. */
export function diffHeap(
  before: HeapCounts,
  after: HeapCounts,
  connections: number,
  top = 25,
): { totalBytesPerConnection: number; rows: HeapDiffRow[] } {
  const rows: HeapDiffRow[] = [];
  let totalBytes = 0;
  for (const [k, a] of after) {
    const b = before.get(k) ?? { count: 0, bytes: 0 };
    const dBytes = a.bytes - b.bytes;
    totalBytes += dBytes;
    rows.push({ what: k, countPerConnection: (a.count - b.count) / connections, bytesPerConnection: dBytes / connections });
  }
  for (const [k, b] of before) if (!after.has(k)) totalBytes -= b.bytes;
  rows.sort((x, y) => y.bytesPerConnection - x.bytesPerConnection);
  return { totalBytesPerConnection: totalBytes / connections, rows: rows.slice(0, top) };
}

export function formatHeapDiff(title: string, d: { totalBytesPerConnection: number; rows: HeapDiffRow[] }): string {
  const lines = [`${title}: ${d.totalBytesPerConnection.toFixed(0)} bytes of V8 heap (self sizes) per connection; biggest contributors:`];
  for (const r of d.rows)
    lines.push(`  ${r.bytesPerConnection.toFixed(0).padStart(6)} B  ${r.countPerConnection.toFixed(2).padStart(6)} objs  ${r.what}`);
  return lines.join('\n');
}

if (require.main === module) {
  const [a, b, n] = process.argv.slice(2);
  if (!a || !b || !n) {
    process.stderr.write('usage: node dist/bench/lib/heap-summary.js before.heapsnapshot after.heapsnapshot <connections>\n');
    process.exit(2);
  }
  const d = diffHeap(aggregateHeap(fs.readFileSync(a, 'utf8')), aggregateHeap(fs.readFileSync(b, 'utf8')), Number(n), 40);
  process.stdout.write(formatHeapDiff(`${a} -> ${b}`, d) + '\n');
}
