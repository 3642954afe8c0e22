import { readFileSync } from 'node:fs';

/**
 * User and group lookup from /etc/passwd and /etc/group. The sidecar runs in minimal
 * images without NSS helpers, and Pebble resolves names the same way (os/user in pure Go).
 */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

function readLines(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

export function lookupUser(nameOrId: string | number): PasswdEntry | undefined {
  for (const f of readLines('/etc/passwd')) {
    if (f.length < 7) continue;
    const entry = { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! };
    if (typeof nameOrId === 'number' ? entry.uid === nameOrId : entry.name === nameOrId) return entry;
  }
  return undefined;
}

export function lookupGroup(nameOrId: string | number): { name: string; gid: number } | undefined {
  for (const f of readLines('/etc/group')) {
    if (f.length < 3) continue;
    const entry = { name: f[0]!, gid: Number(f[2]) };
    if (typeof nameOrId === 'number' ? entry.gid === nameOrId : entry.name === nameOrId) return entry;
  }
  return undefined;
}

export interface Identity {
  uid?: number;
  gid?: number;
  /** Set when a user is given, so HOME/USER can be exported to the child like Pebble does. */
  user?: PasswdEntry;
}

/**
 * Pebble's osutil.NormalizeUidGid: names and ids must agree when both are given; a user
 * without a group runs with the user's primary group; a group alone is an error.
 */
export function normalizeUidGid(opts: {
  userId?: number;
  user?: string;
  groupId?: number;
  group?: string;
}): Identity {
  let uid = opts.userId;
  let gid = opts.groupId;
  let entry: PasswdEntry | undefined;
  if (opts.user) {
    entry = lookupUser(opts.user);
    if (!entry) throw new Error(`user ${JSON.stringify(opts.user)} not found`);
    if (uid !== undefined && uid !== entry.uid) {
      throw new Error(`user ${JSON.stringify(opts.user)} uid (${entry.uid}) does not match user-id (${uid})`);
    }
    uid = entry.uid;
  } else if (uid !== undefined) {
    entry = lookupUser(uid);
  }
  if (opts.group) {
    const g = lookupGroup(opts.group);
    if (!g) throw new Error(`group ${JSON.stringify(opts.group)} not found`);
    if (gid !== undefined && gid !== g.gid) {
      throw new Error(`group ${JSON.stringify(opts.group)} gid (${g.gid}) does not match group-id (${gid})`);
    }
    gid = g.gid;
  }
  if (uid === undefined && gid !== undefined) throw new Error('must specify user, not just group');
  if (uid !== undefined && gid === undefined) {
    if (!entry) throw new Error(`cannot find primary group of user-id ${uid}: specify group or group-id`);
    gid = entry.gid;
  }
  const id: Identity = {};
  if (uid !== undefined) id.uid = uid;
  if (gid !== undefined) id.gid = gid;
  if (entry) id.user = entry;
  return id;
}

/** HOME and USER for the target user unless the caller set them (Pebble does the same). */
export function userEnvironment(id: Identity, env: Record<string, string>): Record<string, string> {
  if (!id.user) return env;
  const out = { ...env };
  out.HOME ??= id.user.home;
  out.USER ??= id.user.name;
  return out;
}
