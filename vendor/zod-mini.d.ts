// `#zod-mini` (package.json "imports"): the functions of zod/mini that the sidecar's layer parser
// uses, bundled into dist/vendor/zod-mini.js by vendor/build.mjs, with zod's English messages.
// zod/mini is tree-shakable where zod's `z` is not: the sidecar, PID 1 of every Postgres pod,
// loads ~0.4 MB of RSS with this instead of ~3.4 MB with `#zod`. Same core, same issues.
export { array, boolean, config, enum, int, maximum, minimum, NEVER, nullable, nullish, number, optional, pipe, record, safeParse, strictObject, string, transform, union } from 'zod/mini';
export type { infer, ZodMiniType } from 'zod/mini';
export { default as en } from 'zod/v4/locales/en.js';
export type { $ZodIssue, $ZodRawIssue } from 'zod/v4/core';
