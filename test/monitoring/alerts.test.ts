import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * The alert rules (agent/monitoring/alerts.yaml) checked and unit-tested by Prometheus's own
 * promtool (Debian package `prometheus`, installed by .ci/run): each rule fires when it should
 * and stays silent when it should not (test/monitoring/alerts.test.yaml).
 */

const rules = fileURLToPath(new URL('../../agent/monitoring/alerts.yaml', import.meta.url));
const tests = fileURLToPath(new URL('./alerts.test.yaml', import.meta.url));

interface RuleFile {
  groups: { rules: { alert: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
}
interface TestFile {
  tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
}

describe('alert rules', () => {
  const alerts = (parse(readFileSync(rules, 'utf8')) as RuleFile).groups.flatMap((g) => g.rules);

  it('promtool check rules accepts the file', () => {
    const r = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8' });
    expect(r.error, 'promtool not found: apt-get install prometheus').toBeUndefined();
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${alerts.length} rules found`);
  });

  it('covers what the issue asks, each with a severity, a summary and a runbook', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual(
      [
        'PgcharmAgentDown',
        'PgcharmArchivingFailing',
        'PgcharmBackupTooOld',
        'PgcharmConfigNotApplied',
        'PgcharmFenceMarginLow',
        'PgcharmMultiplePrimaries',
        'PgcharmNoPrimary',
        'PgcharmPostgresDown',
        'PgcharmReplicaNotStreaming',
        'PgcharmReplicationLagHigh',
        'PgcharmTooManyConnections',
        'PgcharmUnitRestarting',
      ].sort(),
    );
    for (const a of alerts) {
      expect(['critical', 'warning'], a.alert).toContain(a.labels?.['severity']);
      expect(a.annotations?.['summary'], a.alert).toBeTruthy();
      expect(a.annotations?.['runbook'], a.alert).toMatch(/pgcharm[ _]/);
    }
  });

  it('every rule has a test where it fires and one where it stays silent', () => {
    const cases = (parse(readFileSync(tests, 'utf8')) as TestFile).tests.flatMap((t) => t.alert_rule_test);
    for (const a of alerts) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      expect(mine.some((c) => c.exp_alerts.length > 0), `${a.alert} never fires in the tests`).toBe(true);
      expect(mine.some((c) => c.exp_alerts.length === 0), `${a.alert} has no case where it stays silent`).toBe(true);
    }
  });

  it('promtool test rules passes', () => {
    const out = execFileSync('promtool', ['test', 'rules', tests], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
    expect(out).toContain('SUCCESS');
  }, 60_000);
});
