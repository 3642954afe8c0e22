/**
 * Pure decisions of the PostgreSQL charm, table-tested in test/charm/decide.test.ts.
 */

/**
 * The first primary: the leader starts the cluster on itself. It is the one unit that knows
 * nobody else bootstrapped (it alone writes the application bag), and it is up right now.
 */
export function chooseBootstrapPrimary(leader: string, _peers: readonly string[]): string {
  return leader;
}

/**
 * synchronous_standby_names for the primary. quorum: `ANY n (...)` over the standbys that are
 * streaming now, n = min(synchronous-node-count, how many stream); with none streaming it is
 * empty, so a primary alone keeps accepting writes (Patroni's synchronous_mode without strict).
 */
export function synchronousStandbyNames(mode: string, count: number, streaming: readonly string[]): string {
  if (mode !== 'quorum' || streaming.length === 0) return '';
  const n = Math.max(1, Math.min(count, streaming.length));
  const names = [...streaming].sort().map((s) => `"${s.replace(/"/g, '""')}"`);
  return `ANY ${n} (${names.join(', ')})`;
}
