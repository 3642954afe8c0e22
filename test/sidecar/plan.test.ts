import { describe, expect, it } from 'vitest';
import { commandArgv, parseCommand } from '../../sidecar/plan/command.js';
import { combineLayers, order, serviceSettings } from '../../sidecar/plan/combine.js';
import { formatDuration, parseDuration } from '../../sidecar/plan/duration.js';
import { parseLayer, parseLayerFileName } from '../../sidecar/plan/layer.js';
import { PlanManager } from '../../sidecar/plan/manager.js';
import { shlexSplit } from '../../sidecar/plan/shlex.js';
import { planToYaml } from '../../sidecar/plan/yaml.js';

const layer = (label: string, text: string, n = 1) => parseLayer(n, label, text);
const plan = (...texts: string[]) => combineLayers(texts.map((t, i) => layer(`layer-${i}`, t, i + 1)));

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['2h', 7_200_000],
    ['0', 0],
    ['250us', 0.25],
  ])('parses %s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 'abc', '10', '5 s', '1x'])('rejects %j', (text) => expect(() => parseDuration(text)).toThrow(/invalid duration/));

  it.each([
    [500, '500ms'],
    [30_000, '30s'],
    [90_000, '1m30s'],
    [3_600_000, '1h0m0s'],
  ])('formats %d ms as %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});

describe('commands', () => {
  it.each([
    ['postgres -D /data', ['postgres', '-D', '/data'], []],
    ['echo "a b" \'c d\' e\\ f', ['echo', 'a b', 'c d', 'e f'], []],
    ['srv --port 1 [ --debug -v ]', ['srv', '--port', '1'], ['--debug', '-v']],
    ['srv [ ]', ['srv'], []],
  ])('parses %j', (cmd, base, extra) => expect(parseCommand(cmd)).toEqual({ base, extra }));

  it.each([
    ['[ -x ]', /cannot start command with \[ ... \] group/],
    ['srv [ a [ b ] ]', /cannot nest/],
    ['srv [ a ] b', /after \[ ... \] group/],
    ['srv ] a', /outside of/],
    ['srv [ a', /closing \]/],
    ['echo "unterminated', /closing quote/],
    ['', /empty/],
  ])('rejects %j', (cmd, err) => expect(() => parseCommand(cmd)).toThrow(err));

  it('runs base plus default args', () => expect(commandArgv('a b [ c ]')).toEqual(['a', 'b', 'c']));
  it('splits like a shell without expansion', () => expect(shlexSplit('a $HOME "$x" # c')).toEqual(['a', '$HOME', '$x']));
});

describe('parseLayer', () => {
  it('parses every service and check field', () => {
    const l = layer(
      'base',
      `
summary: s
services:
  pg:
    override: replace
    command: postgres -D /data [ -c log_min_messages=info ]
    startup: enabled
    after: [init]
    requires: [init]
    environment: {PGPORT: 5432, A: x}
    user: postgres
    group: postgres
    working-dir: /tmp
    on-success: shutdown
    on-failure: restart
    on-check-failure: {alive: restart}
    backoff-delay: 100ms
    backoff-factor: 1.5
    backoff-limit: 2s
    kill-delay: 3s
  init: {override: replace, command: "true"}
checks:
  alive:
    override: replace
    level: alive
    period: 2s
    timeout: 1s
    threshold: 2
    tcp: {port: 5432}
`,
    );
    expect(l.services['pg']).toMatchObject({
      environment: { PGPORT: '5432', A: 'x' },
      'backoff-delay': 100,
      'backoff-factor': 1.5,
      'backoff-limit': 2000,
      'kill-delay': 3000,
      'on-check-failure': { alive: 'restart' },
    });
    expect(l.checks['alive']).toMatchObject({ period: 2000, timeout: 1000, threshold: 2, tcp: { port: 5432 } });
  });

  it.each([
    ['services: {a: {override: replace, command: x, comand: y}}', /layer "bad".*services\.a: unknown field "comand"/],
    ['services: {a: {override: sometimes, command: x}}', /services\.a\.override: must be "merge" or "replace"/],
    ['services: {a: {override: merge, command: x, startup: yes}}', /services\.a\.startup: must be "enabled" or "disabled"/],
    ['services: {a: {override: merge, command: x, backoff-delay: soon}}', /services\.a\.backoff-delay: invalid duration "soon"/],
    ['services: {a: {override: merge, command: x, kill-delay: 5}}', /services\.a\.kill-delay: expected a duration string/],
    ['services: {a: {override: merge, command: x, on-failure: explode}}', /services\.a\.on-failure: must be one of/],
    ['services: {a: {override: merge, command: x, user-id: -1}}', /services\.a\.user-id/],
    ['services: {a: {override: merge, command: [x]}}', /services\.a\.command: expected string/],
    ['services: {a: }', /service object cannot be null for service "a"/],
    ['services: {pebble: {override: merge, command: x}}', /reserved service name "pebble"/],
    ['services: {-a: {override: merge, command: x}}', /starting with "-" not allowed/],
    ['services: {"a b": {override: merge, command: x}}', /whitespace/],
    ['checks: {c: {override: merge, level: sometimes}}', /checks\.c\.level: must be "alive" or "ready"/],
    ['checks: {c: {override: merge, threshold: 0}}', /checks\.c\.threshold: must be at least 1/],
    ['checks: {c: {override: merge, tcp: {port: 70000}}}', /checks\.c\.tcp\.port/],
    ['servics: {}', /unknown field "servics"/],
    ['services: [a, b]', /services: expected record/],
    ['services: {a: {override: merge}}\nservices: {}', /cannot parse layer "bad"/],
    ['{{{', /cannot parse layer "bad"/],
  ])('rejects %j', (text, err) => expect(() => layer('bad', text)).toThrow(err));

  it.each([
    ['001-base.yaml', 1, 'base'],
    ['120-pg-service.yaml', 120, 'pg-service'],
  ])('reads layer file name %s', (file, order, label) => expect(parseLayerFileName(file)).toEqual({ order, label }));

  it.each(['1-base.yaml', '001-ab.yaml', '001-Base.yaml', '001-base--x.yaml', '001-base.yml'])('rejects file name %s', (file) =>
    expect(() => parseLayerFileName(file)).toThrow(/invalid layer filename/),
  );
});

describe('combineLayers', () => {
  const base = `
services:
  srv:
    override: replace
    command: srv --a
    summary: first
    after: [x]
    environment: {A: "1", B: "1"}
    on-check-failure: {c1: restart}
  x: {override: replace, command: x}
  y: {override: replace, command: y}
checks:
  c1: {override: replace, period: 5s, http: {url: "http://localhost/a", headers: {H1: a}}}
  c2: {override: replace, period: 5s, http: {url: "http://localhost/b", headers: {H1: a}}}
`;
  it.each([
    [
      'merge keeps unset fields, overwrites set ones, appends lists, merges maps',
      `services: {srv: {override: merge, command: srv --b, after: [y], environment: {B: "2", C: "3"}}}`,
      {
        command: 'srv --b',
        summary: 'first',
        after: ['x', 'y'],
        environment: { A: '1', B: '2', C: '3' },
        'on-check-failure': { c1: 'restart' },
      },
    ],
    [
      'replace drops everything the new layer does not say',
      `services: {srv: {override: replace, command: srv --c}}`,
      { command: 'srv --c', after: [], environment: {}, 'on-check-failure': {} },
    ],
  ])('%s', (_name, over, expected) => {
    const p = plan(base, over);
    expect(p.services['srv']).toMatchObject(expected);
    if (over.includes('replace')) expect(p.services['srv']!.summary).toBeUndefined();
  });

  it('merges checks field by field', () => {
    const p = plan(base, `checks: {c1: {override: merge, threshold: 5, http: {headers: {H2: b}}}, c2: {override: replace, tcp: {port: 1}}}`);
    expect(p.checks['c1']).toMatchObject({ period: 5000, threshold: 5, http: { url: 'http://localhost/a', headers: { H1: 'a', H2: 'b' } } });
    expect(p.checks['c2']).toEqual({ name: 'c2', override: 'replace', tcp: { port: 1 } });
  });

  it('a merge for a new service acts like replace', () => {
    expect(plan(`services: {n: {override: merge, command: n}}`).services['n']!.command).toBe('n');
  });

  it.each([
    [[`services: {a: {command: x}}`], /layer "layer-0" must define "override" for service "a"/],
    [[`services: {a: {override: merge, summary: no command}}`], /plan must define "command" for service "a"/],
    [[`services: {a: {override: merge, command: "x ] y"}}`], /plan service "a" command invalid/],
    [[`services: {a: {override: merge, command: x, backoff-factor: 0.5}}`], /backoff-factor must be 1.0 or greater, not 0.5/],
    [[`services: {a: {override: merge, command: x, requires: [nope]}}`], /requires "nope", which does not exist/],
    [[`services: {a: {override: merge, command: x, group: postgres}}`], /must specify user, not just group/],
    [[`services: {a: {override: merge, command: x, on-check-failure: {nope: restart}}}`], /unknown check "nope"/],
    [[`services: {a: {override: merge, command: x, after: [b]}, b: {override: merge, command: y, after: [a]}}`], /services in before\/after loop: a, b/],
    [[`services: {a: {override: merge, command: x, before: [b]}, b: {override: merge, command: y, before: [a]}}`], /loop/],
    [[`checks: {c: {override: merge, tcp: {port: 1}, exec: {command: x}}}`], /one of "http", "tcp", or "exec" for check "c"/],
    [[`checks: {c: {override: merge}}`], /one of "http", "tcp", or "exec"/],
    [[`checks: {c: {override: merge, http: {}}}`], /must set "url" for http check "c"/],
    [[`checks: {c: {override: merge, http: {url: "not a url"}}}`], /not a valid URL/],
    [[`checks: {c: {override: merge, tcp: {host: h}}}`], /must set "port" for tcp check "c"/],
    [[`checks: {c: {override: merge, period: 1s, timeout: 2s, tcp: {port: 1}}}`], /timeout must be less than period/],
    [[`checks: {c: {override: merge, period: 0s, tcp: {port: 1}}}`], /period must not be zero/],
    [[`checks: {c: {override: merge, exec: {command: x, service-context: nope}}}`], /non-existent service "nope"/],
    [[`log-targets: {t: {override: merge, location: "http://x"}}`], /must define "type"/],
    [[`log-targets: {t: {override: merge, type: loki}}`], /must define "location"/],
    [[`log-targets: {t: {override: merge, type: loki, location: "http://x", services: [nope]}}`], /unknown service "nope"/],
  ])('rejects %j', (texts, err) => expect(() => plan(...texts)).toThrow(err));

  it('compares only an explicit check timeout with the period, as Pebble does', () => {
    // The default timeout (3s) is not held against a shorter period: ops charms use period: 1s.
    expect(() => plan(`checks: {c: {override: merge, period: 1s, exec: {command: 'true'}}}`)).not.toThrow();
    expect(() => plan(`checks: {c: {override: merge, period: 1s, timeout: 1s, exec: {command: 'true'}}}`)).toThrow(
      /timeout must be less than period/,
    );
  });

  it('applies Pebble defaults only when used, keeping the plan as written', () => {
    const p = plan(`services: {a: {override: merge, command: x}}`);
    expect(serviceSettings(p.services['a']!)).toEqual({
      backoffDelay: 500,
      backoffFactor: 2,
      backoffLimit: 30_000,
      killDelay: 5000,
      onSuccess: 'restart',
      onFailure: 'restart',
      startup: 'disabled',
    });
    expect(planToYaml(p)).toBe('services:\n  a:\n    override: merge\n    command: x\n');
  });

  it('renders the plan in Pebble field order with durations', () => {
    const p = plan(`services: {b: {command: y, override: replace, kill-delay: 1500ms, startup: enabled}, a: {override: merge, command: x, environment: {Z: "1", A: "2"}}}`);
    expect(planToYaml(p)).toBe(
      'services:\n  a:\n    override: merge\n    command: x\n    environment:\n      A: "2"\n      Z: "1"\n' +
        '  b:\n    startup: enabled\n    override: replace\n    command: y\n    kill-delay: 1.5s\n',
    );
  });
});

describe('start and stop order', () => {
  const p = plan(`
services:
  db: {override: replace, command: db}
  app: {override: replace, command: app, requires: [db], after: [db]}
  web: {override: replace, command: web, requires: [app], after: [app]}
  metrics: {override: replace, command: m, before: [db]}
  lone: {override: replace, command: l}
`);
  it.each([
    [['web'], false, ['db', 'app', 'web']],
    [['app', 'metrics'], false, ['metrics', 'db', 'app']],
    [['lone'], false, ['lone']],
    [['db'], true, ['web', 'app', 'db']],
    [['app'], true, ['web', 'app']],
  ])('%j (stop=%s) -> %j', (names, stop, expected) => expect(order(p.services, names, stop)).toEqual(expected));

  it('reports unknown services', () => expect(() => order(p.services, ['nope'], false)).toThrow(/service "nope" does not exist/));
});

describe('PlanManager.addLayer', () => {
  it('appends, combines by label, and leaves the plan unchanged on error', () => {
    const m = new PlanManager();
    m.addLayer('base', 'services: {a: {override: replace, command: x}}', false);
    m.addLayer('over', 'services: {a: {override: merge, environment: {K: v}}}', false);
    expect(m.plan.layers.map((l) => [l.order, l.label])).toEqual([
      [1, 'base'],
      [2, 'over'],
    ]);
    m.addLayer('base', 'services: {b: {override: replace, command: y}}', true);
    expect(m.plan.layers.map((l) => l.label)).toEqual(['base', 'over']);
    expect(Object.keys(m.plan.services).sort()).toEqual(['a', 'b']);
    const before = planToYaml(m.plan);
    expect(() => m.addLayer('base', 'services: {c: {override: replace}}', true)).toThrow(/must define "command" for service "c"/);
    expect(() => m.addLayer('over', 'services: {}', false)).toThrow(/layer "over" already exists/);
    expect(() => m.addLayer('Bad Label', 'services: {}', false)).toThrow(/invalid layer label/);
    expect(planToYaml(m.plan)).toBe(before);
  });
});
