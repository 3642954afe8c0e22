import type pg from '#pg';
import { passwordMatches, scramVerifier } from './scram.js';

/**
 * The SQL side of the `database` endpoint (interface postgresql_client): an application related
 * to PostgreSQL asks, in its application bag, for `database` and optionally `extra-user-roles`;
 * the leader gives the relation its own role `relation_<id>` owning that database.
 *
 * - `checkRequest` (pure, table-tested) validates the request against an allow-list.
 * - `provision` makes the role and database match the request; run again on every
 *   relation-changed, it changes nothing when they already do.
 * - `rotatePassword` sets a new password (sessions keep going).
 * - `retire` (relation broken) takes LOGIN away and ends the role's sessions. Nothing is ever
 *   dropped: the database and its data stay, owned by the NOLOGIN role, until a later relation
 *   asks for the same name and `provision` hands them over (REASSIGN OWNED).
 *
 * Who owns the database decides what `provision` does with an existing one:
 *
 * | owner of the existing database            | provision                                         |
 * | ----------------------------------------- | ------------------------------------------------- |
 * | (none: no such database)                  | CREATE DATABASE ... OWNER relation_<id>            |
 * | relation_<id> (this relation)             | nothing                                           |
 * | relation_<old>, NOLOGIN (retired)         | reclaim: REASSIGN OWNED BY relation_<old> in it   |
 * | relation_<other>, LOGIN (a live relation) | share: GRANT relation_<other> TO relation_<id>    |
 * | any other role (made by hand)             | refuse (Error naming the database and its owner)  |
 *
 * Every function runs on a connection as the operator (superuser) to the primary's `postgres`
 * database; the caller sets `synchronous_commit = local` on it, as for ensureSystemRoles (the
 * charm's own statements must not wait for a synchronous standby). The connection `provision`
 * opens to the requested database gets the same setting as `c`. Passwords go in as SCRAM
 * verifiers, never as text.
 */

/** Role attributes an application may ask for (CREATE ROLE keywords). */
export const ALLOWED_ATTRIBUTES = ['CREATEDB', 'CREATEROLE'] as const;
/** Predefined roles an application may be granted. */
export const ALLOWED_ROLES = ['pg_read_all_data', 'pg_write_all_data', 'pg_monitor', 'pg_read_all_stats', 'pg_signal_backend'] as const;
/** Database names no relation gets, besides anything starting with `pg_`. */
export const RESERVED_DATABASES = ['postgres', 'template0', 'template1'] as const;

type Attribute = (typeof ALLOWED_ATTRIBUTES)[number];
type PredefinedRole = (typeof ALLOWED_ROLES)[number];
export type ExtraRole = Attribute | PredefinedRole;

export type Request = { ok: true; database: string; extraRoles: ExtraRole[] } | { ok: false; message: string };

/** The same pattern as the dump-database action's parameter (charm.yaml). */
const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;
const RELATION_ROLE = /^relation_[0-9]+$/;

/** The role a relation's application logs in as. */
export function roleName(relationId: number): string {
  if (!Number.isSafeInteger(relationId) || relationId < 0) throw new Error(`not a relation id: ${relationId}`);
  return `relation_${relationId}`;
}

/** An identifier quoted for SQL text (`"` doubled), whatever it holds. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Validates an application's request. Names are matched case-insensitively (attribute keywords
 * are; an unquoted role name folds to lower case) and come back in their canonical spelling,
 * without duplicates; empty pieces of extra-user-roles are ignored. Reserved names are refused
 * whatever their case (a quoted "Postgres" would be a different database, and a confusing one).
 */
export function checkRequest(r: { database?: string | undefined; extraUserRoles?: string | undefined }): Request {
  const database = r.database ?? '';
  if (database === '') return { ok: false, message: 'database: not requested yet' };
  if (!DATABASE_NAME.test(database)) {
    return { ok: false, message: `database ${JSON.stringify(database)}: not a valid database name (letters, digits, '_' and '-', starting with a letter or '_', at most 63 characters)` };
  }
  const lower = database.toLowerCase();
  if ((RESERVED_DATABASES as readonly string[]).includes(lower)) return { ok: false, message: `database ${JSON.stringify(database)}: reserved for the system` };
  if (lower.startsWith('pg_')) return { ok: false, message: `database ${JSON.stringify(database)}: names starting with "pg_" are reserved for the system` };
  const allowed: readonly ExtraRole[] = [...ALLOWED_ATTRIBUTES, ...ALLOWED_ROLES];
  const extraRoles: ExtraRole[] = [];
  for (const piece of (r.extraUserRoles ?? '').split(',')) {
    const name = piece.trim();
    if (name === '') continue;
    const known = allowed.find((a) => a.toLowerCase() === name.toLowerCase());
    if (!known) return { ok: false, message: `extra-user-roles: ${JSON.stringify(name)} is not allowed (allowed: ${allowed.join(', ')})` };
    if (!extraRoles.includes(known)) extraRoles.push(known);
  }
  return { ok: true, database, extraRoles };
}

export interface ProvisionOptions {
  relationId: number;
  /** Already accepted by checkRequest (checked again here all the same). */
  database: string;
  extraRoles: readonly string[];
  password: string;
  /**
   * A new connection as the operator to `database` on the same server, used (and ended) only
   * when the database has to be set up or reclaimed.
   */
  connect: (database: string) => Promise<pg.Client>;
}

export interface Provisioned {
  username: string;
  /** The database was created by this call. */
  created: boolean;
  /** The retired role the database (and everything in it owned by that role) was taken over from, by this call. */
  reclaimedFrom?: string;
  /** The live relation role that owns the database: this role was made a member of it. */
  sharedWith?: string;
  /** What was changed, one short line each (no password): empty when everything was already right. */
  changes: string[];
}

interface RoleRow {
  rolcanlogin: boolean;
  rolsuper: boolean;
  rolreplication: boolean;
  rolbypassrls: boolean;
  rolcreatedb: boolean;
  rolcreaterole: boolean;
  rolconnlimit: number;
  rolpassword: string | null;
}

/** Makes role `relation_<id>` and its database match the request (see the table above). */
export async function provision(c: pg.Client, o: ProvisionOptions): Promise<Provisioned> {
  const username = roleName(o.relationId);
  const checked = checkRequest({ database: o.database, extraUserRoles: o.extraRoles.join(',') });
  if (!checked.ok) throw new Error(checked.message);
  const { database, extraRoles } = checked;
  const role = quoteIdent(username);
  const db = quoteIdent(database);
  const changes: string[] = [];
  const run = async (sql: string, what: string) => {
    await c.query(sql);
    changes.push(what);
  };

  // A database made by hand is refused before anything is changed.
  const found = (
    await c.query<{ owner: string; ownerLogin: boolean }>(
      'SELECT r.rolname AS owner, r.rolcanlogin AS "ownerLogin" FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1',
      [database],
    )
  ).rows[0];
  if (found && !RELATION_ROLE.test(found.owner)) {
    throw new Error(`database "${database}" already exists and is owned by "${found.owner}", not by a relation's role: the charm does not take over a database it did not create`);
  }

  // The role: exactly the attributes asked for, everything else off.
  const attrs = {
    rolcanlogin: true,
    rolsuper: false,
    rolreplication: false,
    rolbypassrls: false,
    rolcreatedb: extraRoles.includes('CREATEDB'),
    rolcreaterole: extraRoles.includes('CREATEROLE'),
    rolconnlimit: -1,
  };
  const attrSql = [
    'LOGIN NOSUPERUSER NOREPLICATION NOBYPASSRLS',
    attrs.rolcreatedb ? 'CREATEDB' : 'NOCREATEDB',
    attrs.rolcreaterole ? 'CREATEROLE' : 'NOCREATEROLE',
    'CONNECTION LIMIT -1',
  ].join(' ');
  const existing = (
    await c.query<RoleRow>(
      'SELECT rolcanlogin, rolsuper, rolreplication, rolbypassrls, rolcreatedb, rolcreaterole, rolconnlimit, rolpassword FROM pg_authid WHERE rolname = $1',
      [username],
    )
  ).rows[0];
  if (!existing) {
    await run(`CREATE ROLE ${role} WITH ${attrSql} PASSWORD '${scramVerifier(o.password)}'`, `created role ${username}`);
  } else {
    if ((Object.keys(attrs) as (keyof typeof attrs)[]).some((k) => existing[k] !== attrs[k])) await run(`ALTER ROLE ${role} WITH ${attrSql}`, `set the attributes of ${username}`);
    if (!passwordMatches(existing.rolpassword, username, o.password)) await run(`ALTER ROLE ${role} WITH PASSWORD '${scramVerifier(o.password)}'`, `set the password of ${username}`);
  }
  // Predefined roles: granted as asked, and the allow-listed ones no longer asked for revoked
  // (only where that changes something: a GRANT rewrites the catalog even when nothing changes).
  const held = new Set(
    (
      await c.query<{ rolname: string }>(
        'SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 AND r.rolname = ANY($2)',
        [username, [...ALLOWED_ROLES]],
      )
    ).rows.map((r) => r.rolname),
  );
  for (const r of ALLOWED_ROLES) {
    const want = extraRoles.includes(r);
    if (want && !held.has(r)) await run(`GRANT ${quoteIdent(r)} TO ${role}`, `granted ${r} to ${username}`);
    if (!want && held.has(r)) await run(`REVOKE ${quoteIdent(r)} FROM ${role}`, `revoked ${r} from ${username}`);
  }

  // The database.
  const result: Provisioned = { username, created: false, changes };
  let setUp = false;
  if (!found) {
    // A statement of its own (CREATE DATABASE cannot run in a transaction block).
    await run(`CREATE DATABASE ${db} OWNER ${role}`, `created database ${database} owned by ${username}`);
    result.created = true;
    setUp = true;
  } else if (found.owner === username) {
    // Already this relation's.
  } else if (found.ownerLogin) {
    // Another live relation asked for the same name: share it, never take it away.
    const member = await c.query('SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1 AND u.rolname = $2', [found.owner, username]);
    if (!member.rowCount) await run(`GRANT ${quoteIdent(found.owner)} TO ${role}`, `granted ${found.owner} (owner of database ${database}) to ${username}`);
    result.sharedWith = found.owner;
  } else {
    await reclaim(c, o.connect, { database, from: found.owner, to: username });
    changes.push(`reassigned database ${database} and what ${found.owner} owned in it to ${username}`);
    result.reclaimedFrom = found.owner;
    setUp = true;
  }

  // PUBLIC (every role) gets nothing on the database: another relation's role cannot even
  // connect. Revoked last, so that a PUBLIC privilege still there also means the set-up in the
  // database itself (below) may not have happened: a retry does it, the steady state connects nowhere.
  const publicOnDb = await c.query(
    "SELECT 1 FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = $1 AND a.grantee = 0",
    [database],
  );
  if (publicOnDb.rowCount || setUp) {
    const inDb = await open(c, o.connect, database);
    try {
      const publicCreate = await inDb.query(
        "SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE'",
      );
      if (publicCreate.rowCount) {
        await inDb.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
        changes.push(`revoked CREATE on schema public of ${database} from PUBLIC`);
      }
    } finally {
      await inDb.end();
    }
    if (publicOnDb.rowCount) await run(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`, `revoked all on database ${database} from PUBLIC`);
  }
  return result;
}

/**
 * Hands a retired role's database to `to`, in one transaction on a connection to it: REASSIGN
 * OWNED moves the objects in that database and the shared objects (databases) `from` owns;
 * other databases `from` owns go back to it (they are not the one asked for). Members of `from`
 * that are live relation roles (it shared the database) become members of `to`, so they keep
 * their access.
 */
async function reclaim(c: pg.Client, connect: ProvisionOptions['connect'], o: { database: string; from: string; to: string }): Promise<void> {
  const inDb = await open(c, connect, o.database);
  try {
    await inDb.query('BEGIN');
    const others = (await inDb.query<{ datname: string }>('SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = $1 AND d.datname <> $2', [o.from, o.database])).rows;
    await inDb.query(`REASSIGN OWNED BY ${quoteIdent(o.from)} TO ${quoteIdent(o.to)}`);
    for (const d of others) await inDb.query(`ALTER DATABASE ${quoteIdent(d.datname)} OWNER TO ${quoteIdent(o.from)}`);
    await inDb.query(`ALTER DATABASE ${quoteIdent(o.database)} OWNER TO ${quoteIdent(o.to)}`);
    const members = (
      await inDb.query<{ rolname: string }>(
        "SELECT u.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1 AND u.rolcanlogin AND u.rolname ~ '^relation_[0-9]+$' AND u.rolname <> $2 AND NOT pg_has_role($2, u.oid, 'MEMBER')",
        [o.from, o.to],
      )
    ).rows;
    for (const m of members) await inDb.query(`GRANT ${quoteIdent(o.to)} TO ${quoteIdent(m.rolname)}`);
    await inDb.query('COMMIT');
  } catch (e) {
    await inDb.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    await inDb.end();
  }
}

/** A connection to `database` with the same synchronous_commit as `c`. */
async function open(c: pg.Client, connect: ProvisionOptions['connect'], database: string): Promise<pg.Client> {
  const setting = (await c.query<{ s: string }>("SELECT current_setting('synchronous_commit') AS s")).rows[0]!.s;
  const inDb = await connect(database);
  try {
    await inDb.query("SELECT set_config('synchronous_commit', $1, false)", [setting]);
  } catch (e) {
    await inDb.end().catch(() => undefined);
    throw e;
  }
  return inDb;
}

/** Sets the relation role's password; existing sessions keep going. False when it already was that one. */
export async function rotatePassword(c: pg.Client, relationId: number, password: string): Promise<boolean> {
  const username = roleName(relationId);
  const row = (await c.query<{ rolpassword: string | null }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [username])).rows[0];
  if (!row) throw new Error(`role ${username} does not exist`);
  if (passwordMatches(row.rolpassword, username, password)) return false;
  await c.query(`ALTER ROLE ${quoteIdent(username)} WITH PASSWORD '${scramVerifier(password)}'`);
  return true;
}

/**
 * The relation is gone: its role can no longer log in and its sessions end. The role, its
 * database and its data stay (a later relation asking for the same database gets them).
 * Returns how many sessions were terminated; a missing role is nothing to do.
 */
export async function retire(c: pg.Client, relationId: number): Promise<number> {
  const username = roleName(relationId);
  const row = (await c.query<{ rolcanlogin: boolean }>('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [username])).rows[0];
  if (!row) return 0;
  if (row.rolcanlogin) await c.query(`ALTER ROLE ${quoteIdent(username)} WITH NOLOGIN`);
  // After NOLOGIN, so no new session slips in between.
  // pg_terminate_backend in the subquery's select list: only ever called for the rows the filter kept.
  const r = await c.query<{ n: number }>(
    'SELECT count(*) FILTER (WHERE t)::int AS n FROM (SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()) s',
    [username],
  );
  return r.rows[0]?.n ?? 0;
}
