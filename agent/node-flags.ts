/**
 * Node and V8 flags of dist/agent/cli.js: a unit's agent and the local controller, which run for
 * the model's lifetime (the CLI's short commands get them too, through the shebang). Measured on
 * an idle 3-unit local deployment, Node 20 (RSS per process, all flags together ~15 MB less):
 * - a 1 MB semi-space: a primary's agent allocates ~0.5 MB/s (lease renewals every 0.4 s), and
 *   V8 grew its young generation to 2 x 16 MB for that; the scavenges it costs are sub-millisecond;
 * - one V8 worker thread instead of four, and GC on the main thread: fewer threads, stacks
 *   and malloc arenas (~5 MB); with heaps of ~25 MB the pauses stay in the low milliseconds;
 * - no optimizing compiler (TurboFan) and no baseline compiler (Sparkplug): their code pages,
 *   compiled code and compile zones (TurboFan ~6 MB; Sparkplug's baseline code ~3.5 MB per agent,
 *   ~2 MB in the controller); the interpreter is fast enough for what these processes run: idle
 *   CPU did not measurably change (1.9 % of one core for the HA processes of a 3-unit model).
 *   --lite-mode (interpreter only, as the sidecar runs) took ~8 MB more but doubled the agents'
 *   CPU and, on a loaded machine, made them miss lease renewals.
 * The shebang of agent/cli.ts and the charm image's ENTRYPOINT (Dockerfile) carry the same
 * flags; a test keeps them in step.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--v8-pool-size=1', '--single-threaded-gc', '--no-opt', '--no-sparkplug'];
