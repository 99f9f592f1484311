// The soak's end-of-run table (plain text, fixed width).

export interface Row {
  label: string;
  value: string | number;
  /** 'ok' / 'FAIL' for a pass criterion, '' for information. */
  verdict?: '' | 'ok' | 'FAIL';
  indent?: number;
}

export function criterion(label: string, value: number, indent = 0): Row {
  return { label, value, verdict: value === 0 ? 'ok' : 'FAIL', indent };
}

export function info(label: string, value: string | number, indent = 0): Row {
  return { label, value, verdict: '', indent };
}

export function table(title: string, rows: Row[]): string {
  const w = Math.max(...rows.map((r) => r.label.length + 2 * (r.indent ?? 0)), 20);
  const v = Math.max(...rows.map((r) => String(r.value).length), 5);
  const lines = [title, `  ${'verdict'.padEnd(w)}  ${'count'.padStart(v)}  pass`];
  for (const r of rows) {
    const label = `${'  '.repeat(r.indent ?? 0)}${r.label}`;
    lines.push(`  ${label.padEnd(w)}  ${String(r.value).padStart(v)}  ${r.verdict ?? ''}`.trimEnd());
  }
  return lines.join('\n');
}

/** A small grid: header row then data rows, columns padded. */
export function grid(header: string[], data: Array<Array<string | number>>): string {
  const all = [header, ...data.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => '  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}
