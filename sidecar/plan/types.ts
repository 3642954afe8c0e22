/**
 * Pebble's layer and plan model. A plan is a pure value: layers are parsed, validated
 * and combined without touching a process (see layer.ts and combine.ts).
 */
export type Override = 'merge' | 'replace';
export type Startup = 'enabled' | 'disabled';
export type ServiceAction = 'restart' | 'shutdown' | 'failure-shutdown' | 'success-shutdown' | 'ignore';
export type CheckLevel = 'alive' | 'ready';

/** Durations are milliseconds; `undefined` means "not set in this layer" so merges can tell. */
export interface Service {
  name: string;
  summary?: string;
  description?: string;
  startup?: Startup;
  override?: Override;
  command?: string;
  after: string[];
  before: string[];
  requires: string[];
  environment: Record<string, string>;
  'user-id'?: number;
  user?: string;
  'group-id'?: number;
  group?: string;
  'working-dir'?: string;
  'on-success'?: ServiceAction;
  'on-failure'?: ServiceAction;
  'on-check-failure': Record<string, ServiceAction>;
  'backoff-delay'?: number;
  'backoff-factor'?: number;
  'backoff-limit'?: number;
  'kill-delay'?: number;
}

export interface HttpCheck {
  url?: string;
  headers: Record<string, string>;
}

export interface TcpCheck {
  port?: number;
  host?: string;
}

export interface ExecCheck {
  command?: string;
  'service-context'?: string;
  environment: Record<string, string>;
  'user-id'?: number;
  user?: string;
  'group-id'?: number;
  group?: string;
  'working-dir'?: string;
}

export interface Check {
  name: string;
  override?: Override;
  level?: CheckLevel;
  startup?: Startup;
  period?: number;
  timeout?: number;
  threshold?: number;
  http?: HttpCheck;
  tcp?: TcpCheck;
  exec?: ExecCheck;
}

export type LogTargetType = 'loki' | 'syslog' | 'opentelemetry';

export interface LogTarget {
  name: string;
  override?: Override;
  type?: LogTargetType;
  location?: string;
  services: string[];
  labels: Record<string, string>;
}

export interface Layer {
  order: number;
  label: string;
  summary?: string;
  description?: string;
  services: Record<string, Service>;
  checks: Record<string, Check>;
  'log-targets': Record<string, LogTarget>;
}

/** The combined plan: every service/check has its defaults filled in (see combine.ts). */
export interface Plan {
  layers: Layer[];
  services: Record<string, Service>;
  checks: Record<string, Check>;
  'log-targets': Record<string, LogTarget>;
}

export const DEFAULTS = {
  backoffDelay: 500,
  backoffFactor: 2,
  backoffLimit: 30_000,
  killDelay: 5_000,
  checkPeriod: 10_000,
  checkTimeout: 3_000,
  checkThreshold: 3,
} as const;

/** A layer or plan problem; the message names the layer, the key and the reason. */
export class PlanError extends Error {}

/** The parts of a service that an exec (or exec check) naming it as `service-context` inherits. */
export interface ServiceContext {
  environment: Record<string, string>;
  userId?: number;
  user?: string;
  groupId?: number;
  group?: string;
  workingDir?: string;
}
