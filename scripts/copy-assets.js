// Copies non-TypeScript assets (Lua scripts, the demo page) next to the compiled JavaScript.
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');
for (const dir of ['services/core/redis/lua', 'services/gateway/public']) {
  const src = path.join(root, dir);
  if (!fs.existsSync(src)) continue;
  const dst = path.join(root, 'dist', dir);
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
}
