import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url)); // dist/agent

/** The repository's charm.yaml and the built-in PostgreSQL charm's code. */
export const DEFAULT_CHARM = resolve(here, '..', '..', 'charm.yaml');
export const DEFAULT_CHARM_MODULE = resolve(here, 'charm', 'postgresql', 'charm.js');
