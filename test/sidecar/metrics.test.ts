import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { renderMetrics } from '../../sidecar/api/metrics.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { waitFor } from '../helpers/procs.js';

const get = (socketPath: string, path: string) =>
  new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
    http
      .get({ socketPath, path }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
      })
      .on('error', reject);
  });

/** `name{label="value"} n` lines as a map. */
const samples = (text: string): Record<string, number> => Object.fromEntries([...text.matchAll(/^(pebble_\w+\{[^}]*\}) (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));

describe("the sidecar's GET /v1/metrics, as Pebble's", () => {
  let sc: TestSidecar | undefined;
  afterEach(async () => {
    await sc?.cleanup();
    sc = undefined;
  });

  it("renders Pebble's names, comments and layout exactly", () => {
    expect(renderMetrics({ services: [{ name: 'test1', active: true, starts: 1 }], checks: [{ name: 'chk1', up: undefined, successes: 0, failures: 0 }] })).toBe(
      [
        '# HELP pebble_service_active Whether the service is currently active (1) or not (0)',
        '# TYPE pebble_service_active gauge',
        'pebble_service_active{service="test1"} 1',
        '',
        '# HELP pebble_service_start_count Number of times the service has started',
        '# TYPE pebble_service_start_count counter',
        'pebble_service_start_count{service="test1"} 1',
        '',
        '# HELP pebble_check_success_count Number of times the check has succeeded',
        '# TYPE pebble_check_success_count counter',
        'pebble_check_success_count{check="chk1"} 0',
        '',
        '# HELP pebble_check_failure_count Number of times the check has failed',
        '# TYPE pebble_check_failure_count counter',
        'pebble_check_failure_count{check="chk1"} 0',
        '',
        '',
      ].join('\n'),
    );
  });

  it('counts service starts (a killed service restarted counts again), and check successes and failures; a failing check goes down', async () => {
    sc = await startTestSidecar({
      layers: {
        '001-metrics.yaml': [
          'services:',
          '  sleeper:',
          '    override: replace',
          '    command: sleep 1000',
          '    startup: enabled',
          '    backoff-delay: 50ms',
          '  never:',
          '    override: replace',
          '    command: sleep 1000',
          'checks:',
          '  good:',
          '    override: replace',
          '    period: 100ms',
          '    exec:',
          '      command: "true"',
          '  bad:',
          '    override: replace',
          '    period: 100ms',
          '    threshold: 2',
          '    exec:',
          '      command: "false"',
          '',
        ].join('\n'),
      },
    });
    await sc.client.waitChange(await sc.client.autostart());
    const m = await waitFor('checks ran', async () => {
      const r = await get(sc!.socket, '/v1/metrics');
      const s = samples(r.text);
      return (s['pebble_check_failure_count{check="bad"}'] ?? 0) >= 2 && (s['pebble_check_success_count{check="good"}'] ?? 0) >= 2 && { r, s };
    }, 10_000);
    expect(m.r.status).toBe(200);
    expect(m.r.type).toBe('text/plain; charset=utf-8');
    expect(m.s).toMatchObject({ 'pebble_service_active{service="sleeper"}': 1, 'pebble_service_start_count{service="sleeper"}': 1, 'pebble_check_up{check="good"}': 1, 'pebble_check_up{check="bad"}': 0, 'pebble_check_failure_count{check="good"}': 0, 'pebble_check_success_count{check="bad"}': 0 });
    // A service never started is not listed, as in Pebble.
    expect(m.r.text).not.toContain('service="never"');
    const [svc] = await sc.client.getServices(['sleeper']);
    expect(svc?.current).toBe('active');
    // Killed: the sidecar restarts it (on-failure: restart), and it counts again.
    await sc.client.sendSignal('SIGKILL', ['sleeper']);
    await waitFor('restarted and counted', async () => samples((await get(sc!.socket, '/v1/metrics')).text)['pebble_service_start_count{service="sleeper"}'] === 2, 10_000);
    await sc.client.waitChange(await sc.client.stop(['sleeper']));
    expect(samples((await get(sc.socket, '/v1/metrics')).text)['pebble_service_active{service="sleeper"}']).toBe(0);
  });
});
