// `#unixcrypt` (package.json "imports"): unixcrypt's sha512-crypt verification, bundled into
// dist/vendor/unixcrypt.js by vendor/build.mjs with a fix for passwords of 64, 128... bytes
// (see unixcryptBlockFix there). The sidecar loads it on its first basic-auth request; the agent to
// hash the password of the sidecars' `metrics` identity (agent/charm/postgresql/exporter.ts).
export { encrypt, verify } from 'unixcrypt';
