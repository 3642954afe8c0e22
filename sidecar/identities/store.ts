import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import {
  applyIdentities,
  identitiesFromStored,
  identitiesToStored,
  identityFromCredentials,
  type Credentials,
  type Identity,
  type IdentityAction,
  type IdentitySet,
} from './identities.js';
import { hashProblem, verifyPassword } from './password.js';

/** Where the identities live in the sidecar directory (Pebble keeps them in its state file, .pebble.state). */
export const IDENTITIES_FILE = '.pebble.identities.json';

/**
 * The identities of one sidecar, kept in `<dir>/.pebble.identities.json` (mode 0600: it holds
 * password hashes) so that they survive a restart, as Pebble's state file keeps them. A change
 * is written (to a temporary file, synced, renamed over the old one) before it takes effect; if
 * that fails, nothing changed.
 */
export class IdentityStore {
  private set: IdentitySet;
  private readonly path: string;
  /** Identities already warned about for an unusable hash, by name and hash. */
  private readonly warned = new Set<string>();

  /** Loads the file if there is one; a file that cannot be read or holds invalid identities is an error. */
  constructor(
    dir: string,
    private readonly log: Logger,
  ) {
    this.path = join(dir, IDENTITIES_FILE);
    this.set = new Map();
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`cannot read identities from ${this.path}: ${(e as Error).message}`);
    }
    try {
      this.set = identitiesFromStored(JSON.parse(text));
    } catch (e) {
      throw new Error(`cannot load identities from ${this.path}: ${(e as Error).message}`);
    }
  }

  get identities(): IdentitySet {
    return this.set;
  }

  hasLocal(): boolean {
    for (const identity of this.set.values()) if (identity.local) return true;
    return false;
  }

  /** Applies a change (IdentityError for the caller's mistakes), persists it, then makes it current. */
  apply(action: IdentityAction, changes: ReadonlyMap<string, Identity | null>): void {
    const next = applyIdentities(this.set, action, changes);
    this.write(next);
    this.set = next;
  }

  /** The identity the credentials name (Pebble's IdentityFromInputs); see identityFromCredentials. */
  identityFromCredentials(c: Credentials): ReturnType<typeof identityFromCredentials> {
    return identityFromCredentials(this.set, c, async (name, password, hash) => {
      const problem = hashProblem(hash);
      if (problem) {
        // Once per identity and hash: a scraper retrying every few seconds must not flood the log.
        const key = `${name}\u0000${hash}`;
        if (!this.warned.has(key)) {
          this.warned.add(key);
          this.log.warn({ identity: name }, `basic identity cannot authenticate: ${problem}`);
        }
        return false;
      }
      try {
        return await verifyPassword(password, hash);
      } catch (err) {
        this.log.error({ err }, 'cannot load the sha512-crypt library: basic authentication refused');
        return false;
      }
    });
  }

  private write(set: IdentitySet): void {
    const tmp = `${this.path}.tmp`;
    rmSync(tmp, { force: true }); // a leftover keeps its mode; a new file gets 0600
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(identitiesToStored(set), null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    // The rename itself is durable once the directory is synced.
    const dirFd = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }
}
