// `#client-node` (package.json "imports"): the parts of @kubernetes/client-node that pgcharm uses.
// At run time the specifier resolves to dist/vendor/client-node.js, built from this file by
// `npm run build:vendor` (vendor/build.mjs): the values exported here are all that bundle
// holds, so a value imported from '#client-node' must be added here first (tsc says so); all the
// library's types remain available.
export {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  ServerConfiguration,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node';
export type * from '@kubernetes/client-node';
