import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '#client-node';
import { pino } from 'pino';
import { generateToken } from '../../../agent/controller/apiserver/auth.js';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../../agent/controller/apiserver/server.js';
import { writeKubeconfig } from '../../../agent/controller/kubeconfig.js';

/** A real API server in this process, on a free port, with its store in a temp dir. */
export interface TestServer {
  server: ApiServer;
  dir: string;
  token: string;
  kubeconfig: string;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
  /** Closes the server and removes the temp dir. */
  cleanup(): Promise<void>;
}

export const NS = 'pgcharm-test';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `pgcharm-${prefix}-`));
}

export function clients(kubeconfig: string): { kc: k8s.KubeConfig; core: k8s.CoreV1Api; coordination: k8s.CoordinationV1Api } {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api), coordination: kc.makeApiClient(k8s.CoordinationV1Api) };
}

export async function startTestServer(opts: Partial<ApiServerOptions> = {}): Promise<TestServer> {
  const dir = tempDir('apiserver');
  const token = generateToken();
  const log = pino({ level: process.env['PGCHARM_TEST_LOG'] ?? 'silent' }); // PGCHARM_TEST_LOG=debug shows every request
  let server: ApiServer;
  try {
    server = await startApiServer({ dir: path.join(dir, 'store'), token, log, ...opts });
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const kubeconfig = path.join(dir, 'kubeconfig');
  writeKubeconfig(kubeconfig, { server: server.url, token, namespace: NS, name: 'test', ca: server.ca });
  return {
    server,
    dir,
    token,
    kubeconfig,
    ...clients(kubeconfig),
    async cleanup() {
      try {
        await server.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// Status bodies and raw answers are arbitrary JSON picked apart by each test; typing them would add nothing.
type Json = any;

/** The HTTP status of a failed client-node call, and its Status body. */
export async function failure(p: Promise<unknown>): Promise<{ code: number; body: Json }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof k8s.ApiException) return { code: e.code, body: typeof e.body === 'string' ? JSON.parse(e.body) : e.body };
    throw e;
  }
  throw new Error('the call succeeded but should have failed');
}

/** A raw HTTPS request to the server (for what client-node cannot express). */
export async function raw(
  t: Pick<TestServer, 'server' | 'token'>,
  method: string,
  urlPath: string,
  opts: { body?: unknown; contentType?: string; accept?: string; token?: string | null } = {},
): Promise<{ status: number; headers: Headers; text: string; json: Json }> {
  const url = new URL(urlPath, t.server.url);
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== null) headers['Authorization'] = `Bearer ${opts.token ?? t.token}`;
    if (body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
    if (opts.accept) headers['Accept'] = opts.accept;
    const req = https.request(url, { method, headers, ca: t.server.ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: res.statusCode ?? 0, headers: h, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
