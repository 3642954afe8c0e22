import { existsSync, readFileSync } from 'node:fs';
import * as k8s from '#client-node';

/** The API clients an agent (or the CLI) uses, from one kubeconfig: local controller or cluster alike. */
export interface Kube {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
  namespace: string;
  /** Where the credentials came from: a kubeconfig file, or the pod's service account. */
  mode: 'kubeconfig' | 'in-cluster';
}

/** Where Kubernetes mounts a pod's service account (token, ca.crt, namespace). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * An explicit kubeconfig wins; in a pod (KUBERNETES_SERVICE_HOST set and a service account
 * mounted) the service account's token, CA and namespace; else $KUBECONFIG or ~/.kube/config.
 * `inClusterRoot` (env PGCHARM_IN_CLUSTER_ROOT) prefixes the service account path, to run the
 * in-cluster path outside a pod.
 */
export function connect(opts: { kubeconfig?: string; namespace?: string; inClusterRoot?: string }): Kube {
  const kc = new k8s.KubeConfig();
  const root = opts.inClusterRoot ?? process.env['PGCHARM_IN_CLUSTER_ROOT'] ?? '';
  const sa = `${root}${SERVICE_ACCOUNT_DIR}`;
  let mode: Kube['mode'] = 'kubeconfig';
  let podNamespace: string | undefined;
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else if (process.env['KUBERNETES_SERVICE_HOST'] && existsSync(`${sa}/token`)) {
    kc.loadFromCluster(root);
    mode = 'in-cluster';
    podNamespace = existsSync(`${sa}/namespace`) ? readFileSync(`${sa}/namespace`, 'utf8').trim() : undefined;
  } else kc.loadFromDefault();
  const namespace = opts.namespace ?? podNamespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    namespace,
    mode,
  };
}

/** Request options that make a client-node patch call send a JSON merge patch. */
export const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export function statusCode(e: unknown): number | undefined {
  return e instanceof k8s.ApiException ? e.code : undefined;
}

export const isNotFound = (e: unknown): boolean => statusCode(e) === 404;
export const isConflict = (e: unknown): boolean => statusCode(e) === 409;

/** The server's message from a Kubernetes Status body, else the error's own. */
export function apiMessage(e: unknown): string {
  if (e instanceof k8s.ApiException) {
    const body: unknown = typeof e.body === 'string' ? safeJson(e.body) : e.body;
    const msg = (body as { message?: unknown } | undefined)?.message;
    return typeof msg === 'string' ? `${msg} (HTTP ${e.code})` : `HTTP ${e.code}`;
  }
  return e instanceof Error ? e.message : String(e);
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
