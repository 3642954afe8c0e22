// `npm run build:vendor`: @kubernetes/client-node bundled into dist/vendor/client-node.js (the
// `#client-node` import, see package.json "imports"). One file instead of ~970 modules loads in
// a quarter of the time; and only what agent/vendor/client-node.d.ts exports is kept.
// Measured on Node 20 (heap after GC, bundle loaded into an empty process): the whole library
// 12.9 MB, this bundle 5.2 MB.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The library's modules have no side effects on load, but its package.json does not say so:
 * without this esbuild keeps every module a kept one imports (tar-fs for `cp`, ws for `exec`...).
 */
const sideEffectFree = {
  name: 'client-node-side-effect-free',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (a) => {
      if (a.pluginData === 'inner' || a.kind === 'entry-point') return undefined;
      const r = await b.resolve(a.path, { resolveDir: a.resolveDir, kind: a.kind, importer: a.importer, pluginData: 'inner' });
      if (r.errors.length || r.external || !r.path.includes('/@kubernetes/client-node/dist/')) return undefined;
      return { ...r, sideEffects: false };
    });
  },
};

await build({
  absWorkingDir: root,
  // The type declarations of `#client-node` are the entry: what they export as values is what the bundle holds.
  entryPoints: ['agent/vendor/client-node.d.ts'],
  loader: { '.d.ts': 'ts' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  outfile: 'dist/vendor/client-node.js',
  // node-fetch v2 falls back to whatwg-url (and its 260 KB Unicode table, tr46) only where there is no global URL.
  alias: { 'whatwg-url': './agent/vendor/whatwg-url.cjs' },
  banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
  plugins: [sideEffectFree],
});
