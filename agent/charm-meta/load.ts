import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap as isYamlMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from '#yaml';
import { validateCharmMeta } from './metadata.js';
import { CharmYamlError, formatPath, type Path, type Problem } from './problems.js';
import type { CharmMeta } from './schema.js';

/**
 * Parses charm.yaml text into CharmMeta, or throws CharmYamlError with every problem: YAML
 * syntax errors and schema problems alike carry the line and column they point at.
 * `file` names the file in messages only.
 */
export function parseCharmYaml(text: string, file = 'charm.yaml'): CharmMeta {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  if (doc.errors.length) {
    throw new CharmYamlError(
      file,
      doc.errors.map((e) => ({ path: '', message: e.message.split('\n')[0]!, ...lineCol(lineCounter, e.pos[0]) })),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new CharmYamlError(file, [{ path: '', message: (e as Error).message }]);
  }
  const { meta, problems } = validateCharmMeta(raw);
  if (!problems.empty) {
    const located: Problem[] = problems.items.map((p) => ({
      path: formatPath(p.path),
      message: p.message,
      ...locate(doc, p.path, lineCounter),
    }));
    // File order reads best; problems without a position (none today) go first.
    located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
    throw new CharmYamlError(file, located);
  }
  return meta;
}

/** Reads and parses a charm.yaml file; a file that cannot be read is a CharmYamlError too. */
export async function loadCharmYaml(path: string): Promise<CharmMeta> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CharmYamlError(basename(path), [{ path: '', message: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }]);
  }
  return parseCharmYaml(text, basename(path));
}

/**
 * The charm.yaml nearest above `from` (default: this module's folder, which finds the repo's
 * file both from sources and from dist/), or undefined.
 */
export function findCharmYaml(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'charm.yaml');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function lineCol(lc: LineCounter, offset: number | undefined): { line?: number; col?: number } {
  if (offset === undefined) return {};
  const { line, col } = lc.linePos(offset);
  return { line, col };
}

/**
 * Where a problem points: the value if the path reaches a scalar, else the key that names the
 * entry (an option, a field that is a map), else the deepest part of the path that exists
 * (for a missing required field: the entry that lacks it).
 */
function locate(doc: Document, path: Path, lc: LineCounter): { line?: number; col?: number } {
  let node: unknown = doc.contents;
  let key: Node | undefined;
  let complete = true;
  for (const seg of path) {
    if (isYamlMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (!pair) {
        complete = false;
        break;
      }
      key = isScalar(pair.key) ? pair.key : undefined;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      key = undefined;
      node = node.items[seg];
    } else {
      complete = false;
      break;
    }
  }
  const target = complete && isScalar(node) ? node : (key ?? (node as Node | null));
  return lineCol(lc, target?.range?.[0]);
}
