// `#ws` (package.json "imports"): ws's server side, bundled into dist/vendor/ws.js by vendor/build.mjs,
// for the sidecar's exec websockets: one file costs ~1.3 MB less RSS and ~25 ms less CPU to load
// than ws's modules. Elsewhere (the client, tests) ws is imported as 'ws'; no process loads both.
export { WebSocketServer } from 'ws';
export type { RawData, WebSocket } from 'ws';
