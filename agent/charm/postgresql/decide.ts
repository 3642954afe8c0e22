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

export interface Candidate {
  unit: string;
  /** pg_last_wal_receive_lsn() as text (e.g. 0/3000148), or undefined when unreachable. */
  lsn?: string;
}

/** LSN text to a comparable number (hi/lo 32-bit halves). */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/**
 * Which standby to promote when the primary's lease expired. quorum: only a unit that was in
 * the synchronous set (it has every acknowledged commit), none if the set is empty; off: any
 * reachable standby. Among those, the highest received LSN, then the lowest unit name, so
 * every unit computes the same answer (the Lease's compare-and-swap settles any race).
 */
export function chooseFailoverCandidate(mode: string, synchronousSet: readonly string[], candidates: readonly Candidate[]): { unit?: string; why: string } {
  const eligible = candidates.filter((c) => c.lsn !== undefined && (mode !== 'quorum' || synchronousSet.includes(c.unit)));
  if (eligible.length === 0) {
    return { why: mode === 'quorum' ? `no reachable standby from the synchronous set [${synchronousSet.join(', ')}]` : 'no reachable standby' };
  }
  const best = [...eligible].sort((a, b) => {
    const d = lsnValue(b.lsn!) - lsnValue(a.lsn!);
    return d > 0n ? 1 : d < 0n ? -1 : a.unit.localeCompare(b.unit);
  })[0]!;
  return { unit: best.unit, why: `highest received LSN ${best.lsn} among ${eligible.map((c) => c.unit).join(', ')}` };
}
