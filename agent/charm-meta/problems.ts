/**
 * Every check in this package reports *all* problems it finds, each naming where (a path such
 * as `config.options.max-connections.default`) and why. Nothing is applied while any problem
 * exists (DESIGN.md invariant 4), so callers get either a value or an error listing them all.
 */

/** One problem. `line`/`col` (1-based) are set when it comes from a file we could point into. */
export interface Problem {
  path: string;
  message: string;
  line?: number;
  col?: number;
}

export type PathSeg = string | number;
export type Path = readonly PathSeg[];

/** `['containers', 'postgresql', 'mounts', 0]` -> `containers.postgresql.mounts[0]`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** Collects problems with structured paths while a check runs. */
export class ProblemList {
  readonly items: { path: Path; message: string }[] = [];

  add(path: Path, message: string): void {
    this.items.push({ path, message });
  }

  get empty(): boolean {
    return this.items.length === 0;
  }

  toProblems(): Problem[] {
    return this.items.map((p) => ({ path: formatPath(p.path), message: p.message }));
  }
}

/** How a value shows up in a message: strings quoted so `""` and `" x"` are visible. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return String(v);
}

export interface RenderOptions {
  /** Prefix problems that carry a position with `file:line:col: `, as compilers do. */
  file?: string;
}

/** For a terminal: one problem per line, `path: reason`. */
export function renderProblems(problems: readonly Problem[], opts: RenderOptions = {}): string {
  return problems
    .map((p) => {
      const where = opts.file !== undefined && p.line !== undefined ? `${opts.file}:${p.line}:${p.col ?? 1}: ` : '';
      return where + (p.path ? `${p.path}: ${p.message}` : p.message);
    })
    .join('\n');
}

/** Base class: an error that carries every problem found. */
export class ProblemsError extends Error {
  readonly problems: readonly Problem[];

  constructor(heading: string, problems: readonly Problem[], opts: RenderOptions = {}) {
    const n = problems.length;
    const body = renderProblems(problems, opts)
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n');
    super(`${heading}: ${n} problem${n === 1 ? '' : 's'}\n${body}`);
    this.problems = problems;
  }
}

/** charm.yaml could not be read, parsed or validated. */
export class CharmYamlError extends ProblemsError {
  override name = 'CharmYamlError';

  constructor(
    readonly file: string,
    problems: readonly Problem[],
  ) {
    super(`invalid ${file}`, problems, { file });
  }
}

/** `pgcharm config` input or stored settings were refused; paths are option names. */
export class ConfigError extends ProblemsError {
  override name = 'ConfigError';

  constructor(problems: readonly Problem[], heading = 'config refused') {
    super(heading, problems);
  }
}

/** `pgcharm run` input was refused; paths are `params.<name>` or the action name. */
export class ActionParamsError extends ProblemsError {
  override name = 'ActionParamsError';

  constructor(
    readonly action: string,
    problems: readonly Problem[],
  ) {
    super(`action ${JSON.stringify(action)} refused`, problems);
  }
}
