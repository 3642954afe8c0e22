// `npm run build:sidecar` (after tsc): the sidecar daemon as one ES module, dist/sidecar/bundle/cli.js,
// with what it loads only on demand (the CLI's commands, exec's WebSocket server, password
// hashing) in chunks beside it, loaded as before by dynamic import().
// Why: the sidecar is PID 1 of every Postgres pod and starts with every unit. ~60 modules that
// the ESM loader resolved, read and linked one by one become a few files. Measured on Node 20
// with the same flags: start to API ready 175 -> 150 ms (CPU 160 -> 140 ms); RSS of an idle
// unit's sidecar 53.2 -> 52.0 MB. Minified identifiers would save another ~0.2 MB: not worth
// stack traces nobody can read. Whitespace and syntax only are minified;
// `node --enable-source-maps` maps them back to the TypeScript through the linked source map.
// dist/sidecar/bundle/chunks.json says which compiled module went into which chunk
// (test/runtime/footprint.test.ts checks what a started sidecar has loaded).
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = 'dist/sidecar/bundle';
rmSync(`${root}/${outdir}`, { recursive: true, force: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: { cli: 'dist/sidecar/cli.js' },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  outdir,
  chunkNames: '[name]-[hash]',
  // npm packages (commander, busboy, node-pty, ws for the client) stay in node_modules, loaded
  // when first needed: they are CommonJS, whose require() of Node's modules fails inside an ES
  // module bundle. The '#' bundles of dist/vendor/ are ES modules: they are bundled in.
  packages: 'external',
  metafile: true,
  logLevel: 'warning',
});

const chunks = Object.fromEntries(
  Object.entries(result.metafile.outputs)
    .filter(([file]) => file.endsWith('.js'))
    .map(([file, o]) => [relative(outdir, file), Object.keys(o.inputs).sort()]),
);
writeFileSync(`${root}/${outdir}/chunks.json`, `${JSON.stringify(chunks, null, 1)}\n`);
