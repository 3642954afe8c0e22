/**
 * Names of units and of the relation-store objects, shared by the agent, the controller and
 * the CLI. Units are `<app>/<n>` as in Juju; their pods and bags use `<app>-<n>`.
 */

export interface UnitName {
  app: string;
  index: number;
}

const APP = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;

/** Parses `postgresql/1` (or the pod form `postgresql-1`) into its parts. */
export function parseUnit(s: string): UnitName {
  const m = /^(.+)[/-](\d+)$/.exec(s);
  if (!m || !APP.test(m[1]!)) {
    throw new Error(`invalid unit name ${JSON.stringify(s)}: expected <application>/<number>, e.g. postgresql/0`);
  }
  return { app: m[1]!, index: Number(m[2]) };
}

export function validAppName(app: string): boolean {
  return APP.test(app);
}

/** What validAppName accepts, for error messages (object names are `<app>-...`, so it is shorter than a DNS label). */
export const APP_NAME_RULE = "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit, at most 40 characters";

export const unitName = (u: UnitName): string => `${u.app}/${u.index}`;
export const podName = (u: UnitName): string => `${u.app}-${u.index}`;

/** Object names in the store for application `app` (see DESIGN.md, "The relation store"). */
export const objects = {
  leaderLease: (app: string) => `${app}-leader`,
  primaryLease: (app: string) => `${app}-primary`,
  appBag: (app: string) => `${app}-app`,
  unitBag: (u: UnitName) => `${u.app}-unit-${u.index}`,
  config: (app: string) => `${app}-config`,
  /** Secret: values of secret config options (the config ConfigMap holds references to them). */
  configSecrets: (app: string) => `${app}-config-secrets`,
  charm: (app: string) => `${app}-charm`,
  passwords: (app: string) => `${app}-passwords`,
  /** The S3 repository's access and secret keys (set-s3-credentials). */
  s3Credentials: (app: string) => `${app}-s3-credentials`,
  /** The sidecars' `metrics` identity (basic auth for Prometheus): keys username and password. */
  metricsAuth: (app: string) => `${app}-metrics-auth`,
  operations: (app: string) => `${app}-operations`,
  action: (app: string, id: number) => `${app}-action-${id}`,
  /** Secret: a sensitive action's results, until the caller read (and deleted) them. */
  actionResults: (app: string, id: number) => `${app}-action-${id}-results`,
  /** An action's write-only params (passwords, keys): never in the action's ConfigMap. */
  actionParams: (app: string, id: number) => `${app}-action-${id}-params`,
};

/** Labels every pgcharm object carries, so one selector finds an application's objects. */
export const LABELS = {
  app: 'app.kubernetes.io/name',
  managedBy: 'app.kubernetes.io/managed-by',
  /** What an object is: app-bag, unit-bag, config, charm, action, operations; Secrets: config-secrets, action-results. */
  kind: 'pgcharm.io/kind',
  /** The pod name of the unit an object belongs to (unit bags, actions). */
  unit: 'pgcharm.io/unit',
} as const;

/** Annotations the runtime keeps beside the charm's data (charms never see these as bag keys). */
export const ANNOTATIONS = {
  workloadStatus: 'pgcharm.io/workload-status',
  workloadMessage: 'pgcharm.io/workload-message',
  agentStatus: 'pgcharm.io/agent-status',
  agentMessage: 'pgcharm.io/agent-message',
  appliedConfig: 'pgcharm.io/applied-config',
  appliedConfigHash: 'pgcharm.io/applied-config-hash',
  installed: 'pgcharm.io/installed',
  /** Peers whose relation-joined ran, so a restarted agent neither re-joins nor misses a departure. */
  peers: 'pgcharm.io/peers',
  deferred: 'pgcharm.io/deferred',
  /** Set on a pod by remove-unit: the unit runs departed/stop/remove, then it goes away. */
  dying: 'pgcharm.io/dying',
  /** Set on a unit bag once its remove hook ran: the kubelet may delete the unit. */
  removed: 'pgcharm.io/removed',
  updated: 'pgcharm.io/updated',
} as const;
