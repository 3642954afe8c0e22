/**
 * V8 flags for the sidecar daemon, which is PID 1 in every Postgres pod and must stay small.
 * It runs little JavaScript (file and exec bytes move through libuv and streams), so the
 * interpreter alone (--lite-mode: no optimizing compilers, lazy feedback vectors) is fast
 * enough and keeps ~15 MB of compiled code and heap out of RSS; a 1 MB semi-space stops the
 * young generation from growing to 16 MB on bursts of API requests.
 * The shebang of sidecar/cli.ts carries the same flags (a test keeps them in step).
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--lite-mode', '--max-semi-space-size=1'];
