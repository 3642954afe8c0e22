// Types of `#client-node` (package.json "imports"): @kubernetes/client-node itself. At run time the
// specifier resolves to dist/vendor/client-node.js, the same library bundled into one file by
// `npm run build:vendor`: loading its ~970 modules one by one took 0.84 s per process (0.24 s bundled),
// paid by every agent and every `pgcharm` command.
export * from '@kubernetes/client-node';
