import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../agent/node-flags.js';
import { sidecarCli } from '../../agent/sidecar-location.js';
import { SIDECAR_NODE_FLAGS } from '../../sidecar/node-flags.js';
import { ROOT } from '../helpers/model.js';

/** What keeps the long-running processes small (issue 13): flags, and modules they must not load. */

const source = (path: string) => readFileSync(join(ROOT, path), 'utf8');
/** sidecar/bundle.mjs's list: each file of the sidecar's bundle and the compiled modules it holds. */
const bundleChunks = (): Record<string, string[]> => JSON.parse(readFileSync(join(dirname(sidecarCli()), 'chunks.json'), 'utf8')) as Record<string, string[]>;
const entrypoint = (dockerfile: string): string[] => JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(source(dockerfile))?.[1] ?? '[]') as string[];

describe('node flags', () => {
  it('the CLI (shebang) runs with the flags the controller and the kubelet start it with', () => {
    expect(source('agent/cli.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`);
  });

  it("the charm image's agent runs with them", () => {
    expect(entrypoint('Dockerfile')).toEqual(['node', ...AGENT_NODE_FLAGS, '/opt/pgcharm/dist/agent/cli.js', 'agent']);
  });

  it.each(['14', '15', '16'])("the workload image's sidecar (Postgres %s) runs with the sidecar's", (major) => {
    expect(entrypoint(`images/postgresql/${major}/Dockerfile`)).toEqual(['node', ...SIDECAR_NODE_FLAGS, '/opt/pgcharm/dist/sidecar/bundle/cli.js', 'run', '--dir', '/var/lib/pebble/default']);
  });
});

describe('modules the agent and the controller do not load', () => {
  it('the CLI imports no command statically: each command loads its own modules', () => {
    const imports = [...source('agent/cli.ts').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    // rotate.js: the log flags' help and parsing (node:fs only).
    expect(imports.sort()).toEqual(['../sidecar/logs/rotate.js', './charm-location.js', './controller/model.js', 'commander', 'node:fs']);
  });

  it("loading the PostgreSQL charm does not load undici (pg's Cloudflare probe) and leaves no navigator behind", () => {
    // A process of its own: vitest has loaded undici already.
    const script = `
      const { loadCharmModule } = await import(${JSON.stringify(join(ROOT, 'dist/agent/runtime/main.js'))});
      await loadCharmModule(${JSON.stringify(join(ROOT, 'dist/agent/charm/postgresql/charm.js'))});
      console.log(JSON.stringify({ undici: process.moduleLoadList.some((m) => m.includes('undici')), navigator: 'navigator' in globalThis }));`;
    const out = execFileSync(process.execPath, [...AGENT_NODE_FLAGS, '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop() ?? '')).toEqual({ undici: false, navigator: false });
  });
});

describe('modules the sidecar does not load until it needs them', () => {
  it('a started sidecar has loaded neither commander, the client, ws, node-pty, busboy, unixcrypt nor all of zod', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'pgcharm-footprint-'));
    const dir = join(tmp, 'pebble');
    mkdirSync(join(dir, 'layers'), { recursive: true });
    // A loader hook that names every file module loaded; the sidecar says 'sidecar ready' once it serves its API.
    const hook = `data:text/javascript,export async function load(u, c, n) { if (u.startsWith('file:')) process.stderr.write('LOADED ' + u + '\\n'); return n(u, c); }`;
    const p = spawn(process.execPath, [...SIDECAR_NODE_FLAGS, `--experimental-loader=${hook}`, sidecarCli(), 'run', '--dir', dir, '--hold'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    try {
      await new Promise<void>((resolve, reject) => {
        p.stderr.on('data', (c: Buffer) => {
          err += c.toString();
          if (err.includes('sidecar ready')) resolve();
        });
        p.on('exit', (code) => reject(new Error(`sidecar exited with ${code}: ${err}`)));
      });
    } finally {
      p.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
    }
    // The bundle's files, each standing for the compiled modules it holds.
    const bundle = dirname(sidecarCli());
    const chunks = bundleChunks();
    const loaded = [...err.matchAll(/^LOADED file:\/\/(.*)$/gm)].flatMap((m) => (dirname(m[1]!) === bundle ? (chunks[basename(m[1]!)] ?? []).map((f) => join(ROOT, f)) : [m[1]!]));
    expect(loaded).toContain(join(ROOT, 'dist/sidecar/daemon.js'));
    const unwanted = loaded.filter((f) => /\/node_modules\/(commander|ws|node-pty|busboy|zod|pino)\/|\/dist\/vendor\/(zod|ws|unixcrypt)\.js$|\/dist\/sidecar\/(commands\.js|client\/)/.test(f));
    expect(unwanted).toEqual([]);
  });

  it('the bundle keeps the lazy modules out of the files a start loads', () => {
    const chunks = bundleChunks();
    const holding = (input: RegExp) => Object.keys(chunks).filter((c) => chunks[c]!.some((f) => input.test(f)));
    // Each lazy one has a chunk of its own (imported when first needed), never the entry's.
    for (const lazy of [/^dist\/sidecar\/commands\.js$/, /^dist\/vendor\/ws\.js$/, /^dist\/vendor\/unixcrypt\.js$/]) {
      expect(holding(lazy).length, String(lazy)).toBe(1);
      expect(holding(lazy)).not.toContain('cli.js');
    }
  });
});

describe('vendored libraries', () => {
  it('are imported through their # specifier only: a direct import would load a second copy', () => {
    const direct = ['agent', 'sidecar'].flatMap((dir) =>
      (readdirSync(join(ROOT, dir), { recursive: true }) as string[])
        .filter((f) => f.endsWith('.ts'))
        .filter((f) => /from '(zod|yaml|ajv|pg|@kubernetes\/client-node)(\/[^']*)?'/.test(source(join(dir, f))))
        .map((f) => join(dir, f)),
    );
    expect(direct).toEqual([]);
  });

  it("the sidecar takes pino's and ws's values from #pino and #ws (one file each), their types from either", () => {
    const direct = (readdirSync(join(ROOT, 'sidecar'), { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts'))
      .filter((f) => /^import (?!type ).* from '(pino|ws)';$/m.test(source(join('sidecar', f))))
      .filter((f) => !f.startsWith('client/')); // the client runs in the agent, which imports 'ws'
    expect(direct).toEqual([]);
  });
});
