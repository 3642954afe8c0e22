import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readControllerInfo } from '../../agent/controller/model.js';
import { testModel, type TestModel } from '../helpers/model.js';

/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core (no
 * browser download). The page a 3-unit deployment's controller serves lists the members; after
 * `pgcharm kill` of the primary it shows the new primary within 5 s, and the failover in its
 * timeline. PGCHARM_DASHBOARD_SCREENSHOT=FILE saves a screenshot (the README's).
 */

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

describe.skipIf(!CHROMIUM && !process.env['CI'])('the dashboard in headless Chromium', () => {
  let m: TestModel;
  let browser: Browser | undefined;
  let page: Page;
  let url = '';

  beforeAll(async () => {
    // CI installs Chromium (.ci/run): there its absence is a failure, not a skip.
    expect(CHROMIUM, 'Chromium not found: apt-get install chromium').toBeDefined();
    m = testModel();
    const r = await m.cli(['deploy', '--units', '3', '--timeout', '120'], 180_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    url = readControllerInfo(m.dir)!.dashboard!;
    expect(r.stdout).toContain(`Dashboard: ${url}`);
    browser = await chromium.launch({
      executablePath: CHROMIUM!,
      headless: true,
      // No sandbox as root (CI); no background traffic: this machine reaches no Google host.
      // (playwright gives it a fresh profile of its own in a temp dir, removed on close.)
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  }, 240_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await m?.cleanup();
  }, 60_000);

  const members = () => page.$$eval('[data-testid=member]', (rows) => rows.map((r) => ({ unit: r.getAttribute('data-unit'), role: r.getAttribute('data-role') })));

  it('lists the 3 members, one primary, with charts', async () => {
    await page.goto(url);
    // Page functions as strings: they run in the browser (this file is type-checked without the DOM).
    await page.waitForFunction("document.querySelectorAll('[data-testid=member]').length === 3", undefined, { timeout: 15_000 });
    const ms = await members();
    expect(ms.map((x) => x.unit).sort()).toEqual(['postgresql/0', 'postgresql/1', 'postgresql/2']);
    expect(ms.filter((x) => x.role === 'primary')).toHaveLength(1);
    expect(ms.filter((x) => x.role === 'replica' || x.role === 'sync_standby')).toHaveLength(2);
    expect(await page.textContent('[data-testid=live]')).toBe('live');
    expect(await page.locator('[data-testid=chart-commits] canvas').count()).toBeGreaterThan(0);
    expect(await page.locator('[data-testid=chart-lag] canvas').count()).toBeGreaterThan(0);
  }, 60_000);

  it('after pgcharm kill of the primary: the new primary within 5 s, and the failover in the timeline', async () => {
    const old = (await page.textContent('[data-testid=primary]'))!.trim();
    expect(old).toMatch(/^postgresql\/\d$/);
    const k = await m.cli(['kill', old]);
    expect(k.code, k.stderr).toBe(0);
    const t0 = Date.now();
    await page.waitForFunction(
      `(() => { const p = document.querySelector('[data-testid=primary]')?.textContent?.trim(); return p && p !== ${JSON.stringify(old)} && p !== 'none'; })()`,
      undefined,
      { timeout: 5_000, polling: 100 },
    );
    const shownAfterMs = Date.now() - t0;
    const now = (await page.textContent('[data-testid=primary]'))!.trim();
    expect(now).not.toBe(old);
    await page.waitForSelector('[data-testid=event][data-reason=Failover]', { timeout: 5_000 });
    const failover = await page.textContent('[data-testid=event][data-reason=Failover]');
    expect(failover).toContain(now);
    console.log(JSON.stringify({ dashboardShowedNewPrimaryAfterMs: shownAfterMs }));
    const shot = process.env['PGCHARM_DASHBOARD_SCREENSHOT'];
    if (shot) {
      await page.waitForTimeout(8000); // the old primary back as a standby, some chart history
      await page.screenshot({ path: shot, fullPage: true });
    }
  }, 60_000);

  it('is read-only and answers only to loopback names', async () => {
    expect((await fetch(`${url}api/state`, { method: 'POST' })).status).toBe(405);
    const { request } = await import('node:http');
    const rebinding = await new Promise<number>((resolve, reject) => {
      request(`${url}api/state`, { headers: { Host: 'attacker.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(rebinding).toBe(403);
    const state = (await (await fetch(`${url}api/state`)).json()) as { apps: { app: string; members: unknown[] }[] };
    expect(state.apps.map((a) => a.app)).toEqual(['postgresql']);
    expect(JSON.stringify(state)).not.toMatch(/password/i);
  });
});
