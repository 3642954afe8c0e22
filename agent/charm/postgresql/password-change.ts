import type { Logger } from 'pino';
import type { EventContext } from '../../runtime/charm.js';
import type { Kube } from '../../runtime/kube.js';
import { parseAddress } from './positions.js';
import { passwordMatches, scramVerifier } from './scram.js';
import { commitPassword, dropPending, isSystemUser, readPending, stagePassword, SYSTEM_USERS, type Passwords, type SystemUser } from './secrets.js';
import { withConnection } from './workload.js';

/**
 * set-password in two phases, so that no crash can leave the Secret and the role disagreeing
 * with nobody knowing the role's password (for the operator that locks every agent out):
 *
 *   1. stage:  Secret `<user>-pending` = new password
 *   2. alter:  ALTER ROLE <user> PASSWORD '<SCRAM verifier of it>' on the primary
 *   3. commit: Secret `<user>` = new password, `<user>-pending` removed
 *
 * A leader that finds a pending password (it, or the leader before it, stopped between 1 and
 * 3) asks the primary which password the role has and finishes (commit) or rolls back.
 */

interface Target {
  host: string;
  port: number;
}

/** Which of the two passwords the role has now, as the primary says; unknown if it could not be asked. */
export type RoleHas = 'pending' | 'current' | 'both' | 'neither' | 'unknown';

export interface PendingDecision {
  action: 'commit' | 'rollback' | 'nothing';
  why: string;
}

/** The recovery decision for one user (pure; table-tested in test/charm/password-change.test.ts). */
export function decidePending(pending: boolean, has: RoleHas): PendingDecision {
  if (!pending) return { action: 'nothing', why: 'no password change pending' };
  switch (has) {
    case 'pending':
    case 'both':
      return { action: 'commit', why: 'the role has the pending password: the change reached PostgreSQL' };
    case 'current':
      return { action: 'rollback', why: 'the role still has the current password: the change never reached PostgreSQL' };
    case 'neither':
      return { action: 'nothing', why: 'the role has neither the current nor the pending password (changed outside the charm?): run set-password again' };
    case 'unknown':
      return { action: 'nothing', why: 'the primary could not be asked; trying again at the next event' };
  }
}

const authFailed = (e: unknown) => (e as { code?: string }).code === '28P01';

/** Logging in as the operator tells which password it has; other roles are checked against pg_authid. */
async function roleHas(target: Target, operator: string, user: SystemUser, pending: string, current: string): Promise<RoleHas> {
  if (user === 'operator') {
    for (const [which, pw] of [['pending', pending], ['current', current]] as const) {
      try {
        await withConnection(target, pw, (c) => c.query('SELECT 1'));
        return which === 'pending' && pending === current ? 'both' : which;
      } catch (e) {
        if (!authFailed(e)) return 'unknown';
      }
    }
    return 'neither';
  }
  let stored: string | null | undefined;
  try {
    stored = await withConnection(target, operator, async (c) => (await c.query<{ p: string | null }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [user])).rows[0]?.p);
  } catch {
    return 'unknown';
  }
  // No role yet: it gets the committed password when it is created (system-roles.ts).
  if (stored === undefined) return 'current';
  const p = passwordMatches(stored, user, pending);
  const c = passwordMatches(stored, user, current);
  return p && c ? 'both' : p ? 'pending' : c ? 'current' : 'neither';
}

/**
 * Leader: finishes or rolls back every pending change (the operator's first: the others are
 * checked over its connection). Returns the passwords as committed now. Logs users and
 * decisions, never a password.
 */
export async function settlePasswordChanges(kube: Kube, app: string, primary: Target | undefined, pw: Passwords, log: Logger): Promise<Passwords> {
  const pending = await readPending(kube, app);
  const current = { ...pw };
  for (const user of SYSTEM_USERS) {
    const next = pending[user];
    if (next === undefined) continue;
    const has = primary ? await roleHas(primary, current.operator, user, next, current[user]) : 'unknown';
    const d = decidePending(true, has);
    log[d.action === 'nothing' ? 'warn' : 'info']({ decision: `password change ${d.action}`, user, why: d.why }, 'password change');
    if (d.action === 'commit') {
      await commitPassword(kube, app, user, next);
      current[user] = next;
    } else if (d.action === 'rollback') {
      await dropPending(kube, app, user, next);
    }
  }
  return current;
}

/** The primary's address for the leader: the Lease holder's bag (this unit's own included). */
export function primaryTarget(ctx: EventContext, holder: string | undefined): Target | undefined {
  if (!holder || (holder !== ctx.unit && !ctx.peers.units.includes(holder))) return undefined;
  return parseAddress(ctx.peers.unit(holder).get('address'));
}

/** set-password: stage, alter, commit. Returns the passwords as committed afterwards. */
export async function changePassword(kube: Kube, app: string, primary: Target, pw: Passwords, user: SystemUser, password: string, log: Logger): Promise<Passwords> {
  if (!isSystemUser(user)) throw new Error(`not a system user: ${JSON.stringify(user)}`); // it goes into SQL
  const before = await settlePasswordChanges(kube, app, primary, pw, log);
  await stagePassword(kube, app, user, password);
  try {
    await withConnection(primary, before.operator, async (c) => {
      // Not waiting for a synchronous standby: the charm's own statement must not hang on one.
      await c.query('SET synchronous_commit = local');
      // A SCRAM verifier, never the password: neither the SQL text nor a server log line holds it.
      await c.query(`ALTER ROLE ${user} WITH PASSWORD '${scramVerifier(password)}'`);
    });
  } catch (e) {
    // The ALTER may have been committed before the error (a connection lost at the end):
    // settle as a restarted leader would, from what the role has.
    await settlePasswordChanges(kube, app, primary, before, log);
    throw e;
  }
  await commitPassword(kube, app, user, password);
  return { ...before, [user]: password };
}
