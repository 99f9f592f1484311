import fs from 'fs';
import path from 'path';
import { settingsTable } from '../../services/core/platform/config';

/** docs/CONFIGURATION.md holds the settings table as settingsTable() renders it; `npm run docs` rewrites it. */
const FILE = path.join(__dirname, '../../docs/CONFIGURATION.md');
const START = /<!-- generated from [^\n]*-->\n/;
const END = '<!-- end of generated table -->';

function render(): string {
  const rows = settingsTable().map((r) => `| \`${r.env}\` | ${r.def} | ${r.services} | ${r.doc} |`);
  return ['| Variable | Default | Service | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}

test('docs/CONFIGURATION.md lists every setting exactly as config.ts defines it', () => {
  const doc = fs.readFileSync(FILE, 'utf8');
  const start = START.exec(doc);
  const end = doc.indexOf(END);
  expect(start).not.toBeNull();
  expect(end).toBeGreaterThan(start!.index);
  const from = start!.index + start![0].length;
  if (process.env.UPDATE_DOCS === '1') fs.writeFileSync(FILE, doc.slice(0, from) + render() + doc.slice(end));
  expect(fs.readFileSync(FILE, 'utf8').slice(from, fs.readFileSync(FILE, 'utf8').indexOf(END))).toBe(render());
});
