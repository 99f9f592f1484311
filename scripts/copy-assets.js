// Copies non-TypeScript assets (Lua scripts, the demo page) next to the compiled JavaScript.
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');
for (const dir of ['services/core/redis/lua', 'services/gateway/public']) {
  const src = path.join(root, dir);
  if (!fs.existsSync(src)) continue;
  const dst = path.join(root, 'dist', dir);
  // A script removed from the sources must not linger in dist/ (scripts.ts refuses undeclared ones).
  fs.rmSync(dst, { recursive: true, force: true });
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
}
