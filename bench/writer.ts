import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A client that writes a row every `everyMs` to whichever unit accepts writes (it finds it
 * by trying every unit's port, as a libpq multi-host URI with target_session_attrs=read-write
 * would), records every acknowledged id and when it was acknowledged.
 */
/** Where to write: the candidate servers' ports on loopback and the role to connect as. */
export interface WriteTarget {
  ports: () => number[];
  user: string;
  password: string;
}

export class Writer {
  /** Acknowledged rows: id, when, and the port of the server that acknowledged it. */
  readonly acked: { id: number; at: number; port: number }[] = [];
  /** When an insert (or finding a primary for it) failed. */
  readonly failures: number[] = [];
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  readonly table = `w_${Date.now()}`;
  private readonly target: WriteTarget;

  /** `model`: a pgcharm model directory (its units' ports, as the operator); or any set of servers. */
  constructor(model: string | WriteTarget, password = '', private readonly everyMs = 10) {
    this.target =
      typeof model === 'string'
        ? { ports: () => readdirSync(join(model, 'units')).map((u) => Number(readFileSync(join(model, 'units', u, 'port'), 'utf8'))), user: 'operator', password }
        : model;
  }

  ports(): number[] {
    return this.target.ports();
  }

  async connectPrimary(): Promise<pg.Client | undefined> {
    for (const port of this.ports()) {
      const c = new pg.Client({ host: '127.0.0.1', port, user: this.target.user, password: this.target.password, database: 'postgres', connectionTimeoutMillis: 300 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        if (!(await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r) return c;
      } catch {
        /* down or starting */
      }
      await c.end().catch(() => undefined);
    }
    return undefined;
  }

  async start(): Promise<void> {
    const c = await this.connectPrimary();
    if (!c) throw new Error('no primary to write to');
    await c.query(`CREATE TABLE ${this.table} (id int PRIMARY KEY)`);
    await c.end();
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let client: pg.Client | undefined;
    let id = 0;
    while (!this.stopped) {
      try {
        client ??= await this.connectPrimary();
        if (client) {
          const n = ++id;
          await client.query(`INSERT INTO ${this.table} VALUES ($1)`, [n]);
          this.acked.push({ id: n, at: Date.now(), port: client.port ?? 0 });
        }
      } catch {
        this.failures.push(Date.now());
        await client?.end().catch(() => undefined);
        client = undefined;
      }
      await new Promise((r) => setTimeout(r, this.everyMs));
    }
    await client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  /** The first acknowledgement after `t` (ms since epoch) by a server other than `oldPort`. */
  firstAckAfter(t: number, oldPort?: number): number | undefined {
    return this.acked.find((a) => a.at > t && a.port !== oldPort)?.at;
  }

  /**
   * The end of the first write outage after `t`: the first acknowledgement after the first
   * failure after `t`. (A backend that outlives its killed postmaster can still acknowledge a
   * write or two; the outage starts when writes fail.)
   */
  firstAckAfterOutage(t: number): number | undefined {
    const failed = this.failures.find((f) => f >= t);
    return failed === undefined ? undefined : this.acked.find((a) => a.at > failed)?.at;
  }

  /** The port of the server that acknowledged the last write. */
  lastPort(): number | undefined {
    return this.acked.at(-1)?.port;
  }

  /** The longest time between two acknowledgements after `from` (ms). */
  longestGapAfter(from: number): number {
    let gap = 0;
    for (let i = 1; i < this.acked.length; i++) if (this.acked[i]!.at >= from) gap = Math.max(gap, this.acked[i]!.at - this.acked[i - 1]!.at);
    return gap;
  }

  /** Acknowledged ids missing from the current primary. */
  async lost(waitMs = 30_000): Promise<number[]> {
    let c = await this.connectPrimary();
    for (const deadline = Date.now() + waitMs; !c && Date.now() < deadline; c = await this.connectPrimary()) await new Promise((r) => setTimeout(r, 100));
    if (!c) throw new Error(`no primary to check within ${waitMs / 1000} s`);
    try {
      // Only what was acknowledged before the query started: the writer may still be running,
      // and a row acknowledged after the query's snapshot is not missing.
      const acked = this.acked.map((a) => a.id);
      const have = new Set((await c.query<{ id: number }>(`SELECT id FROM ${this.table}`)).rows.map((r) => r.id));
      return acked.filter((id) => !have.has(id));
    } finally {
      await c.end();
    }
  }
}
