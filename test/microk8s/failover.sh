#!/usr/bin/env bash
# Unplanned failover on microk8s: deploy 3 units, write through the <app>-primary Service,
# force-delete the primary's pod, and report how long writes stopped and whether any
# acknowledged write was lost. Cleans up its namespace at the end (KEEP=1 keeps it).
#
#   test/microk8s/failover.sh            # from anywhere; needs microk8s, docker (or podman), node 20
#
# Environment: NS (namespace, default pgcharm-failover), PG_MAJOR (14|15|16, default charm.yaml's
# default), KEEP=1, TIMEOUT (seconds to wait for the units, default 900).
# Runs on a single-node microk8s: the images are imported into this node's containerd only.
set -euo pipefail

if ! command -v microk8s >/dev/null 2>&1; then
  echo "microk8s not found: this script runs on a machine with microk8s (snap install microk8s --classic); nothing to do here"
  exit 0
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NS=${NS:-pgcharm-failover}
TIMEOUT=${TIMEOUT:-900}
APP=$(awk '$1 == "name:" { print $2; exit }' "$root/charm.yaml")
AGENT_IMAGE=pgcharm/agent:latest
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

kubectl() { microk8s kubectl "$@"; }
k() { microk8s kubectl -n "$NS" "$@"; }
say() { printf '\n== %s\n' "$*"; }
now_ms() { date +%s%3N; }

# Polls "$@" (quietly) every second until it succeeds; fails after $1 seconds with $2 as the reason.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= end)); then
      echo "timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 1
  done
}

cleanup() {
  local rc=$?
  if ((rc != 0)); then
    echo "failed (exit $rc); state of $NS:" >&2
    k get pods -o wide --show-labels >&2 || true
    k logs "statefulset/$APP" -c charm --tail=30 >&2 || true
  fi
  if [[ ${KEEP:-} == 1 ]]; then
    echo "KEEP=1: namespace $NS left as it is (microk8s kubectl delete namespace $NS removes it)"
  else
    say "cleaning up namespace $NS"
    kubectl delete namespace "$NS" --ignore-not-found --wait=false || true
  fi
  rm -rf "$tmp"
}

# --- prerequisites ----------------------------------------------------------------------------
say "microk8s: waiting until ready; dns and hostpath-storage (for the data PVCs) enabled"
microk8s status --wait-ready >/dev/null
microk8s enable dns >/dev/null
microk8s enable hostpath-storage >/dev/null 2>&1 || microk8s enable storage >/dev/null # its name before 1.24

# microk8s brings containerd but no image builder: build with docker or podman, then import
# the saved tarball into microk8s's containerd (k8s.io namespace), where the kubelet finds it.
# (buildah works too: `buildah bud`, then `buildah push IMAGE docker-archive:FILE`.)
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  builder=docker
elif command -v podman >/dev/null 2>&1; then
  builder=podman
else
  echo "no image builder: install docker (or podman) to build the images" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1; then
  echo "node 20 is needed to render the manifests (pgcharm manifests)" >&2
  exit 1
fi
if ! node "$root/dist/agent/cli.js" manifests --help >/dev/null 2>&1; then
  say "building pgcharm (npm ci && npm run build): dist/ is missing or has no manifests command"
  (cd "$root" && npm ci && npm run build)
fi

# --- images -------------------------------------------------------------------------------
major=${PG_MAJOR:-$(awk '$1 == "postgresql-major:" { f = 1 } f && $1 == "default:" { print $2; exit }' "$root/charm.yaml")}
WORKLOAD_IMAGE=pgcharm/postgresql:$major
build_and_import() {
  local image=$1 dockerfile=$2
  say "building $image ($builder)"
  "$builder" build -f "$root/$dockerfile" -t "$image" "$root"
  "$builder" save -o "$tmp/image.tar" "$image"
  microk8s ctr image import "$tmp/image.tar" >/dev/null
  rm -f "$tmp/image.tar"
}
build_and_import "$AGENT_IMAGE" Dockerfile
build_and_import "$WORKLOAD_IMAGE" "images/postgresql/$major/Dockerfile"

# --- deploy -------------------------------------------------------------------------------
if kubectl get namespace "$NS" >/dev/null 2>&1; then
  say "deleting what a previous run left in $NS"
  kubectl delete namespace "$NS" --wait=true --timeout=300s
fi
trap cleanup EXIT
kubectl create namespace "$NS"
say "applying the manifests (pgcharm manifests --units 3 --namespace $NS)"
render=(manifests --units 3 --namespace "$NS" --charm "$root/charm.yaml")
if [[ -n ${PG_MAJOR:-} ]]; then render+=(--config "postgresql-major=$PG_MAJOR"); fi
node "$root/dist/agent/cli.js" "${render[@]}" | kubectl apply -f -

say "waiting for 3 ready units and a primary (up to ${TIMEOUT}s)"
k rollout status "statefulset/$APP" --timeout="${TIMEOUT}s"
one_primary() { [[ $(k get pods -l pgcharm.io/role=primary -o name | wc -l) -eq 1 ]]; }
primary_has_endpoint() { k get endpoints "$APP-primary" -o jsonpath='{.subsets[0].addresses[0].ip}' | grep -q .; }
wait_for "$TIMEOUT" "one pod labelled pgcharm.io/role=primary" one_primary
wait_for 120 "an endpoint behind Service $APP-primary" primary_has_endpoint
k get pods -L pgcharm.io/role

# --- the writer ---------------------------------------------------------------------------
# A pod from the agent image (it has node and the pg client) that inserts a row every 10 ms
# through the primary Service, as the operator, and prints `ack ID MS` for every acknowledged
# insert (MS: its clock in ms, which is this machine's on single-node microk8s) and `fail ID MS`
# for every failed one. Each attempt gets a new id, so a failed-but-committed insert never
# collides with a later one. Run with `check`, it reads acknowledged ids on stdin and prints
# how many of them the current primary lacks.
cat >"$tmp/writer.js" <<'JS'
const pg = require('pg');
const fs = require('fs');
const table = 'failover_writes';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function connect() {
  const c = new pg.Client({ host: process.env.PGHOST, port: 5432, user: 'operator', password: process.env.PGPASSWORD, database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 2000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    // An old primary that came back read-only must not count as the primary.
    if ((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r) throw new Error('read-only server');
    return c;
  } catch (e) {
    await c.end().catch(() => undefined);
    throw e;
  }
}
async function write() {
  let client;
  for (;;) {
    try {
      client = await connect();
      await client.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY)`);
      break;
    } catch (e) {
      console.log(`wait ${Date.now()} ${e.message}`);
      await sleep(500);
    }
  }
  console.log(`ready ${Date.now()}`);
  for (let id = 1; !fs.existsSync('/tmp/stop'); id++) {
    const started = Date.now();
    try {
      client ??= await connect();
      await client.query(`INSERT INTO ${table} (id) VALUES ($1)`, [id]);
      console.log(`ack ${id} ${Date.now()}`);
    } catch (e) {
      console.log(`fail ${id} ${Date.now()} ${String(e.message).replace(/\s+/g, ' ')}`);
      client?.end().catch(() => undefined);
      client = undefined;
    }
    await sleep(Math.max(0, 10 - (Date.now() - started)));
  }
  console.log(`stopped ${Date.now()}`);
  setInterval(() => undefined, 1 << 30); // stay up for `check`
}
async function check() {
  const acked = fs.readFileSync(0, 'utf8').split('\n').filter(Boolean).map(Number);
  const c = await connect();
  const have = new Set((await c.query(`SELECT id FROM ${table}`)).rows.map((r) => Number(r.id)));
  const missing = acked.filter((id) => !have.has(id));
  console.log(`acknowledged ${acked.length} missing ${missing.length}${missing.length ? ` (first: ${missing.slice(0, 10).join(' ')})` : ''}`);
  await c.end();
}
(process.argv[2] === 'check' ? check() : write()).catch((e) => {
  console.error(e);
  process.exit(1);
});
JS
k create configmap failover-writer --from-file=writer.js="$tmp/writer.js" >/dev/null
k apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: failover-writer
spec:
  restartPolicy: Never
  containers:
    - name: writer
      image: $AGENT_IMAGE
      imagePullPolicy: IfNotPresent
      command: [node, /writer/writer.js]
      env:
        - { name: NODE_PATH, value: /opt/pgcharm/node_modules }
        - { name: PGHOST, value: $APP-primary }
        - name: PGPASSWORD
          valueFrom: { secretKeyRef: { name: $APP-passwords, key: operator } }
      volumeMounts:
        - { name: writer, mountPath: /writer }
  volumes:
    - name: writer
      configMap: { name: failover-writer }
EOF
writer_ready() { k logs failover-writer 2>/dev/null | grep -q '^ready '; }
wait_for 180 "the writer to connect to the primary" writer_ready
sleep 5 # a few hundred writes before the fault

# --- the fault ------------------------------------------------------------------------------
old_primary=$(k get pods -l pgcharm.io/role=primary -o jsonpath='{.items[0].metadata.name}')
say "force-deleting the primary's pod $old_primary"
deleted_at=$(now_ms)
k delete pod -l pgcharm.io/role=primary --grace-period=0 --force
acked_after_delete() { k logs failover-writer | awk -v t="$deleted_at" '$1 == "ack" && $3 > t { found = 1 } END { exit !found }'; }
wait_for 180 "an acknowledged write after the delete" acked_after_delete
sleep 10 # keep writing on the new primary for a while
new_primary=$(k get pods -l pgcharm.io/role=primary -o jsonpath='{.items[*].metadata.name}')

# --- the report ---------------------------------------------------------------------------
k exec failover-writer -- touch /tmp/stop
stopped() { k logs failover-writer | grep -q '^stopped '; }
wait_for 30 "the writer to stop" stopped
k logs failover-writer >"$tmp/writer.log"
awk '$1 == "ack" { print $2 }' "$tmp/writer.log" >"$tmp/acked"
first_ack_ms=$(awk -v t="$deleted_at" '$1 == "ack" && $3 > t { print $3 - t; exit }' "$tmp/writer.log")
longest_gap_ms=$(awk '$1 == "ack" { if (prev && $3 - prev > max) max = $3 - prev; prev = $3 } END { print max + 0 }' "$tmp/writer.log")
failed=$(awk '$1 == "fail"' "$tmp/writer.log" | wc -l)
checked=$(k exec -i failover-writer -- node /writer/writer.js check <"$tmp/acked")

say "result"
echo "old primary:                              $old_primary"
echo "new primary:                              ${new_primary:-none}"
echo "first acknowledged write after the delete: ${first_ack_ms} ms"
echo "longest gap between acknowledged writes:  ${longest_gap_ms} ms"
echo "failed inserts (not acknowledged):        $failed"
echo "acknowledged writes:                      $checked"
[[ $checked == *"missing 0"* ]] || {
  echo "FAIL: acknowledged writes are missing" >&2
  exit 1
}
