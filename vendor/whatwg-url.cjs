// Stands in for whatwg-url in the #client-node bundle (vendor/build.mjs): node-fetch v2
// reads only its URL class, and only when Node has none.
module.exports = { URL: globalThis.URL };
