import { describe, expect, test } from 'vitest';
import { CharmYamlError, containerImage, defaults, findCharmYaml, loadCharmYaml, parseCharmYaml, renderProblems } from '../../agent/charm-meta/index.js';
import { BASE, editedProblems, meta, yamlProblems, type Doc } from './fixtures.js';

describe("the repo's charm.yaml", () => {
  test('loads cleanly, with the options and actions the charm relies on', async () => {
    const path = findCharmYaml();
    expect(path).toBeDefined();
    const m = await loadCharmYaml(path!);
    expect(m.name).toBe('postgresql');
    expect(m.peers['database-peers']?.interface).toBe('postgresql_peers');
    expect(m.provides['database']?.interface).toBe('postgresql_client');
    expect(m.provides['metrics-endpoint']?.interface).toBe('prometheus_scrape');
    expect(m.containers['postgresql']?.mounts).toEqual([{ storage: 'pgdata', location: '/var/lib/postgresql/data' }]);
    expect(Object.keys(m.actions)).toEqual(['get-primary', 'get-password', 'set-password', 'rotate-client-password', 'switchover', 'promote-to-primary', 'list-members', 'restart', 'create-backup', 'restore', 'set-s3-credentials', 'dump-database', 'restore-dump', 'list-backups']);
    const n = Object.keys(m.options).length;
    expect(n).toBeGreaterThanOrEqual(12);
    expect(n).toBeLessThanOrEqual(40);
    expect(m.options['backup-schedule']).toMatchObject({ type: 'string', format: 'cron', default: '' });
    expect(m.options['bootstrap-from-backup']).toMatchObject({ type: 'string', format: 'recovery-target', default: '' });
    // The S3 keys are never config: they come by set-s3-credentials, write-only.
    expect(Object.keys(m.options).filter((o) => /key|secret/.test(o))).toEqual([]);
    expect(Object.entries(m.actions['set-s3-credentials']!.params).map(([k, p]) => [k, p['writeOnly']])).toEqual([['access-key', true], ['secret-key', true]]);
    expect(m.options['postgresql-major']).toMatchObject({ type: 'int', default: 15, allowed: [14, 15, 16], immutable: true });
    expect(Object.values(m.options).filter((o) => o.immutable).map((o) => o.name)).toEqual(['postgresql-major', 'data-checksums']);
    expect(Object.values(m.options).filter((o) => o.secret).map((o) => o.name)).toEqual(['override-root-password']);
    expect(Object.values(m.actions).filter((a) => a.sensitive).map((a) => a.name)).toEqual(['get-password']);
    expect(m.options['allowed-client-cidrs']).toMatchObject({ type: 'string', format: 'cidrs', default: 'auto' });
    expect(containerImage(m, 'postgresql', defaults(m))).toBe('pgcharm/postgresql:15');
    expect(containerImage(m, 'postgresql', { ...defaults(m), 'postgresql-major': 16 })).toBe('pgcharm/postgresql:16');
  });

  test('a missing file is a CharmYamlError naming it', async () => {
    await expect(loadCharmYaml('/nonexistent/charm.yaml')).rejects.toThrow(/invalid charm.yaml: 1 problem\n  cannot read \/nonexistent\/charm.yaml: ENOENT/);
  });
});

describe('broken charm.yaml: each problem with its path and reason', () => {
  const opt = (d: Doc, name: string) => d.config.options[name];
  const cases: [string, (d: Doc) => void, string[]][] = [
    // top level
    ['unknown top-level field', (d) => (d.actoins = {}), ['actoins: unknown field; did you mean "actions"?']],
    ['bad charm name', (d) => (d.name = 'Postgre_SQL'), ['name: invalid name: must be lowercase letters, digits and single dashes, starting with a letter, got "Postgre_SQL"']],
    ['missing summary', (d) => delete d.summary, ['summary: required']],
    ['section of the wrong kind', (d) => (d.peers = ['database-peers']), ['peers: expected a map, got a list']],
    // config options
    ['default of the wrong type', (d) => (opt(d, 'max-connections').default = 'abc'), ['config.options.max-connections.default: expected int, got "abc"']],
    ['int default with a fraction', (d) => (opt(d, 'max-connections').default = 1.5), ['config.options.max-connections.default: expected int, got 1.5']],
    ['default below min', (d) => (opt(d, 'max-connections').default = 5), ['config.options.max-connections.default: must be at least 10, got 5']],
    ['default above max', (d) => (opt(d, 'ratio').default = 2), ['config.options.ratio.default: must be at most 1, got 2']],
    ['default not allowed', (d) => (opt(d, 'postgresql-major').default = 17), ['config.options.postgresql-major.default: must be one of 14, 15, 16, got 17']],
    ['string default not allowed', (d) => (opt(d, 'profile').default = 'prod'), ['config.options.profile.default: must be one of production, testing, got "prod"; did you mean "production"?']],
    ['missing default', (d) => delete opt(d, 'profile').default, ['config.options.profile.default: required']],
    ['null default', (d) => (opt(d, 'profile').default = null), ['config.options.profile.default: expected string, got null']],
    ['unknown type', (d) => (opt(d, 'max-connections').type = 'integer'), ['config.options.max-connections.type: must be one of string, int, float, boolean, got "integer"; did you mean "int"?']],
    ['misspelt field', (d) => (opt(d, 'max-connections').imutable = true), ['config.options.max-connections.imutable: unknown field; did you mean "immutable"?']],
    ['immutable not a boolean', (d) => (opt(d, 'max-connections').immutable = 'yes'), ['config.options.max-connections.immutable: expected true or false, got "yes"']],
    ['min above max', (d) => (opt(d, 'max-connections').min = 20000), ['config.options.max-connections.default: must be at least 20000, got 100', 'config.options.max-connections.min: must not exceed max (20000 > 10000)']],
    ['range on a string', (d) => (opt(d, 'profile').min = 1), ['config.options.profile.min: only int and float options have a range']],
    ['fractional bound on an int', (d) => (opt(d, 'max-connections').max = 10.5), ['config.options.max-connections.max: expected int, got 10.5']],
    ['memory default without unit', (d) => (opt(d, 'shared-buffers').default = '128'), ['config.options.shared-buffers.default: must be a size with a unit like "128MB" (units: B, kB, MB, GB, TB), got "128"']],
    ['memory unit in the wrong case', (d) => (opt(d, 'shared-buffers').default = '128mb'), ['config.options.shared-buffers.default: must be a size with a unit like "128MB" (units: B, kB, MB, GB, TB), got "128mb"; did you mean "128MB"?']],
    ['unknown format', (d) => (opt(d, 'shared-buffers').format = 'mem'), ['config.options.shared-buffers.format: must be one of memory, cidrs, cron, recovery-target, got "mem"; did you mean "memory"?']],
    ['format on an int', (d) => (opt(d, 'max-connections').format = 'memory'), ['config.options.max-connections.format: only string options have a format']],
    ['allowed item of the wrong type', (d) => (opt(d, 'postgresql-major').allowed = [14, 'x', 15, 16]), ['config.options.postgresql-major.allowed[1]: expected int, got "x"']],
    ['duplicate allowed item', (d) => (opt(d, 'postgresql-major').allowed = [14, 14, 15, 16]), ['config.options.postgresql-major.allowed[1]: duplicate value 14']],
    ['empty allowed list', (d) => (opt(d, 'profile').allowed = []), ['config.options.profile.allowed: must not be empty']],
    // secret options: charm.yaml is public, so nothing in it may give the value away
    ['secret not a boolean', (d) => (d.config.options.password = { type: 'string', default: '', secret: 'yes', description: 'd' }), ['config.options.password.secret: expected true or false, got "yes"']],
    ['secret int option', (d) => (d.config.options.pin = { type: 'int', default: 0, secret: true, description: 'd' }), ['config.options.pin.secret: only string options can be secret, this one is int']],
    ['secret with a default', (d) => (d.config.options.password = { type: 'string', default: 'hunter22', secret: true, description: 'd' }), ['config.options.password.default: a secret option\'s default must be "" (charm.yaml is not secret), got "hunter22"']],
    ['secret with allowed values', (d) => (d.config.options.password = { type: 'string', default: '', allowed: ['', 'a'], secret: true, description: 'd' }), ['config.options.password.allowed: a secret option cannot list its allowed values (they would be public)']],
    ['secret with a format', (d) => (d.config.options.password = { type: 'string', default: '', format: 'cidrs', secret: true, description: 'd' }), ['config.options.password.format: a secret option cannot have a format (an error would echo the value)']],
    ['misspelt secret', (d) => (d.config.options.password = { type: 'string', default: '', secrte: true, description: 'd' }), ['config.options.password.secrte: unknown field; did you mean "secret"?']],
    // the cidrs format
    ['cidrs default not a range', (d) => (d.config.options.clients = { type: 'string', format: 'cidrs', default: '10.0.0.0', description: 'd' }), ['config.options.clients.default: must be "auto" or comma-separated address ranges: "10.0.0.0" is not an address range like "10.1.0.0/16" or "fd00::/8"']],
    ['cidrs prefix too long', (d) => (d.config.options.clients = { type: 'string', format: 'cidrs', default: '10.0.0.0/8, 10.0.0.0/33', description: 'd' }), ['config.options.clients.default: must be "auto" or comma-separated address ranges: "10.0.0.0/33": an IPv4 prefix length is at most 32']],
    // the recovery-target format
    ['recovery target that is none of them', (d) => (d.config.options.target = { type: 'string', format: 'recovery-target', default: 'yesterday', description: 'd' }), ['config.options.target.default: must be latest, a backup id (like 20261127-204517F), an LSN (like 0/3000060) or a timestamp (RFC 3339 like 2026-11-27T20:25:17Z, or 2026-11-27 20:25:17.123456+00), got "yesterday"']],
    ['allowed on a boolean', (d) => (opt(d, 'synchronous-mode').allowed = [true]), ['config.options.synchronous-mode.allowed: boolean options cannot restrict their values']],
    ['bad option name', (d) => (d.config.options.Max_Conn = { type: 'int', default: 1, description: 'd' }), ['config.options.Max_Conn: invalid name: must be lowercase letters, digits and single dashes, starting with a letter']],
    ['option not a map', (d) => (d.config.options.foo = 5), ['config.options.foo: expected a map, got 5']],
    ['unknown field under config', (d) => (d.config.option = {}), ['config.option: unknown field; did you mean "options"?']],
    // actions
    ['action without description', (d) => delete d.actions['get-primary'].description, ['actions.get-primary.description: required']],
    ['bad action name', (d) => (d.actions.Get_Primary = { description: 'd' }), ['actions.Get_Primary: invalid name: must be lowercase letters, digits and single dashes, starting with a letter']],
    ['params not a map', (d) => (d.actions['get-primary'].params = ['unit']), ['actions.get-primary.params: expected a map, got a list']],
    ['param type unknown', (d) => (d.actions['set-password'].params.username.type = 'str'), ['actions.set-password.params.username.type: must be one of string, integer, number, boolean, array, object, got "str"; did you mean "string"?']],
    ['param without type', (d) => delete d.actions['set-password'].params.password.type, ['actions.set-password.params.password.type: required (one of string, integer, number, boolean, array, object)']],
    ['misspelt schema keyword', (d) => (d.actions['set-password'].params.password = { type: 'string', minLenght: 8 }), ['actions.set-password.params.password.minLenght: unknown keyword "minLenght"; did you mean "minLength"?']],
    ['keyword for another type', (d) => (d.actions['set-password'].params.password = { type: 'integer', minLength: 8 }), ['actions.set-password.params.password.minLength: keyword "minLength" needs type string']],
    ['keyword with a bad value', (d) => (d.actions['set-password'].params.password.minLength = 'eight'), ['actions.set-password.params.password.minLength: must be integer']],
    ['default outside the enum', (d) => (d.actions['set-password'].params.username.default = 'root'), ['actions.set-password.params.username.default: must be one of operator, replication, got "root"']],
    ['default of the wrong type', (d) => (d.actions['set-password'].params.password.default = 12345678), ['actions.set-password.params.password.default: must be string, got 12345678']],
    ['required names no param', (d) => (d.actions['set-password'].required = ['pasword']), ['actions.set-password.required[0]: unknown param "pasword"; did you mean "password"?']],
    ['additionalProperties not a boolean', (d) => (d.actions['get-primary'].additionalProperties = 'no'), ['actions.get-primary.additionalProperties: expected true or false, got "no"']],
    ['unknown action field', (d) => (d.actions['get-primary'].parmas = {}), ['actions.get-primary.parmas: unknown field; did you mean "params"?']],
    ['sensitive not a boolean', (d) => (d.actions['get-primary'].sensitive = 'yes'), ['actions.get-primary.sensitive: expected true or false, got "yes"']],
    ['misspelt sensitive', (d) => (d.actions['get-primary'].sensitve = true), ['actions.get-primary.sensitve: unknown field; did you mean "sensitive"?']],
    // containers, storage, relations
    ['mount of unknown storage', (d) => (d.containers.postgresql.mounts[0].storage = 'pgdat'), ['containers.postgresql.mounts[0].storage: unknown storage "pgdat"; did you mean "pgdata"?']],
    ['relative mount location', (d) => (d.containers.postgresql.mounts[0].location = 'data'), ['containers.postgresql.mounts[0].location: must be an absolute path, got "data"']],
    ['mount without location', (d) => delete d.containers.postgresql.mounts[0].location, ['containers.postgresql.mounts[0].location: required']],
    ['no image for an allowed major', (d) => delete d.containers.postgresql.images['16'], ['containers.postgresql.images: no image for postgresql-major 16']],
    ['image for an impossible major', (d) => (d.containers.postgresql.images['13'] = 'pg:13'), ['containers.postgresql.images.13: not a possible value of postgresql-major: must be one of 14, 15, 16, got 13']],
    ['image-option names no option', (d) => (d.containers.postgresql['image-option'] = 'postgresql-majr'), ['containers.postgresql.image-option: unknown config option "postgresql-majr"; did you mean "postgresql-major"?']],
    ['images without image-option', (d) => delete d.containers.postgresql['image-option'], ['containers.postgresql.image-option: required with "images": the config option whose value picks the image']],
    ['image and images', (d) => (d.containers.postgresql.image = 'pg:15'), ['containers.postgresql.images: give either "image" or "images", not both']],
    ['no image at all', (d) => (d.containers.postgresql = { mounts: [] }), ['containers.postgresql: needs "image", or "images" with "image-option"']],
    ['unknown storage type', (d) => (d.storage.pgdata.type = 'tmpfs'), ['storage.pgdata.type: must be one of filesystem, block, got "tmpfs"']],
    ['broken image option is reported once', (d) => (d.config.options['postgresql-major'].type = 'integer'), ['config.options.postgresql-major.type: must be one of string, int, float, boolean, got "integer"; did you mean "int"?']],
    ['bad minimum-size', (d) => (d.storage.pgdata['minimum-size'] = '1GB'), ['storage.pgdata.minimum-size: must be a size like "1G" (suffixes M, G, T, P)']],
    ['endpoint name used twice', (d) => (d.provides['database-peers'] = { interface: 'x' }), ['provides.database-peers: endpoint name already used in peers']],
    ['bad interface name', (d) => (d.provides.database.interface = 'Postgres Client'), ['provides.database.interface: invalid interface name: lowercase letters, digits, "_" and "-", starting with a letter']],
    ['endpoint without interface', (d) => (d.provides.database = {}), ['provides.database.interface: required']],
    ['relation limit below 1', (d) => (d.provides.database.limit = 0), ['provides.database.limit: must be at least 1']],
  ];
  test.each(cases)('%s', (_name, edit, expected) => {
    expect(editedProblems(edit)).toEqual(expected);
  });

  test('valid variations are accepted', () => {
    const m = meta((d) => {
      d.config.options.ratio.default = 1; // an integral float
      d.peers = null; // an empty section
      d.actions['get-primary'].params = null;
      d.actions['set-password'].additionalProperties = true;
    });
    expect(m.options['ratio']?.default).toBe(1);
    expect(m.peers).toEqual({});
    expect(m.actions['set-password']?.additionalProperties).toBe(true);
    expect(m.actions['get-primary']?.additionalProperties).toBe(false);
  });

  test('every problem is reported at once, in file order', () => {
    expect(
      editedProblems((d) => {
        d.name = 'PG';
        d.config.options['max-connections'].default = 'abc';
        d.config.options.profile.type = 'integer';
        d.actions['set-password'].required = ['pasword'];
        d.containers.postgresql.mounts[0].storage = 'pgdat';
      }),
    ).toEqual([
      'name: invalid name: must be lowercase letters, digits and single dashes, starting with a letter, got "PG"',
      'containers.postgresql.mounts[0].storage: unknown storage "pgdat"; did you mean "pgdata"?',
      'config.options.max-connections.default: expected int, got "abc"',
      'config.options.profile.type: must be one of string, int, float, boolean, got "integer"; did you mean "int"?',
      'actions.set-password.required[0]: unknown param "pasword"; did you mean "password"?',
    ]);
  });
});

describe('positions and YAML syntax errors', () => {
  const cases: [string, string, string[]][] = [
    ['duplicate key', 'name: a\nname: b\n', ['2:1 Map keys must be unique']],
    ['unclosed flow sequence', 'name: a\nsummary: [s\n', ['3:1 Flow sequence in block collection must be sufficiently indented and end with a ]']],
    ['bad indentation', 'name: a\n  summary: s\n', ['1:7 Nested mappings are not allowed in compact mappings', '1:7 Implicit keys need to be on a single line']],
    ['tab indentation', 'name: a\nconfig:\n\toptions: {}\n', ['3:1 Tabs are not allowed as indentation']],
    ['empty document', '', [':0 name: required', ':0 summary: required', ':0 description: required']],
  ];
  test.each(cases)('%s', (_name, text, expected) => {
    try {
      parseCharmYaml(text);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CharmYamlError);
      const ps = (e as CharmYamlError).problems;
      expect(ps.map((p) => `${p.line ?? ''}:${p.col ?? 0} ${p.path ? p.path + ': ' : ''}${p.message}`)).toEqual(expected);
    }
  });

  test('schema problems point at the offending value, or at the entry lacking a field', () => {
    const text = [
      'name: postgresql', //                       1
      'summary: s', //                             2
      'description: d', //                         3
      'config:', //                                4
      '  options:', //                             5
      '    max-connections:', //                   6
      '      type: int', //                        7
      '      default: "abc"', //                   8
      '      description: d', //                   9
      '    profile:', //                           10
      '      type: string', //                     11
      '      description: d', //                   12
      '',
    ].join('\n');
    try {
      parseCharmYaml(text);
      expect.unreachable();
    } catch (e) {
      const err = e as CharmYamlError;
      expect(err.message).toBe(
        [
          'invalid charm.yaml: 2 problems',
          '  charm.yaml:8:16: config.options.max-connections.default: expected int, got "abc"',
          '  charm.yaml:10:5: config.options.profile.default: required',
        ].join('\n'),
      );
      expect(renderProblems(err.problems)).toBe(
        'config.options.max-connections.default: expected int, got "abc"\nconfig.options.profile.default: required',
      );
    }
  });

  test('the file name given is used in messages', () => {
    expect(() => parseCharmYaml('name: a\nname: b\n', 'edited.yaml')).toThrow('invalid edited.yaml: 1 problem\n  edited.yaml:2:1: Map keys must be unique');
  });

  test('the fixture itself is valid', () => {
    expect(yamlProblems(BASE)).toEqual([]);
  });
});
