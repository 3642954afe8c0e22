// `#pg` (package.json "imports"): node-postgres, bundled into dist/vendor/pg.js by vendor/build.mjs,
// for the agent (the PostgreSQL charm and the dashboard's source): one file costs ~1.3 MB less RSS
// and ~13 ms less CPU to load than pg's ~30 modules. Tests, the bench and the sample application
// import 'pg' itself; no process loads both.
import pg from 'pg';
export default pg;
