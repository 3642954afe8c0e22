import { describe, expect, test } from 'vitest';
import { checkRequest, quoteIdent, roleName, type Request } from '../../agent/charm/postgresql/client-db.js';

const ALLOWED = '(allowed: CREATEDB, CREATEROLE, pg_read_all_data, pg_write_all_data, pg_monitor, pg_read_all_stats, pg_signal_backend)';
const badName = (n: string) => `database ${JSON.stringify(n)}: not a valid database name (letters, digits, '_' and '-', starting with a letter or '_', at most 63 characters)`;

describe('what an application may ask for on the database endpoint (checkRequest)', () => {
  test.each<[string, { database?: string; extraUserRoles?: string }, Request]>([
    ['a plain name', { database: 'myapp' }, { ok: true, database: 'myapp', extraRoles: [] }],
    ['mixed case, digits, _ and -', { database: 'My_App-2' }, { ok: true, database: 'My_App-2', extraRoles: [] }],
    ['starting with _', { database: '_x' }, { ok: true, database: '_x', extraRoles: [] }],
    ['63 bytes', { database: 'a'.repeat(63) }, { ok: true, database: 'a'.repeat(63), extraRoles: [] }],
    ['64 bytes', { database: 'a'.repeat(64) }, { ok: false, message: badName('a'.repeat(64)) }],
    ['a leading digit', { database: '1abc' }, { ok: false, message: badName('1abc') }],
    ['a leading -', { database: '-x' }, { ok: false, message: badName('-x') }],
    ['a double quote', { database: 'a"b' }, { ok: false, message: badName('a"b') }],
    ['a single quote', { database: "a'b" }, { ok: false, message: badName("a'b") }],
    ['a space', { database: 'a b' }, { ok: false, message: badName('a b') }],
    ['a semicolon', { database: 'a;DROP' }, { ok: false, message: badName('a;DROP') }],
    ['a non-ASCII letter (more bytes than characters)', { database: 'café' }, { ok: false, message: badName('café') }],
    ['not asked yet', {}, { ok: false, message: 'database: not requested yet' }],
    ['empty', { database: '' }, { ok: false, message: 'database: not requested yet' }],
    ['postgres', { database: 'postgres' }, { ok: false, message: 'database "postgres": reserved for the system' }],
    ['Postgres (any case)', { database: 'Postgres' }, { ok: false, message: 'database "Postgres": reserved for the system' }],
    ['template0', { database: 'template0' }, { ok: false, message: 'database "template0": reserved for the system' }],
    ['template1', { database: 'template1' }, { ok: false, message: 'database "template1": reserved for the system' }],
    ['pg_x', { database: 'pg_x' }, { ok: false, message: 'database "pg_x": names starting with "pg_" are reserved for the system' }],
    ['PG_X', { database: 'PG_X' }, { ok: false, message: 'database "PG_X": names starting with "pg_" are reserved for the system' }],
    ['pgx is not pg_', { database: 'pgx' }, { ok: true, database: 'pgx', extraRoles: [] }],
    ['the database is checked first', { database: '1x', extraUserRoles: 'SUPERUSER' }, { ok: false, message: badName('1x') }],
    ['extra roles in any case, trimmed, canonical', { database: 'a', extraUserRoles: ' createdb , CreateRole,PG_MONITOR ' }, { ok: true, database: 'a', extraRoles: ['CREATEDB', 'CREATEROLE', 'pg_monitor'] }],
    ['every allowed one', { database: 'a', extraUserRoles: 'pg_read_all_data,pg_write_all_data,pg_monitor,pg_read_all_stats,pg_signal_backend' }, { ok: true, database: 'a', extraRoles: ['pg_read_all_data', 'pg_write_all_data', 'pg_monitor', 'pg_read_all_stats', 'pg_signal_backend'] }],
    ['empty pieces ignored', { database: 'a', extraUserRoles: ',CREATEDB,, ,' }, { ok: true, database: 'a', extraRoles: ['CREATEDB'] }],
    ['only empty pieces', { database: 'a', extraUserRoles: ' , ' }, { ok: true, database: 'a', extraRoles: [] }],
    ['duplicates once', { database: 'a', extraUserRoles: 'createdb,CREATEDB' }, { ok: true, database: 'a', extraRoles: ['CREATEDB'] }],
    ['SUPERUSER', { database: 'a', extraUserRoles: 'CREATEDB,SUPERUSER' }, { ok: false, message: `extra-user-roles: "SUPERUSER" is not allowed ${ALLOWED}` }],
    ['superuser (any case)', { database: 'a', extraUserRoles: 'superuser' }, { ok: false, message: `extra-user-roles: "superuser" is not allowed ${ALLOWED}` }],
    ['REPLICATION', { database: 'a', extraUserRoles: 'REPLICATION' }, { ok: false, message: `extra-user-roles: "REPLICATION" is not allowed ${ALLOWED}` }],
    ['BYPASSRLS', { database: 'a', extraUserRoles: 'BYPASSRLS' }, { ok: false, message: `extra-user-roles: "BYPASSRLS" is not allowed ${ALLOWED}` }],
    ['admin', { database: 'a', extraUserRoles: 'admin' }, { ok: false, message: `extra-user-roles: "admin" is not allowed ${ALLOWED}` }],
    ['an unknown role', { database: 'a', extraUserRoles: 'pg_read_server_files' }, { ok: false, message: `extra-user-roles: "pg_read_server_files" is not allowed ${ALLOWED}` }],
    ['another relation’s role', { database: 'a', extraUserRoles: 'relation_3' }, { ok: false, message: `extra-user-roles: "relation_3" is not allowed ${ALLOWED}` }],
  ])('%s', (_, r, want) => {
    expect(checkRequest(r)).toEqual(want);
  });
});

describe('names in SQL', () => {
  test('roleName', () => {
    expect(roleName(7)).toBe('relation_7');
    expect(() => roleName(-1)).toThrow(/not a relation id/);
    expect(() => roleName(1.5)).toThrow(/not a relation id/);
  });
  test.each([
    ['a', '"a"'],
    ['my-db', '"my-db"'],
    ['a"b', '"a""b"'],
    ['""', '""""""'],
  ])('quoteIdent(%s) = %s', (name, want) => {
    expect(quoteIdent(name)).toBe(want);
  });
});
