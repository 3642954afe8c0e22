import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { trackChild, untrackChild } from '../osutil/children.js';
import { normalizeUidGid } from '../osutil/users.js';
import { shlexSplit } from '../plan/shlex.js';
import type { ServiceContext } from '../plan/types.js';

/** Pebble keeps this much output (exec) or body (http) for the error details. */
const MAX_ERROR_BYTES = 512;
const MAX_ERROR_LINES = 5;
/** After a check command exits, how long to wait for grandchildren holding its pipes (Go's WaitDelay). */
const EXEC_WAIT_DELAY = 1000;
const MAX_REDIRECTS = 10;

/** A failed check: `message` is the short reason, `details` the body or output snippet. */
export class CheckError extends Error {
  constructor(
    message: string,
    readonly details = '',
  ) {
    super(message);
  }

  /** Pebble's task-log form: the message, then "; " and the details when there are any. */
  full(): string {
    return this.details ? `${this.message}; ${this.details}` : this.message;
  }
}

/** Exec check settings after the service context was merged in. */
export interface ExecSpec extends ServiceContext {
  command: string;
}

export type CheckSpec =
  | { type: 'http'; url: string; headers: Record<string, string> }
  | { type: 'tcp'; host: string; port: number }
  | { type: 'exec'; exec: ExecSpec };

/** Runs one probe; resolves on success, rejects with CheckError (or the abort reason) on failure. */
export function runChecker(spec: CheckSpec, signal: AbortSignal): Promise<void> {
  switch (spec.type) {
    case 'http':
      return httpCheck(spec.url, spec.headers, signal);
    case 'tcp':
      return tcpCheck(spec.host, spec.port, signal);
    case 'exec':
      return execCheck(spec.exec, signal);
  }
}

/** Removes user:password from a URL so it can appear in errors and logs. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (!u.username && !u.password) return raw;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return raw;
  }
}

/** The first lines of a body, with "(...)" when more were cut, as Pebble reports them. */
function firstLines(text: string): string {
  const lines = text.trim().split('\n');
  if (lines.length > MAX_ERROR_LINES) return [...lines.slice(0, MAX_ERROR_LINES), '(...)'].join('\n');
  return lines.join('\n');
}

function lastLines(text: string): string {
  const lines = text.replace(/\n+$/, '').split('\n');
  return lines.slice(-MAX_ERROR_LINES).join('\n');
}

const SENSITIVE_HEADERS = new Set(['authorization', 'www-authenticate', 'cookie', 'cookie2']);

/** GET with Go's net/http client behaviour: follows up to 10 redirects, 2xx is success. */
async function httpCheck(rawUrl: string, headers: Record<string, string>, signal: AbortSignal): Promise<void> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new CheckError(`invalid URL ${JSON.stringify(redactUrl(rawUrl))}`);
  }
  const origHost = url.host;
  for (let redirects = 0; ; redirects++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      const scheme = JSON.stringify(url.protocol.replace(/:$/, ''));
      throw new CheckError(`Get ${JSON.stringify(redactUrl(url.toString()))}: unsupported protocol scheme ${scheme}`);
    }
    // Go drops credentials-bearing headers when a redirect leaves the original host.
    const sendHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) {
      if (url.host !== origHost && SENSITIVE_HEADERS.has(k.toLowerCase())) continue;
      sendHeaders[k] = v;
    }
    const res = await httpGet(url, sendHeaders, signal);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(status) && location) {
      res.resume();
      if (redirects + 1 >= MAX_REDIRECTS) {
        throw new CheckError(`Get ${JSON.stringify(redactUrl(location))}: stopped after ${MAX_REDIRECTS} redirects`);
      }
      url = new URL(location, url);
      continue;
    }
    if (status >= 200 && status <= 299) {
      res.resume();
      return;
    }
    let details: string;
    try {
      details = firstLines((await readLimited(res, MAX_ERROR_BYTES)).toString('utf8'));
    } catch (e) {
      details = `cannot read response: ${(e as Error).message}`;
    }
    throw new CheckError(`non-2xx status code ${status}`, details);
  }
}

async function httpGet(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<http.IncomingMessage> {
  // https (and tls) only for an https check: ~1 MB of RSS a sidecar with none does not pay.
  const mod = url.protocol === 'https:' ? (await import('node:https')).default : http;
  return new Promise((resolve, reject) => {
    // agent:false gives every probe a fresh connection: a pooled socket could hide a dead server.
    const req = mod.request(url, { method: 'GET', headers, agent: false, signal }, resolve);
    req.on('error', (e: Error) => {
      if (signal.aborted) reject(signal.reason);
      else reject(new CheckError(`Get ${JSON.stringify(redactUrl(url.toString()))}: ${e.message}`));
    });
    req.end();
  });
}

function readLimited(res: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = () => {
      res.destroy();
      resolve(Buffer.concat(chunks).subarray(0, limit));
    };
    res.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= limit) finish();
    });
    res.on('end', finish);
    res.on('error', reject);
  });
}

function tcpCheck(host: string, port: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const onAbort = () => {
      sock.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve();
    });
    sock.once('error', (e: Error) => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      reject(new CheckError(`dial tcp ${net.isIPv6(host) ? `[${host}]` : host}:${port}: ${e.message}`));
    });
  });
}

/** Keeps the last `size` bytes written to it, like Pebble's ring buffer for check output. */
class Tail {
  private buf = Buffer.alloc(0);
  constructor(private readonly size: number) {}
  write(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.buf.length > this.size) this.buf = this.buf.subarray(this.buf.length - this.size);
  }
  text(): string {
    return this.buf.toString('utf8');
  }
}

function execCheck(spec: ExecSpec, signal: AbortSignal): Promise<void> {
  let args: string[];
  try {
    args = shlexSplit(spec.command);
  } catch (e) {
    return Promise.reject(new CheckError(`cannot parse command: ${(e as Error).message}`));
  }
  if (args.length === 0) return Promise.reject(new CheckError('cannot parse command: empty command'));
  let uid: number | undefined;
  let gid: number | undefined;
  try {
    const id = normalizeUidGid({ userId: spec.userId, user: spec.user, groupId: spec.groupId, group: spec.group });
    // Only switch identity when it differs: setgroups() in libuv needs privileges even for our own ids.
    const current = id.uid === process.getuid?.() && id.gid === process.getgid?.();
    if (id.uid !== undefined && id.gid !== undefined && !current) {
      uid = id.uid;
      gid = id.gid;
    }
  } catch (e) {
    return Promise.reject(new CheckError((e as Error).message));
  }
  // Like services and exec, checks inherit the daemon's environment; the configured one wins.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, spec.environment);

  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const tail = new Tail(MAX_ERROR_BYTES);
    // detached: the command gets its own process group, so a timeout kills its children too.
    const child = spawn(args[0]!, args.slice(1), {
      env,
      cwd: spec.workingDir || undefined,
      uid,
      gid,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child.pid);
    child.stdout!.on('data', (c: Buffer) => tail.write(c));
    child.stderr!.on('data', (c: Buffer) => tail.write(c));
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      killGroup(child.pid);
      settle(() => reject(signal.reason));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', (e: Error) => {
      untrackChild(child.pid);
      settle(() => reject(new CheckError(e.message)));
    });
    child.once('exit', (code, sig) => {
      untrackChild(child.pid);
      const done = () =>
        settle(() => {
          if (code === 0) resolve();
          else reject(new CheckError(sig ? `signal: ${sig}` : `exit status ${code}`, lastLines(tail.text())));
        });
      // Output may still be in the pipes; wait for them, but not for grandchildren that keep them open.
      const grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        done();
      }, EXEC_WAIT_DELAY);
      child.once('close', () => {
        clearTimeout(grace);
        done();
      });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
