// `#yaml` (package.json "imports"): the parts of yaml that pgcharm uses, bundled into
// dist/vendor/yaml.js by vendor/build.mjs; all its types stay available.
export { isMap, isScalar, isSeq, LineCounter, parse, parseDocument, stringify } from 'yaml';
export type * from 'yaml';
