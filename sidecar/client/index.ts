export * from './client.js';
export * from './errors.js';
export type { ExecOptions, ExecResult, ExecProcess } from './exec.js';
export type { ListFilesOptions, MakeDirOptions, PushOptions } from './files.js';
export type { LogsOptions } from './logs.js';
export type { Endpoint } from './transport.js';
export type * from './types.js';
