import { shlexJoin, shlexSplit } from './shlex.js';

/**
 * Pebble's service command syntax: `cmd arg [ --default --args ]`. The bracketed group
 * holds default arguments that a caller may replace; nothing may follow it.
 */
export function parseCommand(command: string): { base: string[]; extra: string[] } {
  const args = shlexSplit(command);
  const base: string[] = [];
  const extra: string[] = [];
  let inBrackets = false;
  let gotBrackets = false;
  args.forEach((arg, idx) => {
    if (inBrackets) {
      if (arg === '[') throw new Error('cannot nest [ ... ] groups');
      if (arg === ']') {
        inBrackets = false;
        return;
      }
      extra.push(arg);
      return;
    }
    if (gotBrackets) throw new Error('cannot have any arguments after [ ... ] group');
    if (arg === '[') {
      if (idx === 0) throw new Error('cannot start command with [ ... ] group');
      inBrackets = true;
      gotBrackets = true;
      return;
    }
    if (arg === ']') throw new Error('cannot have ] outside of [ ... ] group');
    base.push(arg);
  });
  if (inBrackets) throw new Error('cannot find closing ] of [ ... ] group');
  if (base.length === 0) throw new Error('command is empty');
  return { base, extra };
}

export function commandString(base: string[], extra: string[]): string {
  return extra.length ? `${shlexJoin(base)} [ ${shlexJoin(extra)} ]` : shlexJoin(base);
}

/** The argv a service runs with: base plus the default args. */
export function commandArgv(command: string): string[] {
  const { base, extra } = parseCommand(command);
  return [...base, ...extra];
}
