import { quote } from './json.js';

/**
 * Kubernetes' error model: every failure is a meta/v1 Status with an HTTP code, a
 * machine-readable reason and, for validation, one cause per offending field. Clients
 * (client-go, client-node, kubectl) key their behaviour on `code` and `reason`.
 */

export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Gone'
  | 'Expired'
  | 'RequestEntityTooLarge'
  | 'UnsupportedMediaType'
  | 'Invalid'
  | 'ServiceUnavailable'
  | 'InternalError'
  | 'Timeout';

export interface StatusCause {
  reason: string;
  message: string;
  field: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
}

/** The Status body as it goes on the wire. */
export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: StatusReason;
  details?: StatusDetails;
  code: number;
}

export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: StatusReason,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): Status {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

export function successStatus(details?: StatusDetails): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', ...(details ? { details } : {}), code: 200 };
}

/** Which resource an error is about, in the words Kubernetes uses (`configmaps`, `leases.coordination.k8s.io`). */
export interface ResourceId {
  group: string;
  plural: string;
}

const qualified = (r: ResourceId) => (r.group ? `${r.plural}.${r.group}` : r.plural);
const detailsOf = (r: ResourceId, name: string): StatusDetails => ({ name, ...(r.group ? { group: r.group } : {}), kind: r.plural });

export const badRequest = (message: string) => new StatusError(400, 'BadRequest', message);
export const unauthorized = () => new StatusError(401, 'Unauthorized', 'Unauthorized');
export const methodNotAllowed = () => new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
export const notAcceptable = (accept: string) =>
  new StatusError(406, 'NotAcceptable', `only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (asked for ${accept})`);
export const unsupportedMediaType = (type: string, accepted: string[]) =>
  new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format (${type || 'none'}) - accepted media types include: ${accepted.join(', ')}`);
export const tooLarge = (limit: number) => new StatusError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`);
export const pathNotFound = () => new StatusError(404, 'NotFound', 'the server could not find the requested resource', {});
export const internalError = (message: string) => new StatusError(500, 'InternalError', `Internal error occurred: ${message}`);
export const unavailable = (message: string) => new StatusError(503, 'ServiceUnavailable', message);

export const notFound = (r: ResourceId, name: string) => new StatusError(404, 'NotFound', `${qualified(r)} ${quote(name)} not found`, detailsOf(r, name));
export const alreadyExists = (r: ResourceId, name: string) =>
  new StatusError(409, 'AlreadyExists', `${qualified(r)} ${quote(name)} already exists`, detailsOf(r, name));
export const conflict = (r: ResourceId, name: string, why: string) =>
  new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r)} ${quote(name)}: ${why}`, detailsOf(r, name));
export const MODIFIED = 'the object has been modified; please apply your changes to the latest version and try again';
export const expired = (message: string) => new StatusError(410, 'Expired', message);

/** One field's problem, as apimachinery's field.Error. */
export interface FieldError {
  type: FieldErrorType;
  field: string;
  /** The whole message after "field: ", e.g. `Invalid value: "Foo": must be lower case`. */
  message: string;
}

export type FieldErrorType = 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueTooLong' | 'FieldValueForbidden' | 'FieldValueNotSupported' | 'FieldValueDuplicate' | 'FieldValueTypeInvalid';

export const fieldInvalid = (field: string, value: unknown, detail: string): FieldError => ({
  type: 'FieldValueInvalid',
  field,
  message: `Invalid value: ${quote(value)}: ${detail}`,
});
export const fieldTypeInvalid = (field: string, value: unknown, detail: string): FieldError => ({
  type: 'FieldValueTypeInvalid',
  field,
  message: `Invalid value: ${quote(value)}: ${detail}`,
});
export const fieldRequired = (field: string, detail = ''): FieldError => ({
  type: 'FieldValueRequired',
  field,
  message: detail ? `Required value: ${detail}` : 'Required value',
});
export const fieldTooLong = (field: string, max: number): FieldError => ({
  type: 'FieldValueTooLong',
  field,
  message: `Too long: must have at most ${max} bytes`,
});
export const fieldForbidden = (field: string, detail: string): FieldError => ({ type: 'FieldValueForbidden', field, message: `Forbidden: ${detail}` });
export const fieldNotSupported = (field: string, value: unknown, supported: string[]): FieldError => ({
  type: 'FieldValueNotSupported',
  field,
  message: `Unsupported value: ${quote(value)}: supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`,
});
export const fieldDuplicate = (field: string, value: unknown): FieldError => ({ type: 'FieldValueDuplicate', field, message: `Duplicate value: ${quote(value)}` });

/** 422 Invalid: `ConfigMap "x" is invalid: [a: ..., b: ...]` with one cause per field error. */
export function invalid(kind: string, group: string, name: string, errs: FieldError[]): StatusError {
  const parts = errs.map((e) => `${e.field || '<object>'}: ${e.message}`);
  const summary = parts.length === 1 ? parts[0]! : `[${parts.join(', ')}]`;
  return new StatusError(422, 'Invalid', `${kind} ${quote(name)} is invalid: ${summary}`, {
    name,
    ...(group ? { group } : {}),
    kind,
    causes: errs.map((e) => ({ reason: e.type, message: e.message, field: e.field })),
  });
}
