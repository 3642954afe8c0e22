#!/bin/sh
# Builds the sidecar's addon (build/Release/reaper.node: the orphan reaper and the socket's peer
# credentials); `npm run build` runs it first.
# Uses the node-gyp bundled with npm, so it adds no npm dependency.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/build/Release/reaper.node"

# `npm test` and `npm start` build every time: skip when the addon is newer than its sources.
if [ -f "$out" ] && [ "$out" -nt "$here/reaper.c" ] && [ "$out" -nt "$here/peercred.c" ] && [ "$out" -nt "$here/peercred.h" ] && [ "$out" -nt "$here/binding.gyp" ]; then
  exit 0
fi

# npm run-script points npm_config_node_gyp at npm's bundled node-gyp; run directly, find it beside npm.
if [ -n "${npm_config_node_gyp:-}" ]; then
  set -- node "$npm_config_node_gyp"
else
  npm_js=$(readlink -f "$(command -v npm)")
  set -- node "$(dirname "$npm_js")/../node_modules/node-gyp/bin/node-gyp.js"
fi

# Headers shipped with this node (official tarballs install them under <prefix>/include/node)
# avoid downloading them from nodejs.org, which CI cannot reach.
if [ -z "${npm_config_nodedir:-}" ]; then
  prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  if [ -f "$prefix/include/node/node_api.h" ]; then
    set -- "$@" --nodedir="$prefix"
  fi
fi

exec "$@" rebuild --directory="$here"
