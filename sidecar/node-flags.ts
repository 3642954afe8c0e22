/**
 * V8 flags for the sidecar daemon, which is PID 1 in every Postgres pod and must stay small.
 * It runs little JavaScript (file and exec bytes move through libuv and streams), so the
 * interpreter alone (--lite-mode: no optimizing compilers, lazy feedback vectors) is fast
 * enough and keeps ~15 MB of compiled code and heap out of RSS; a 1 MB semi-space stops the
 * young generation from growing to 16 MB on bursts of API requests; one V8 worker thread and GC
 * on the main thread (as the agent): 8 threads instead of 11, ~0.5 MB.
 * What is left (an idle unit's sidecar, 51.5 MB RSS) is mostly Node itself: an empty `node` with
 * these flags is 39.6 MB, 33 MB of it pages of the node binary shared with every other node
 * process (the sidecar's own private memory is ~12.5 MB; PSS ~19 MB).
 * The shebang of sidecar/cli.ts carries the same flags (a test keeps them in step).
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--lite-mode', '--max-semi-space-size=1', '--v8-pool-size=1', '--single-threaded-gc'];
