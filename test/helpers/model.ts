import { execFile, type ExecFileException } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readControllerInfo } from '../../agent/controller/model.js';
import { killMarked, pidsWithEnv } from './procs.js';

export const MARK = 'PGCHARM_TEST_RUN';
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'agent', 'cli.js');
export const RECORDER_YAML = join(ROOT, 'test', 'fixtures', 'recorder', 'charm.yaml');
export const RECORDER_MODULE = join(ROOT, 'dist', 'test', 'fixtures', 'recorder', 'charm.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestModel {
  dir: string;
  /** The environment marker every process started for this model carries. */
  marker: string;
  /** A copy of the fixture's charm.yaml the test may edit. */
  charm: string;
  cli(args: string[], timeoutMs?: number): Promise<CliResult>;
  /** Events recorded by the recorder charm on a unit (pod name like recorder-0). */
  events(pod: string): RecordedEvent[];
  cleanup(): Promise<void>;
}

export interface RecordedEvent {
  t: number;
  event: string;
  unit: string;
  leader: boolean;
  config: Record<string, unknown>;
  remote: string | null;
  peers: string[];
}

/**
 * A temp model directory for a local deployment of the recorder charm. Every process the CLI
 * starts (controller, sidecars, agents) inherits a marker, so cleanup kills them all even
 * when a test failed halfway.
 */
export function testModel(): TestModel {
  const dir = mkdtempSync(join(tmpdir(), 'pgcharm-model-'));
  chmodSync(dir, 0o755);
  const charm = join(dir, '..', `${dir.split('/').pop()}-charm.yaml`);
  copyFileSync(RECORDER_YAML, charm);
  const marker = randomUUID();
  return {
    dir,
    marker,
    charm,
    cli(args, timeoutMs = 120_000) {
      return new Promise((res) => {
        execFile(
          process.execPath,
          [CLI, args[0]!, '--model', dir, ...args.slice(1)], // before any `--`
          // Tests audit the agents' requests (the RBAC test reads them); a user's model does not by default.
          { env: { ...process.env, [MARK]: marker, PGCHARM_MODEL: '', PGCHARM_AUDIT: '1' }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
          (err: ExecFileException | null, stdout, stderr) => res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
        );
      });
    },
    events(pod) {
      const f = join(dir, 'units', pod, 'events.jsonl');
      if (!existsSync(f)) return [];
      return readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as RecordedEvent);
    },
    async cleanup() {
      const info = readControllerInfo(dir);
      if (info) {
        try {
          process.kill(info.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        for (let i = 0; i < 300 && pidsWithEnv(MARK, marker).length; i++) await new Promise((r) => setTimeout(r, 100));
      }
      killMarked(MARK, marker);
      // For a post-mortem: PGCHARM_KEEP_LOGS=DIR keeps each model's unit and controller logs.
      const keep = process.env['PGCHARM_KEEP_LOGS'];
      if (keep && existsSync(join(dir, 'logs'))) cpSync(join(dir, 'logs'), join(keep, dir.split('/').pop()!), { recursive: true });
      rmSync(dir, { recursive: true, force: true });
      rmSync(charm, { force: true });
    },
  };
}

export function deployArgs(m: TestModel, units = 3): string[] {
  return ['deploy', '--units', String(units), '--charm', m.charm, '--charm-module', RECORDER_MODULE, '--timeout', '90'];
}
