// `npm run build:dashboard`: the dashboard page into dist/dashboard/ (index.html, app.js, app.css),
// bundled and minified by esbuild from app.ts and its libraries (Preact, htm, uPlot): the page
// loads nothing from the internet.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const out = `${root}/dist/dashboard`;
mkdirSync(out, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: { app: 'agent/dashboard/web/app.ts' },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: false,
  logLevel: 'warning',
  outdir: out,
});
copyFileSync(`${root}/agent/dashboard/web/index.html`, `${out}/index.html`);
