import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killMarked } from '../../agent/procs.js';
import type { ChaosResult } from '../../bench/chaos/run.js';
import { ROOT } from '../helpers/model.js';

/**
 * The chaos suite's short run, as `npm run chaos -- --cycles 3` runs it: seed 1 injects a
 * controller kill during a failover, a restart-class config change with a unit killed during
 * it, and a standby killed while it clones (the full run is `npm run chaos -- --cycles 20`).
 */
describe('chaos (3 cycles)', () => {
  const marker = `chaos-${process.pid}-${Date.now()}`;
  const out = mkdtempSync(join(tmpdir(), 'pgcharm-chaos-test-'));
  afterAll(() => {
    killMarked('PGCHARM_TEST_RUN', marker);
    rmSync(out, { recursive: true, force: true });
  });

  it('loses no acknowledged write, never has two writable primaries, and heals after every fault', async () => {
    const cli = join(ROOT, 'dist', 'bench', 'chaos', 'index.js');
    const child = spawn(process.execPath, [cli, '--cycles', '3', '--seed', '1', '--out', out], { env: { ...process.env, PGCHARM_TEST_RUN: marker, PGCHARM_MODEL: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code, stderr).toBe(0);
    const r = JSON.parse(stdout) as ChaosResult;
    expect(r.result).toBe('pass');
    expect(r.cycles.map((c) => c.fault)).toEqual(['kill-controller-during-failover', 'config-change-in-flight', 'kill-standby-during-clone']);
    expect(r.acknowledged_writes_lost).toBe(0);
    expect(r.double_primaries).toBe(0);
    expect(r.acknowledged_writes).toBeGreaterThan(500);
    for (const c of r.cycles) {
      expect(c.lost).toBe(0);
      expect(c.max_writable_at_once).toBeLessThanOrEqual(1);
    }
  }, 900_000);
});
