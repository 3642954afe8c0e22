import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { debugLog } from '../../agent/commands/debug-log.js';
import { RotatingFile } from '../../sidecar/logs/rotate.js';
import { waitFor } from '../helpers/procs.js';

/** `pgcharm debug-log` over logs that rotate: x.log.N … x.log.1, x.log read as one, followed across rotations. */
describe('debug-log with rotated files', () => {
  let model: string;
  let logs: string;
  beforeEach(() => {
    model = mkdtempSync(join(tmpdir(), 'pgcharm-debuglog-'));
    logs = join(model, 'logs');
    mkdirSync(logs);
  });
  afterEach(() => {
    rmSync(model, { recursive: true, force: true });
  });

  const line = (time: number, msg: string) => `${JSON.stringify({ level: 30, time, unit: 'postgresql/0', msg })}\n`;
  const run = async (lines: number) => {
    let out = '';
    await debugLog(model, { lines, follow: false, include: [], minLevel: 20, write: (s) => void (out += s) });
    return out.trim().split('\n').filter(Boolean);
  };

  it('merges the rotated files of every source by time, oldest first, and reads only as far back as asked', async () => {
    // 1 KB files: an agent's 60 lines of ~90 bytes fill several; the sidecar's are interleaved in time.
    const agent = new RotatingFile(join(logs, 'postgresql-0.agent.log'), { maxBytes: 1024, files: 5 });
    const sidecar = new RotatingFile(join(logs, 'postgresql-0.sidecar.log'), { maxBytes: 1024, files: 5 });
    for (let i = 0; i < 60; i++) {
      agent.write(line(1_000_000 + 2 * i, `agent ${i}`));
      // A service line (Postgres's) carries the time the sidecar stamped on it.
      sidecar.write(`${new Date(1_000_001 + 2 * i).toISOString()} [postgresql] LOG:  line ${i}\n`);
    }
    agent.close();
    sidecar.close();
    expect(readdirSync(logs).filter((f) => f.startsWith('postgresql-0.agent.log.')).length).toBeGreaterThan(2);

    const all = await run(1000);
    const kept = (source: RegExp) => all.filter((l) => source.test(l)).map((l) => Number(/(?:agent|line) (\d+)$/.exec(l)![1]));
    const agentKept = kept(/postgresql\/0:agent INFO agent \d+$/);
    // Everything still on disk (the oldest lines went with the file past the fifth), in order, up to the newest.
    expect(agentKept.at(-1)).toBe(59);
    expect(agentKept).toEqual(agentKept.map((_, i) => agentKept[0]! + i));
    expect(kept(/postgresql\/0:sidecar .* LOG: {2}line \d+$/).at(-1)).toBe(59);
    // Merged by time: agent and sidecar lines alternate at the end.
    expect(all.slice(-4).map((l) => / (agent|line) \d+$/.exec(l)![1])).toEqual(['agent', 'line', 'agent', 'line']);

    const last = await run(3);
    expect(last).toHaveLength(3);
    expect(last.at(-1)).toMatch(/line 59$/);
  });

  it('follows a log across a rotation without losing or repeating a line', async () => {
    const path = join(logs, 'controller.log');
    const f = new RotatingFile(path, { maxBytes: 1024, files: 3 });
    for (let i = 0; i < 5; i++) f.write(line(2_000_000 + i, `before ${i}`));
    let out = '';
    const stop = new AbortController();
    const following = debugLog(model, { lines: 100, follow: true, include: ['controller'], minLevel: 20, write: (s) => void (out += s), signal: stop.signal });
    try {
      await waitFor('the history', () => out.includes('before 4'));
      // 40 lines of ~90 bytes: past the 1 KB cap several times while being followed.
      for (let i = 0; i < 40; i++) {
        f.write(line(2_000_100 + i, `after ${i}`));
        if (i % 7 === 0) await new Promise((r) => setTimeout(r, 300));
      }
      await waitFor('the last line', () => out.includes('after 39'), 10_000);
    } finally {
      stop.abort();
      await following;
      f.close();
    }
    expect(readdirSync(logs).filter((n) => n.startsWith('controller.log.')).length).toBeGreaterThan(1);
    const msgs = out.trim().split('\n').map((l) => /INFO (.*)$/.exec(l)![1]);
    expect(msgs).toEqual([...Array.from({ length: 5 }, (_, i) => `before ${i}`), ...Array.from({ length: 40 }, (_, i) => `after ${i}`)]);
  });
});
