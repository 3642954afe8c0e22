// `#prom-client` (package.json "imports"): the parts of prom-client the agent's GET /metrics uses,
// bundled into dist/vendor/prom-client.js by vendor/build.mjs.
export { Counter, Gauge, Histogram, Registry } from 'prom-client';
