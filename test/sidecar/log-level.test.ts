import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sidecarCli } from '../../agent/sidecar-location.js';
import { APIError } from '../../sidecar/client/errors.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { waitFor } from '../helpers/procs.js';

/** The sidecar's own log level: --log-level at start, POST /v1/log-level while it runs (what agent-log-level drives). */
describe('sidecar log level', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    sc = await startTestSidecar({ hold: true });
  });
  afterAll(async () => {
    await sc?.cleanup();
  });

  it('starts at info and changes at run time, without a restart', async () => {
    const boot = (await sc.client.getSystemInfo())['boot-id'];
    expect(await sc.client.getLogLevel()).toBe('info');
    // debug lines (service state changes, among others) appear only once the level allows them.
    await sc.client.addLayer('sleeper', 'services:\n  s:\n    override: replace\n    command: sleep 30\n');
    await sc.client.waitChange(await sc.client.start(['s']));
    expect(sc.output()).not.toMatch(/"level":20,.*"service state"/);
    await sc.client.setLogLevel('debug');
    expect(await sc.client.getLogLevel()).toBe('debug');
    await sc.client.waitChange(await sc.client.stop(['s']));
    await waitFor('a debug line', () => /"level":20,.*"service state"/.test(sc.output()));
    expect((await sc.client.getSystemInfo())['boot-id']).toBe(boot);
  });

  it('refuses a level it does not know, naming the field, and keeps its level', async () => {
    const e = await sc.client.setLogLevel('verbose').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIError);
    expect((e as APIError).message).toMatch(/level: must be one of trace, debug, info, warn, error, got "verbose"/);
    expect(await sc.client.getLogLevel()).toBe('debug');
  });

  it('refuses a bad --log-level at start', () => {
    const r = spawnSync(process.execPath, [sidecarCli(), 'run', '--dir', '/nonexistent', '--log-level', 'loud'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--log-level: must be one of trace, debug, info, warn, error, got "loud"/);
  });
});
