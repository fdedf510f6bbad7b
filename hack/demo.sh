#!/usr/bin/env bash
# The main job on an embedded default: a local control plane, the CRD, the operator, and the
# minimal example, then what a user would look at. Safe to re-run; `make demo-down` cleans up.
#
# Where the machine allows it (root on Linux) everything is real: the images are built here,
# the operator runs as a pod from the Helm chart, an S3 server in the cluster holds a small
# generated model, the example's server pod downloads, verifies, loads and warms it on the real
# node, and a speech request through the Service writes a WAV file. Elsewhere the pods run on
# KWOK's simulated nodes (the operator, the API objects, scheduling, readiness and status are
# real; no container starts), and the demo says so.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
STATE=${EVS_CLUSTER_DIR:-$REPO/.cluster}
NS=${DEMO_NAMESPACE:-emotivoice-demo}
step() { printf '\n== %s\n' "$*"; }

step "Python environment (.venv)"
bash hack/bootstrap.sh

step "What the real node needs (root on Linux: containerd, runc, CNI plugins, buildah...; Debian packages)"
bash hack/node-deps.sh
# Why the real node cannot run here, if it cannot: said now, and again if the demo falls back.
if why=$(bash hack/node.sh check 2>&1); then
  why=""
  echo "this machine can run the real node"
else
  why=${why#node.sh: }
  echo "no real node on this machine: $why"
fi

step "Local control plane (first run builds the Kubernetes binaries from their Go modules: minutes)"
bash hack/cluster.sh up
export KUBECONFIG=$STATE/kubeconfig
KUBECTL="$(bash hack/build-binaries.sh kubectl 2>/dev/null | tail -1)/kubectl"
k() { "$KUBECTL" "$@"; }

step "CRD"
k apply --server-side --force-conflicts -f crds/
# Right after the create, the CRD's status may have no conditions yet, which `kubectl wait`
# reports as an error instead of waiting: ask again, bounded.
for attempt in $(seq 30); do
  if k wait --for=condition=Established crd/emotivoiceservices.tts.emotivoice.io --timeout=60s 2>/dev/null; then
    break
  fi
  [ "$attempt" -lt 30 ] || { echo "the CRD was not Established after 30 tries" >&2; exit 1; }
  sleep 1
done

if grep -qx 'REAL_NODE=1' "$STATE/ports.env"; then
  exec bash hack/demo-real-node.sh
fi
if [ -z "$why" ]; then
  # The machine could run it, but the control plane found running was started without it.
  why="the control plane running in $STATE was started without it (EVS_REAL_NODE=0, or before the node's packages were installed); \`make demo-down\` then \`make demo\` starts it with the real node"
fi
echo ">> no real node ($why): the pods run on KWOK's simulated nodes, so no container starts and no cold start is measured"

step "Operator (background, watching $NS only, log: $STATE/operator.log)"
if [ -f "$STATE/operator.pid" ] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; then
  echo "already running (pid $(cat "$STATE/operator.pid"))"
else
  # kopf reads port 0 as port 80 (which then stays taken): give its liveness a real free port.
  liveness_port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  EMOTIVOICE_TIMER_INTERVAL=5 \
    EMOTIVOICE_EXTRA_TOLERATIONS='[{"key":"kwok.x-k8s.io/node","operator":"Exists","effect":"NoSchedule"}]' \
    setsid .venv/bin/python -m emotivoice_operator.main run --namespace "$NS" \
    --liveness "http://127.0.0.1:$liveness_port/healthz" \
    >"$STATE/operator.log" 2>&1 </dev/null &
  echo $! >"$STATE/operator.pid"
  echo "started (pid $!)"
fi

step "kubectl apply -f examples/minimal-minio.yaml -n $NS"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f -
k apply -n "$NS" -f examples/minimal-minio.yaml

step "A volume for each replica's model cache (this local cluster has no storage provisioner)"
# The claims the example's pods will mount (model-cache-tts-minimal-0..2 under the default
# per-replica scope), each reserved a volume before it exists.
claims=$(.venv/bin/python -c 'from pathlib import Path
from emotivoice_operator.cli_render import load_services
from tests.support.workload import cache_claims
print(" ".join(cache_claims(load_services([Path("examples/minimal-minio.yaml")])[0])))')
for claim in $claims; do
cat <<PV | k apply -f -
apiVersion: v1
kind: PersistentVolume
metadata: {name: $NS-$claim}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/$NS/$claim}
  claimRef: {namespace: $NS, name: $claim}
PV
done

step "Waiting for the service to be Ready (at most 120 s)"
for _ in $(seq 120); do
  phase=$(k get evs tts-minimal -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = Ready ] && break
  sleep 1
done

step "kubectl get evs -n $NS -o wide"
k get evs -n "$NS" -o wide
step "Its children"
k get statefulset,deployment,service,pvc,hpa,pods -n "$NS" -l app.kubernetes.io/instance=tts-minimal
step "Status conditions"
k get evs tts-minimal -n "$NS" -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'
step "Events"
k get events -n "$NS" --field-selector involvedObject.name=tts-minimal --sort-by=.lastTimestamp

cat <<EOT

Try next:
  export KUBECONFIG=$STATE/kubeconfig PATH=$(dirname "$KUBECTL"):\$PATH
  # GPU node, two peak windows:
  kubectl apply -n $NS -f examples/gpu-peak-windows.yaml
  # delete a child: the operator puts it back within seconds
  kubectl delete service tts-minimal -n $NS
  # every object for every example, without a cluster
  make render
Clean up: make demo-down   (stops the operator and the control plane)
EOT
