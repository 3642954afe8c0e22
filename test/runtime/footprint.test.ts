import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../agent/node-flags.js';
import { SIDECAR_NODE_FLAGS } from '../../sidecar/node-flags.js';
import { ROOT } from '../helpers/model.js';

/** What keeps the long-running processes small (issue 13): flags, and modules they must not load. */

const source = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const entrypoint = (dockerfile: string): string[] => JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(source(dockerfile))?.[1] ?? '[]') as string[];

describe('node flags', () => {
  it('the CLI (shebang) runs with the flags the controller and the kubelet start it with', () => {
    expect(source('agent/cli.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`);
  });

  it("the charm image's agent runs with them", () => {
    expect(entrypoint('Dockerfile')).toEqual(['node', ...AGENT_NODE_FLAGS, '/opt/pgcharm/dist/agent/cli.js', 'agent']);
  });

  it.each(['14', '15', '16'])("the workload image's sidecar (Postgres %s) runs with the sidecar's", (major) => {
    expect(entrypoint(`images/postgresql/${major}/Dockerfile`)).toEqual(['node', ...SIDECAR_NODE_FLAGS, '/opt/pgcharm/dist/sidecar/cli.js', 'run', '--dir', '/var/lib/pebble/default']);
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

describe('vendored libraries', () => {
  it('are imported through their # specifier only: a direct import would load a second copy', () => {
    const direct = ['agent', 'sidecar'].flatMap((dir) =>
      (readdirSync(join(ROOT, dir), { recursive: true }) as string[])
        .filter((f) => f.endsWith('.ts'))
        .filter((f) => /from '(zod|yaml|ajv|@kubernetes\/client-node)(\/[^']*)?'/.test(source(join(dir, f))))
        .map((f) => join(dir, f)),
    );
    expect(direct).toEqual([]);
  });
});
