import { AsyncLocalStorage } from 'node:async_hooks';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import * as k8s from '#client-node';
import { storeErrors, storeRequests } from './metrics.js';

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
  const auth = keepAliveAuth(kc); // one connection for every API group
  return {
    kc,
    core: apiClient(kc, auth, k8s.CoreV1Api),
    coordination: apiClient(kc, auth, k8s.CoordinationV1Api),
    namespace,
    mode,
  };
}

/**
 * The timeout store requests get in the current async context (see withStoreTimeout). A
 * frozen API server accepts the TCP connection and never answers: without a timeout a request
 * waits for ever, and so does the loop that made it.
 */
const storeTimeout = new AsyncLocalStorage<number>();

/**
 * Runs `fn` with every store request it makes (through a Kube from connect()) aborted after
 * `ms`; an aborted request rejects with an error isUnreachable() recognises. The innermost call wins.
 */
export function withStoreTimeout<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  return storeTimeout.run(ms, fn);
}

/**
 * Counts each call of the client's operations (readNamespacedConfigMap, replaceNamespacedLease...)
 * and its failures, for the agent's /metrics. One call is one request: the operations call their
 * own helpers on the unwrapped object.
 */
function counted<T extends object>(api: T): T {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || typeof prop !== 'string') return v;
      return (...args: unknown[]) => {
        storeRequests.inc({ operation: prop });
        const out: unknown = Reflect.apply(v, target, args);
        if (!(out instanceof Promise)) return out;
        return out.catch((e: unknown) => {
          storeErrors.inc({ operation: prop, reason: isUnreachable(e) ? 'unreachable' : String(statusCode(e) ?? 'error') });
          throw e;
        });
      };
    },
  });
}

/** kc.makeApiClient, plus the middleware that applies withStoreTimeout's timeout to each request. */
function apiClient<T extends object>(kc: k8s.KubeConfig, auth: k8s.SecurityAuthentication, Api: new (config: k8s.Configuration) => T): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  return counted(new Api(
    k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(cluster.server, {}),
      authMethods: { default: auth },
      promiseMiddleware: [
        {
          pre: async (ctx) => {
            const ms = storeTimeout.getStore();
            if (ms !== undefined) ctx.setSignal(AbortSignal.timeout(ms));
            return ctx;
          },
          post: async (r) => r,
        },
      ],
    }),
  ));
}

/**
 * The kubeconfig's authentication with connections kept open between requests. client-node
 * gives every request an https.Agent of its own, so each one opened a TCP connection and made
 * a full TLS handshake, on both sides: ~40% of the CPU the agents, the controller and the CLI
 * spent talking to the store (a 3-unit bootstrap makes ~400 requests). The token is still
 * applied per request (re-read, as client-go does, when it comes from a file); the agent is
 * replaced only when the TLS settings it was made from change.
 */
function keepAliveAuth(kc: k8s.KubeConfig): k8s.SecurityAuthentication {
  let shared: { agent: https.Agent; key: string } | undefined;
  // client-node reads the CA (and any client certificate) afresh for each request: compared by content.
  const tlsKey = (o: https.AgentOptions) =>
    JSON.stringify([o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized].map((v) => (Buffer.isBuffer(v) ? v.toString('base64') : v)));
  return {
    getName: () => 'kubeconfig, keep-alive',
    applySecurityAuthentication: async (ctx) => {
      await kc.applySecurityAuthentication(ctx);
      const made = ctx.getAgent();
      // A proxy agent (or plain http) is left alone: only the https.Agent case is shared.
      if (!(made instanceof https.Agent) || made.constructor !== https.Agent) return;
      const key = tlsKey(made.options);
      if (shared?.key !== key) {
        shared?.agent.destroy();
        // An idle socket is closed by us before the server would (its keep-alive timeout is 5 s):
        // a request never goes out on a socket the server is closing.
        shared = { agent: new https.Agent({ ...made.options, keepAlive: true, timeout: 4000 }), key };
      }
      ctx.setAgent(shared.agent);
    },
  };
}

/**
 * The store did not answer at all: a timeout (withStoreTimeout) or a connection error. Not an
 * HTTP error: a 409 or a 500 is an answer, so the store is reachable.
 */
export function isUnreachable(e: unknown): boolean {
  if (!(e instanceof Error) || e instanceof k8s.ApiException) return false;
  // client-node sends with node-fetch: AbortError when aborted, FetchError type 'system' for socket errors.
  return e.name === 'AbortError' || (e.name === 'FetchError' && (e as { type?: string }).type === 'system');
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
