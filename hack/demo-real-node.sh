#!/usr/bin/env bash
# The demo on the real node (hack/demo.sh runs it once the control plane and the node are up):
# images built here, the chart installed with them, the example served by a real pod, and a
# real synthesis through its Service written to a WAV file.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
STATE=${EVS_CLUSTER_DIR:-$REPO/.cluster}
NS=${DEMO_NAMESPACE:-emotivoice-demo}
EXAMPLE=examples/minimal-minio.yaml
NAME=tts-minimal
RELEASE=evo-demo
# shellcheck source=hack/node.env
source hack/node.env
export KUBECONFIG=$STATE/kubeconfig
BIN="$(bash hack/build-binaries.sh kubectl helm 2>/dev/null | tail -1)"
k() { "$BIN/kubectl" "$@"; }
step() { printf '\n== %s\n' "$*"; }
PY=.venv/bin/python

step "Images: operator, server, S3 (built here from Debian packages and PyPI; first run: minutes)"
refs=$(bash hack/images.sh operator server-cpu s3)
echo "$refs"
ref() { echo "$refs" | sed -n "s/^$1=//p"; }
toleration="{key: $REAL_NODE_TAINT_KEY, operator: Exists, effect: NoSchedule}"

step "Operator: helm install, the operator runs as a pod on the real node (watching $NS)"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
"$BIN/helm" upgrade --install "$RELEASE" charts/emotivoice-operator -n emotivoice-demo-system \
  --create-namespace --wait --timeout 5m --values - <<VALUES
image: {repository: "$(ref operator | cut -d: -f1-2)", tag: "$(ref operator | cut -d: -f3)"}
serverImage: {repository: "$(ref server-cpu | cut -d: -f1-2)", cpuTag: "$(ref server-cpu | cut -d: -f3)"}
watchNamespaces: ["$NS"]
timerIntervalSeconds: 5
tolerations: [$toleration]
extraPodTolerations: [$toleration]
VALUES
k get pods -n emotivoice-demo-system -o wide

step "The S3 server the example expects, holding a small generated model (random weights, released layout)"
mkdir -p "$STATE/demo"
$PY -m tests.support.demo store "$EXAMPLE" "$(ref s3)" "$STATE/demo"

step "kubectl apply -f $EXAMPLE -n $NS"
k apply -n "$NS" -f "$EXAMPLE"

step "A volume for each replica's model cache (this local cluster has no storage provisioner)"
# The claims the example's pods will mount (model-cache-NAME-0.. under the default per-replica
# scope), each reserved a volume before it exists.
claims=$($PY -c 'import sys
from pathlib import Path
from emotivoice_operator.cli_render import load_services
from tests.support.workload import cache_claims
print(" ".join(cache_claims(load_services([Path(sys.argv[1])])[0])))' "$EXAMPLE")
for claim in $claims; do
  $PY -m tests.support.demo volume "$NS" "$claim" "$STATE/demo/cache/$claim"
done

step "Waiting for the real pod: download + verify (init container), load, warm up, then Ready"
for _ in $(seq 300); do
  phase=$(k get evs "$NAME" -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = Ready ] && break
  sleep 1
done
[ "$phase" = Ready ] || { k describe pods -n "$NS" | tail -40; echo "not Ready after 300 s" >&2; exit 1; }
pod=$(k get pods -n "$NS" -l "app.kubernetes.io/instance=$NAME" -o jsonpath='{.items[0].metadata.name}')
echo "-- the fetch step (init container):"
k logs -n "$NS" "$pod" -c fetch-model | tail -3
echo "-- the server's start-up:"
k logs -n "$NS" "$pod" -c server | grep 'startup phase' || true

step "A real synthesis through the Service"
ip=$(k get service "$NAME" -n "$NS" -o jsonpath='{.spec.clusterIP}')
port=$(k get service "$NAME" -n "$NS" -o jsonpath='{.spec.ports[0].port}')
curl -sf --max-time 60 "http://$ip:$port/v1/audio/speech" -H 'Content-Type: application/json' \
  -d '{"model": "emotivoice", "input": "Hello from a warm pod.", "response_format": "wav"}' \
  -o "$STATE/demo/hello.wav"
$PY - "$STATE/demo/hello.wav" <<'PYTHON'
import sys, soundfile
info = soundfile.info(sys.argv[1])
print(f"wrote {sys.argv[1]}: {info.duration:.2f} s of {info.samplerate} Hz audio "
      "(random weights: it sounds like noise, the pipeline is the real one)")
PYTHON

step "kubectl get evs -n $NS -o wide"
k get evs -n "$NS" -o wide
step "Its children"
k get statefulset,deployment,service,pvc,hpa,pods -n "$NS" -l "app.kubernetes.io/instance=$NAME"
step "Status conditions"
k get evs "$NAME" -n "$NS" -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'
step "Events"
k get events -n "$NS" --sort-by=.lastTimestamp | tail -25

cat <<EOT

Try next:
  export KUBECONFIG=$STATE/kubeconfig PATH=$BIN:\$PATH
  kubectl delete pod -n $NS $pod         # the replacement starts from the verified cache
  kubectl get evs -n $NS -o wide -w       # its cold start is counted
  curl -s http://$ip:$port/v1/voices
Clean up: make demo-down   (stops the operator, the node and the control plane)
EOT
