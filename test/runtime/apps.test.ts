import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployArgs, testModel, type TestModel } from '../helpers/model.js';

/** Two applications of the recorder charm in one model (`deploy --app`), one unit each. */
describe('two applications in one model', () => {
  let m: TestModel;

  beforeAll(async () => {
    m = testModel();
    for (const app of ['alpha', 'beta']) {
      const r = await m.cli([...deployArgs(m, 1), '--app', app]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^${app}/0\\*`, 'm'));
    }
  }, 120_000);
  afterAll(async () => {
    await m?.cleanup();
  }, 60_000);

  it('runs both, each with its own units and leader', async () => {
    for (const app of ['alpha', 'beta']) {
      const r = await m.cli(['status', '--app', app, '--format', 'json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as { application: { name: string; leader: string }; units: Record<string, unknown> };
      expect(s.application).toMatchObject({ name: app, leader: `${app}/0` });
      expect(Object.keys(s.units)).toEqual([`${app}/0`]);
      expect(existsSync(join(m.dir, 'units', `${app}-0`))).toBe(true);
    }
  });

  it('asks which application when a command does not say, and refuses unknown or invalid ones', async () => {
    const all = await m.cli(['status']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^alpha\/0\*/m);
    expect(all.stdout).toMatch(/^beta\/0\*/m);
    const none = await m.cli(['config']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/has several applications \(alpha, beta\): pass --app/);
    const unknown = await m.cli(['kill', 'gamma/0', '--app', 'gamma']);
    expect(unknown.stderr).toMatch(/--app: model .* has no application gamma: applications are alpha, beta/);
    const bad = await m.cli([...deployArgs(m, 1), '--app', 'Bad_Name']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--app: "Bad_Name" is not a valid application name/);
    expect(existsSync(join(m.dir, 'units', 'Bad_Name-0'))).toBe(false);
  });

  it('deploy stops waiting and says which unit failed, and why, once a failing hook still fails after its retry', async () => {
    const r = await m.cli([...deployArgs(m, 1), '--app', 'gamma', '--config', 'greeting=fail-install', '--timeout', '60']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unit gamma\/0 is in error: hook failed: "install": asked to fail at install/);
  });

  it('deploying an existing application again waits for it instead of adding one', async () => {
    const again = await m.cli([...deployArgs(m, 1), '--app', 'beta']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/beta is already deployed in model/);
  });
});
