#!/usr/bin/env bash
# End to end on kind, for machines with a Docker engine (not our CI machines, which have none):
# a kind cluster, both images built and loaded, the Helm chart installed, MinIO in the cluster
# with the small generated model, the minimal example served by REAL server pods, and then the
# same integration suite the local control plane runs (it takes KUBECONFIG).
#
#   make e2e-kind            KIND_CLUSTER=evs-e2e by default; `kind delete cluster --name evs-e2e` cleans up
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
NAME=${KIND_CLUSTER:-evs-e2e}
TAG=e2e
for tool in docker kind; do command -v "$tool" >/dev/null || { echo "e2e-kind needs $tool on PATH" >&2; exit 2; }; done
bash hack/bootstrap.sh
BIN=$(bash hack/build-binaries.sh kubectl helm kwok | tail -1)
k() { "$BIN/kubectl" "$@"; }
KUBECONFIG_FILE=$REPO/.cluster/kind.kubeconfig
mkdir -p .cluster

echo "== kind cluster $NAME"
kind get clusters | grep -qx "$NAME" || kind create cluster --name "$NAME"
kind get kubeconfig --name "$NAME" >"$KUBECONFIG_FILE"
export KUBECONFIG=$KUBECONFIG_FILE

echo "== images"
make images IMAGE_TAG=$TAG
kind load docker-image --name "$NAME" emotivoice/operator:$TAG emotivoice/server:$TAG

echo "== chart"
"$BIN/helm" upgrade --install evo charts/emotivoice-operator -n emotivoice-system --create-namespace \
  --set image.tag=$TAG --set serverImage.tag=$TAG --wait

echo "== MinIO with the small test model"
k create namespace voice --dry-run=client -o yaml | k apply -f -
k apply -n voice -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: minio}
spec:
  selector: {matchLabels: {app: minio}}
  template:
    metadata: {labels: {app: minio}}
    spec:
      containers:
        - name: minio
          image: quay.io/minio/minio
          args: [server, /data]
          env: [{name: MINIO_ROOT_USER, value: minioadmin}, {name: MINIO_ROOT_PASSWORD, value: minioadmin}]
          ports: [{containerPort: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: minio}
spec: {selector: {app: minio}, ports: [{port: 9000}]}
YAML
k rollout status -n voice deployment/minio --timeout=180s
make test-model
k port-forward -n voice svc/minio 19000:9000 >/dev/null 2>&1 &
PF=$!
trap 'kill $PF 2>/dev/null || true' EXIT
sleep 3
.venv/bin/python hack/upload_model.py .models/small --endpoint http://127.0.0.1:19000 --uri s3://models/emotivoice/v1

echo "== the minimal example, served by real pods"
sed 's#http://minio.minio.svc:9000#http://minio.voice.svc:9000#' examples/minimal-minio.yaml | k apply -n voice -f -
k wait -n voice evs/tts-minimal --for=jsonpath='{.status.phase}'=Ready --timeout=900s
k get evs -n voice -o wide

echo "== the integration suite against kind (fake KWOK nodes for its scheduling tests)"
"$BIN/kwok" --kubeconfig="$KUBECONFIG" --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake >.cluster/kind-kwok.log 2>&1 &
KWOK=$!
trap 'kill $PF $KWOK 2>/dev/null || true' EXIT
bash hack/cluster.sh nodes | k apply -f -
.venv/bin/python -m pytest tests -m cluster
