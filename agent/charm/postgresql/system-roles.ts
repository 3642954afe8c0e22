import type pg from '#pg';
import { scramVerifier } from './scram.js';
import type { Passwords } from './secrets.js';

/**
 * The system roles besides the operator (initdb's superuser), created on the primary with
 * least privilege and their passwords from Secret `<app>-passwords` as SCRAM verifiers (never
 * a password in SQL text). Existing roles keep their password: set-password changes those.
 *
 * - replication: REPLICATION LOGIN (streaming, pg_basebackup).
 * - rewind: LOGIN and EXECUTE on exactly the functions PostgreSQL's pg_rewind documentation
 *   lists for a non-superuser source connection (PostgreSQL 11 and later).
 * - monitoring: LOGIN, member of pg_monitor (the statistics views and functions, read-only).
 */

/** pg_rewind's documented grants ("pg_rewind", Notes: the role used to connect to the source). */
export const REWIND_FUNCTIONS = [
  'pg_catalog.pg_ls_dir(text, boolean, boolean)',
  'pg_catalog.pg_stat_file(text, boolean)',
  'pg_catalog.pg_read_binary_file(text)',
  'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
] as const;

/** Runs on a connection as the operator to the primary (the caller sets synchronous_commit = local). */
export async function ensureSystemRoles(c: pg.Client, pw: Pick<Passwords, 'replication' | 'rewind' | 'monitoring'>): Promise<void> {
  const existing = new Set((await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname IN ('replication', 'rewind', 'monitoring')")).rows.map((r) => r.rolname));
  if (!existing.has('replication')) await c.query(`CREATE ROLE replication WITH REPLICATION LOGIN PASSWORD '${scramVerifier(pw.replication)}'`);
  if (!existing.has('rewind')) await c.query(`CREATE ROLE rewind WITH LOGIN PASSWORD '${scramVerifier(pw.rewind)}'`);
  if (!existing.has('monitoring')) await c.query(`CREATE ROLE monitoring WITH LOGIN PASSWORD '${scramVerifier(pw.monitoring)}' IN ROLE pg_monitor`);
  // Granted only where missing: a GRANT rewrites the catalog row (and WAL) even when nothing changes.
  const missing = (
    await c.query<{ f: string }>("SELECT f FROM unnest($1::text[]) AS f WHERE NOT has_function_privilege('rewind', f, 'EXECUTE')", [[...REWIND_FUNCTIONS]])
  ).rows.map((r) => r.f);
  for (const f of missing) await c.query(`GRANT EXECUTE ON FUNCTION ${f} TO rewind`);
  if (!(await c.query("SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = 'pg_monitor' AND u.rolname = 'monitoring'")).rowCount) {
    await c.query('GRANT pg_monitor TO monitoring');
  }
}
