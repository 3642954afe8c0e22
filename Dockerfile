# syntax=docker/dockerfile:1
# The charm (agent) image: `pgcharm agent` for one unit, the `charm` container of each pod.
#   docker build -t pgcharm/agent:latest .
# The workload images (sidecar + Postgres) are built from images/postgresql/<major>/Dockerfile.
# No secret is baked in: in a pod the agent authenticates with its service account token,
# mounted at run time, and the passwords it manages live in the <app>-passwords Secret.

# ---- build: compile pgcharm (the same stage as in images/postgresql/*/Dockerfile) ----
FROM node:20-bookworm AS build
WORKDIR /src
# node-gyp takes the headers of this very Node instead of downloading them.
ENV npm_config_nodedir=/usr/local
# Dependencies first, so a source change does not reinstall them; no install scripts yet,
# as the package's `prepare` would build before the sources are here.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY . .
# The install scripts skipped above (node-pty compiles its addon; esbuild checks its binary),
# then the build: the sidecar's reaper addon, the client-node bundle, tsc into dist/.
RUN npm rebuild node-pty esbuild && npm run build
# Run-time dependencies only. Also gone: node-pty's macOS/Windows binaries, and
# @kubernetes/client-node, which the build bundled into dist/vendor.
RUN npm prune --omit=dev && rm -rf node_modules/node-pty/prebuilds node_modules/@kubernetes/client-node

# ---- the image ----
# node:20-bookworm-slim rather than distroless: the same Debian and Node as the build stage
# (node-pty's addon is compiled against them), and a shell for `kubectl exec` when debugging.
FROM node:20-bookworm-slim

# A numeric non-root user (10001, clear of Debian's system and login ranges) with a passwd
# entry: Node's os.homedir() needs one when $HOME is not set. It owns nothing in the image.
RUN groupadd --gid 10001 pgcharm \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pgcharm

WORKDIR /opt/pgcharm
# package.json: "type": "module" and the #client-node, #zod, #yaml, #ajv imports (-> dist/vendor).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
# The agent and the CLI; the sidecar's typed client, which the agent talks to the workload with;
# the bundles of client-node, zod, yaml and ajv (vendor/build.mjs).
COPY --from=build /src/dist/agent ./dist/agent
COPY --from=build /src/dist/sidecar ./dist/sidecar
COPY --from=build /src/dist/vendor ./dist/vendor
# The charm's metadata, read at start-up (containers, relations, config options, actions).
COPY charm.yaml ./charm.yaml
# Smoke test: the CLI loads with all its imports (the #client-node bundle through the import map).
RUN node dist/agent/cli.js --help >/dev/null

# The sidecar shares its socket with this group (the manifests set PEBBLE_SOCKET_GROUP=10001 in
# the workload container), so the agent never needs root.
USER 10001:10001

# `pgcharm agent`; the pod adds the unit's options (agent/manifests/render.ts renders them):
#   --unit $(POD_NAME)          downward API metadata.name, e.g. postgresql-0 = unit postgresql/0
#   --namespace $(POD_NAMESPACE) downward API metadata.namespace
#   --socket /var/lib/pebble/default/.pebble.socket   the workload's sidecar, in the shared emptyDir
#   --charm /opt/pgcharm/charm.yaml  --charm-module /opt/pgcharm/dist/agent/charm/postgresql/charm.js
# No --kubeconfig: the agent then uses the in-cluster config (the service account token and CA
# under /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT).
# Node and V8 flags as in agent/node-flags.ts (a small young generation, one V8 worker thread, no
# optimizing or baseline compiler): they keep the agent's RSS down.
ENTRYPOINT ["node", "--max-semi-space-size=1", "--v8-pool-size=1", "--single-threaded-gc", "--no-opt", "--no-sparkplug", "/opt/pgcharm/dist/agent/cli.js", "agent"]
