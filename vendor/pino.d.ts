// `#pino` (package.json "imports"): pino, bundled into dist/vendor/pino.js by vendor/build.mjs, for
// the sidecar daemon: its ~20 modules as one file cost ~0.9 MB less RSS and ~15 ms less start-up.
// Elsewhere (agent, tests) pino is imported as 'pino'; no process loads both.
export { pino } from 'pino';
export type { Logger } from 'pino';
