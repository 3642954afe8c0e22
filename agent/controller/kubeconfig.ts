import fs from 'node:fs';
import path from 'node:path';
import { stringify } from '#yaml';
import { caFor } from './apiserver/ca-registry.js';

/**
 * A kubeconfig for the local controller: one cluster (with the server's self-signed
 * certificate as its CA), one user holding the bearer token, and a context with the
 * namespace, which is the current one. Written atomically with mode 0600: it holds the token.
 */
export interface KubeconfigOptions {
  /** The API server's URL, e.g. https://127.0.0.1:6443. */
  server: string;
  token: string;
  namespace: string;
  /** Name of the cluster, user and context entries. */
  name: string;
  /** PEM of the CA to trust (ApiServer.ca); defaults to that of the server at `server` started in this process. */
  ca?: string;
}

export function kubeconfigYaml(o: KubeconfigOptions): string {
  const ca = o.ca ?? caFor(o.server);
  if (o.server.startsWith('https:') && !ca) {
    throw new Error(`no CA certificate for ${o.server}: pass ca (the ApiServer's ca) to writeKubeconfig`);
  }
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: o.name, cluster: { server: o.server, ...(ca ? { 'certificate-authority-data': Buffer.from(ca).toString('base64') } : {}) } }],
    users: [{ name: o.name, user: { token: o.token } }],
    contexts: [{ name: o.name, context: { cluster: o.name, user: o.name, namespace: o.namespace } }],
    'current-context': o.name,
    preferences: {},
  });
}

export function writeKubeconfig(file: string, o: KubeconfigOptions): void {
  const text = kubeconfigYaml(o);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, 0o600); // in case a stale temp file had looser bits
  fs.renameSync(tmp, file);
}
