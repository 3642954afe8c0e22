// `#zod` (package.json "imports"): zod, bundled into dist/vendor/zod.js by vendor/build.mjs,
// English messages only.
export { z } from 'zod';
export type * from 'zod';
