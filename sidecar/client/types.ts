/**
 * Result types of the Pebble API as they are on the wire (kebab-case keys, RFC 3339
 * timestamps as strings). Keeping the wire shape means a value can be logged, compared
 * with what `pebble` or `ops` see, and re-serialised without loss.
 */

export interface SystemInfo {
  version: string;
  'boot-id'?: string;
  'http-address'?: string;
}

export type ServiceStartup = 'enabled' | 'disabled' | '';
export type ServiceStatus = 'active' | 'inactive' | 'backoff' | 'error';

export interface ServiceInfo {
  name: string;
  startup: ServiceStartup;
  current: ServiceStatus;
  /** Absent while the service was never started. */
  'current-since'?: string;
}

export type ChangeStatus =
  | 'Default'
  | 'Hold'
  | 'Do'
  | 'Doing'
  | 'Undo'
  | 'Undoing'
  | 'Done'
  | 'Undone'
  | 'Abort'
  | 'Error'
  | 'Wait';

export interface TaskProgress {
  label: string;
  done: number;
  total: number;
}

export interface Task {
  id: string;
  kind: string;
  summary: string;
  status: ChangeStatus;
  log?: string[];
  progress: TaskProgress;
  'spawn-time': string;
  'ready-time'?: string;
  /** For exec tasks Pebble puts `exit-code` here. */
  data?: Record<string, unknown>;
}

export interface Change {
  id: string;
  kind: string;
  summary: string;
  status: ChangeStatus;
  tasks: Task[];
  ready: boolean;
  /** Set when a task failed: "cannot perform the following tasks: ..." */
  err?: string;
  'spawn-time': string;
  'ready-time'?: string;
  data?: Record<string, unknown>;
}

export type ChangeSelect = 'in-progress' | 'ready' | 'all';

export type CheckLevel = 'alive' | 'ready' | '';
export type CheckStatus = 'up' | 'down' | 'inactive';

export interface CheckInfo {
  name: string;
  level?: CheckLevel;
  startup?: 'enabled' | 'disabled';
  status: CheckStatus;
  successes?: number;
  failures: number;
  threshold: number;
  'change-id'?: string;
  'prev-change-id'?: string;
}

export interface HealthInfo {
  healthy: boolean;
}

export type FileType = 'file' | 'directory' | 'symlink' | 'socket' | 'named-pipe' | 'device' | 'unknown';

export interface FileInfo {
  path: string;
  name: string;
  type: FileType;
  /** Only for regular files. */
  size?: number;
  /** Octal string, e.g. "644". */
  permissions: string;
  'last-modified': string;
  'user-id'?: number;
  user?: string;
  'group-id'?: number;
  group?: string;
}

export interface Notice {
  id: string;
  'user-id'?: number | null;
  type: 'custom' | 'change-update' | 'warning' | string;
  key: string;
  'first-occurred': string;
  'last-occurred': string;
  'last-repeated': string;
  occurrences: number;
  'last-data'?: Record<string, string>;
  /** Go duration strings, e.g. "1h0m0s". */
  'repeat-after'?: string;
  'expire-after'?: string;
}

export interface LogEntry {
  time: string;
  service: string;
  message: string;
}

/** File ownership and mode for push and make-dirs; Pebble checks that names and ids agree. */
export interface Ownership {
  /** Mode as a number (0o644) or an octal string ("644"). */
  permissions?: number | string;
  user?: string;
  userId?: number;
  group?: string;
  groupId?: number;
}

export type IdentityAccess = 'admin' | 'read' | 'metrics' | 'untrusted';

/** A named identity (GET/POST /v1/identities); the server shows a basic password as "*****". */
export interface Identity {
  access: IdentityAccess;
  /** Recognised by the caller's UID on the unix socket. */
  local?: { 'user-id': number };
  /** HTTP basic authentication; `password` is a sha512-crypt hash (`openssl passwd -6`). */
  basic?: { password: string };
}
