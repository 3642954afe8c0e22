import { existsSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url)); // dist/agent
const ROOT = resolve(here, '..', '..');

/** The repository's charm.yaml and the built-in PostgreSQL charm's code. */
export const DEFAULT_CHARM = resolve(ROOT, 'charm.yaml');
export const DEFAULT_CHARM_MODULE = resolve(here, 'charm', 'postgresql', 'charm.js');

/**
 * A charm's code for its charm.yaml: the built-in PostgreSQL charm for the repository's
 * charm.yaml; else `charm.js` beside the charm.yaml; else, for a charm.yaml in this repository
 * (examples/todo/charm.yaml), its compiled `charm.js` under dist/ at the same place. Undefined
 * when there is none (deploy then says to build it or pass --charm-module).
 */
export function charmModuleFor(charmYaml: string): string | undefined {
  const yaml = resolve(charmYaml);
  if (yaml === DEFAULT_CHARM) return DEFAULT_CHARM_MODULE;
  const beside = resolve(dirname(yaml), 'charm.js');
  if (existsSync(beside)) return beside;
  const rel = relative(ROOT, dirname(yaml));
  if (!rel.startsWith('..') && !rel.startsWith('/')) {
    const built = resolve(ROOT, 'dist', rel, 'charm.js');
    if (existsSync(built)) return built;
  }
  return undefined;
}
