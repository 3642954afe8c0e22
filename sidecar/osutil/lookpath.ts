import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * exec.LookPath: a name with a slash is used as is (relative to the directory the process
 * will run in), otherwise PATH is searched. Resolving up front turns "not found" into a
 * synchronous, clear error instead of a late spawn error event.
 */
export function lookPath(name: string, searchPath: string, workingDir: string): string | undefined {
  if (name === '') return undefined;
  if (name.includes('/')) {
    return isExecutableFile(path.resolve(workingDir, name)) ? name : undefined;
  }
  for (const dir of searchPath.split(':')) {
    const candidate = path.resolve(workingDir, dir || '.', name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

export function checkDir(dir: string, field = 'working-dir'): void {
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(`${field} ${JSON.stringify(dir)} does not exist or is not a directory`);
}
