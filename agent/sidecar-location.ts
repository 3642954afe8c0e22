import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The sidecar's bundled entry point (sidecar/bundle.mjs), found from either dist/agent or agent/ (vitest). */
export function sidecarCli(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, '..', 'sidecar', 'bundle', 'cli.js'), join(here, '..', 'dist', 'sidecar', 'bundle', 'cli.js')]) {
    if (existsSync(candidate)) return resolve(candidate);
  }
  throw new Error('dist/sidecar/bundle/cli.js not found: run `npm run build` first (npm test and npm start do)');
}
