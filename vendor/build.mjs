// `npm run build:vendor`: the third-party libraries that the long-running processes load, each
// bundled into one file of dist/vendor/ and imported as '#<name>' (package.json "imports"); the
// declaration file vendor/<name>.d.ts is both the types of '#<name>' and the bundle's entry, so
// the values it exports are what the bundle holds (tsc refuses a value import not in the list).
// Why: a process pays for each module it loads, and these come as many. Measured on Node 20,
// each loaded into an empty process with the agent's flags, heap after GC (RSS):
// - @kubernetes/client-node, ~970 modules: 12.9 MB (+21 MB); the parts pgcharm uses: 5.2 MB (+9.4 MB),
//   and one file loads in 0.24 s instead of 0.84 s;
// - zod (95 modules), yaml (72) and ajv (63) together: 4.3 MB (+8.5 MB); bundled: 2.6 MB (+4.4 MB);
// - for the sidecar, the zod/mini functions its layer parser uses: +0.4 MB RSS where `#zod` is +3.4 MB;
//   pino's ~20 modules as one file: +1.4 MB RSS instead of +2.3 MB, loaded in 12 ms instead of 27 ms;
//   ws's as one file: +1.9 MB instead of +3.2 MB (with node:http loaded), 31 ms of CPU instead of 58.
// Every process must import these libraries through '#<name>' only: a direct import would load a
// second copy (test/runtime/footprint.test.ts checks).
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * client-node's modules have no side effects on load, but its package.json does not say so:
 * without this esbuild keeps every module a kept one imports (tar-fs for `cp`, ws for `exec`...).
 */
const clientNodeSideEffectFree = {
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

/** zod loads its ~40 locales (0.4 MB of source) for `z.locales`; pgcharm's messages are its own, in English. */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (a) => ({
      contents: 'export { default as en } from "./en.js";',
      resolveDir: fileURLToPath(new URL('.', `file://${a.path}`)),
    }));
  },
};

/**
 * prom-client's index also loads its default Node metrics, the cluster aggregator, the
 * Pushgateway client and OpenTelemetry's API (bundled: +6.3 MB RSS, 45 ms of CPU at start); the
 * four classes the agent uses, from their own files: +0.3 MB, 6 ms.
 */
const promClientCore = {
  name: 'prom-client-core',
  setup(b) {
    b.onResolve({ filter: /^prom-client$/ }, (a) => (a.kind === 'import-statement' && a.importer.endsWith('prom-client.d.ts') ? { path: 'prom-client', namespace: 'prom-client-core' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'prom-client-core' }, () => ({
      contents: ['Registry', 'Counter', 'Gauge', 'Histogram'].map((c) => `export { default as ${c} } from 'prom-client/lib/${c.toLowerCase()}.js';`).join('\n'),
      resolveDir: root,
    }));
  },
};

/**
 * unixcrypt 3.0.4 (sha512-crypt for the sidecar's basic-auth identities) gets SHA-crypt steps 10
 * and 16 wrong when the password's length in bytes is a multiple of 64 (`openssl rand -hex 32`
 * makes such passwords): it takes `length % 64` = 0 bytes of the last block where the
 * specification takes all 64, so the right password never matches (test/sidecar/identities.test.ts
 * compares it with `openssl passwd -6`). The fix takes the last block whole; the build stops if
 * the code it fixes has changed (an upgrade may have fixed it: then drop this plugin).
 */
const unixcryptBlockFix = {
  name: 'unixcrypt-block-fix',
  setup(b) {
    b.onLoad({ filter: /[\\/]unixcrypt[\\/]dist[\\/]index\.js$/ }, async (a) => {
      const wrong = 'const remainder = plaintextByteLength % digestSize;';
      const right = 'const remainder = plaintextByteLength - Math.max(0, Math.ceil(plaintextByteLength / digestSize) - 1) * digestSize;';
      const source = await readFile(a.path, 'utf8');
      const count = source.split(wrong).length - 1;
      if (count !== 2) throw new Error(`unixcrypt-block-fix: expected the faulty line twice in ${a.path}, found it ${count} times: check whether the upgrade fixed it`);
      return { contents: source.replaceAll(wrong, right), loader: 'js' };
    });
  },
};

const bundles = {
  'client-node': {
    plugins: [clientNodeSideEffectFree],
    // node-fetch v2 falls back to whatwg-url (and its 260 KB Unicode table, tr46) only where there is no global URL.
    alias: { 'whatwg-url': './vendor/whatwg-url.cjs' },
  },
  zod: { plugins: [zodEnglishOnly] },
  'zod-mini': {},
  pino: {},
  // Its optional native helpers stay optional: required at run time only if installed.
  ws: { external: ['bufferutil', 'utf-8-validate'] },
  yaml: {},
  ajv: {},
  // pg-native (libpq bindings) is optional and not installed; pg-cloudflare only for Cloudflare Workers.
  pg: { external: ['pg-native', 'pg-cloudflare'] },
  'prom-client': { plugins: [promClientCore] },
  unixcrypt: { plugins: [unixcryptBlockFix] },
};

await Promise.all(
  Object.entries(bundles).map(([name, o]) =>
    build({
      absWorkingDir: root,
      entryPoints: [`vendor/${name}.d.ts`],
      loader: { '.d.ts': 'ts' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // Whitespace and syntax only: minified identifiers would save ~0.5 MB of client-node's heap and cost readable stack traces.
      minifyWhitespace: true,
      minifySyntax: true,
      logLevel: 'warning',
      outfile: `dist/vendor/${name}.js`,
      banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
      ...o,
    }),
  ),
);
