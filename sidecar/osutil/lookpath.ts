import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * Resolves a command like exec(3) would, so that "not found" and "not executable" are
 * reported synchronously with a clear message instead of as a late spawn error event.
 */
export function lookPath(cmd: string, envPath: string | undefined, cwd: string): string {
  const check = (p: string): boolean => {
    try {
      const st = statSync(p);
      if (!st.isFile()) return false;
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (cmd.includes('/')) {
    const full = isAbsolute(cmd) ? cmd : join(cwd, cmd);
    if (!check(full)) throw new Error(`cannot find executable ${JSON.stringify(cmd)}`);
    return full;
  }
  for (const dir of (envPath ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (dir && check(join(dir, cmd))) return join(dir, cmd);
  }
  throw new Error(`cannot find executable ${JSON.stringify(cmd)} in $PATH`);
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
