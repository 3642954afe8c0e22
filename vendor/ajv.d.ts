// `#ajv` (package.json "imports"): ajv, bundled into dist/vendor/ajv.js by vendor/build.mjs;
// all its types stay available.
export { Ajv } from 'ajv';
export type * from 'ajv';
