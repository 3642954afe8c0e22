import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Debian keeps each major's server binaries in /usr/lib/postgresql/<major>/bin. */
export const PG_LIB = '/usr/lib/postgresql';

export function installedMajors(): number[] {
  if (!existsSync(PG_LIB)) return [];
  return readdirSync(PG_LIB)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(PG_LIB, d, 'bin', 'postgres')))
    .map(Number)
    .sort((a, b) => b - a);
}

/**
 * The bin directory for a major (newest installed when none is asked for). The error says
 * exactly what to install, because this is the first thing a newcomer hits.
 */
export function pgBinDir(major?: number): string {
  const majors = installedMajors();
  const want = major ?? majors[0];
  if (want !== undefined && majors.includes(want)) return join(PG_LIB, String(want), 'bin');
  const pkg = `postgresql-${major ?? 15}`;
  throw new Error(
    `PostgreSQL ${major ?? ''} server binaries not found in ${PG_LIB}/<major>/bin. ` +
      `Install them as root: apt-get update && apt-get install -y ${pkg}`.replace('  ', ' '),
  );
}
