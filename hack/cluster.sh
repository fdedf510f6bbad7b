#!/usr/bin/env bash
# A local Kubernetes control plane for the tests, without Docker:
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler, KWOK, which plays the kubelet
# for fake nodes (one CPU node, one GPU node with nvidia.com/gpu capacity) and marks the pods
# scheduled there Running and Ready, and, where the machine allows it (root on Linux), one REAL
# node that runs real containers (hack/node.sh: containerd, kubelet, kube-proxy, CoreDNS).
# EVS_REAL_NODE=auto (default: real node when `hack/node.sh check` passes), 1 (required), 0 (off).
# EVS_PROFILING=true: the API server serves /debug/pprof (where a benchmark's CPU goes).
# With the real node the apiserver listens on the node's bridge address (pods must reach it);
# without it on 127.0.0.1.
#
#   hack/cluster.sh up       build/find the binaries, start everything, wait until healthy
#   hack/cluster.sh down     stop everything and remove the state directory
#   hack/cluster.sh env      print `export KUBECONFIG=...` (eval "$(hack/cluster.sh env)")
#   hack/cluster.sh status   say whether it is up (exit 0) or not (exit 1)
#   hack/cluster.sh restart NAME [PAUSE]
#                            stop one control-plane component (etcd, kube-apiserver, ...) and
#                            start it again with the same flags after PAUSE seconds; waits until
#                            the API answers (the fault suite's restarts)
#   hack/cluster.sh nodes    print the fake nodes' manifests (to give another cluster running
#                            KWOK the same nodes: hack/cluster.sh nodes | kubectl apply -f -)
#
# State (certificates, etcd data, kubeconfigs, logs under logs/, pids): $EVS_CLUSTER_DIR
# (default .cluster/ in the repository). Ports are free ports chosen at `up`, recorded in
# ports.env. Binaries: hack/build-binaries.sh (honours KUBEBUILDER_ASSETS).
# `up` and `down` hold a lock per state directory (see `locked`). Test sessions share the
# cluster through tests/support/cluster_sessions.py, which marks one they started with
# $STATE/test-owned; `up` on such a cluster removes the mark, so the tests leave it running.
# Fake nodes carry the KWOK taint: pods need the toleration
#   {key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}
# and the real node its own (REAL_NODE_TAINT_KEY in hack/node.env), so no pod lands on the
# other kind by accident.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
STATE=${EVS_CLUSTER_DIR:-$REPO/.cluster}
case "$STATE" in /*) ;; *) STATE=$PWD/$STATE ;; esac
TIMEOUT=${EVS_CLUSTER_TIMEOUT:-180}
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# The fake nodes (tests find them through the kwok.x-k8s.io/node=fake annotation, not by name).
CPU_NODE=kwok-cpu-0
GPU_NODE=kwok-gpu-0
GPU_COUNT=4
# shellcheck source=hack/node.env
source "$REPO/hack/node.env"

SCRIPT=cluster.sh
OURS=("$STATE/")
WAIT_TIMEOUT=$TIMEOUT
# shellcheck source=hack/lib/util.sh
source "$REPO/hack/lib/util.sh"

stop_all() {
  local i
  # Reverse order: the clients first, etcd last.
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop "${COMPONENTS[$i]}"
  done
}

# ---- health --------------------------------------------------------------------------------

api_get() {
  # shellcheck disable=SC1091
  source "$STATE/ports.env"
  curl -sf --max-time 5 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" \
    --key "$STATE/pki/admin.key" "https://$API_ADDRESS:$API_PORT$1"
}

healthy() {
  local name
  [ -f "$STATE/kubeconfig" ] && [ -f "$STATE/ports.env" ] || return 1
  for name in "${COMPONENTS[@]}"; do alive "$name" || return 1; done
  [ "$(api_get /readyz 2>/dev/null)" = ok ] || return 1
  # shellcheck disable=SC1091
  source "$STATE/ports.env"
  [ "$REAL_NODE" = 0 ] || bash "$REPO/hack/node.sh" healthy
}

# ---- setup ---------------------------------------------------------------------------------

free_ports() {
  # Binds N sockets at once so the ports are distinct, then releases them for the components.
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# cert NAME CN [O]: a client or serving certificate signed by the cluster CA.
cert() {
  local name=$1 cn=$2 org=${3:-} ext=$STATE/pki/$1.ext subj="/CN=$2"
  [ -z "$org" ] || subj="/O=$org$subj"
  if [ "$name" = apiserver ]; then
    printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' "$NODE_IP" >"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$STATE/pki/$name.key" -subj "$subj" -out "$STATE/pki/$name.csr" 2>/dev/null
  local ca=${CA:-ca}
  openssl x509 -req -in "$STATE/pki/$name.csr" -CA "$STATE/pki/$ca.crt" -CAkey "$STATE/pki/$ca.key" \
    -CAcreateserial -days 365 -extfile "$ext" -out "$STATE/pki/$name.crt" 2>/dev/null
  rm -f "$STATE/pki/$name.csr" "$ext"
}

make_pki() {
  mkdir -p "$STATE/pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -keyout "$STATE/pki/ca.key" -out "$STATE/pki/ca.crt" -subj "/CN=evs-local-ca" 2>/dev/null
  cert apiserver kube-apiserver
  cert admin admin system:masters
  cert kube-controller-manager system:kube-controller-manager
  cert kube-scheduler system:kube-scheduler
  # The apiserver's identity towards kubelets (logs, exec, port-forward on the real node).
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  # KWOK acts for every fake node's kubelet (node status, leases, pod status): an admin identity.
  cert kwok kwok system:masters
  # The aggregation layer's front proxy: its own CA, so ordinary client certificates can never
  # assert X-Remote-User headers. Without it every component logs a missing requestheader CA.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -keyout "$STATE/pki/front-proxy-ca.key" -out "$STATE/pki/front-proxy-ca.crt" \
    -subj "/CN=evs-local-front-proxy-ca" 2>/dev/null
  CA=front-proxy-ca cert front-proxy-client front-proxy-client
  # Service-account token signing key pair.
  openssl genrsa -out "$STATE/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$STATE/pki/sa.key" -pubout -out "$STATE/pki/sa.pub" 2>/dev/null
  chmod 600 "$STATE/pki/"*.key
}

# kubeconfig FILE USER: a kubeconfig with embedded credentials, so it can be copied elsewhere.
kubeconfig() {
  local file=$1 user=$2 b64="base64 -w0"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: evs-local
  cluster:
    server: https://$API_ADDRESS:$API_PORT
    certificate-authority-data: $($b64 <"$STATE/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $($b64 <"$STATE/pki/$user.crt")
    client-key-data: $($b64 <"$STATE/pki/$user.key")
contexts:
- name: evs-local
  context:
    cluster: evs-local
    user: $user
current-context: evs-local
EOF
  chmod 600 "$file"
}

fake_nodes() {
  local name kind gpu_label gpu_resource
  for name in "$CPU_NODE" "$GPU_NODE"; do
    kind=cpu gpu_label='' gpu_resource=''
    if [ "$name" = "$GPU_NODE" ]; then
      kind=gpu
      gpu_label='nvidia.com/gpu.present: "true"'
      gpu_resource="nvidia.com/gpu: \"$GPU_COUNT\""
    fi
    local resources="
    cpu: \"16\"
    memory: 64Gi
    pods: \"110\"
    ephemeral-storage: 100Gi
    $gpu_resource"
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    evs.local/node-kind: $kind
    $gpu_label
spec:
  taints:
  - key: kwok.x-k8s.io/node
    value: fake
    effect: NoSchedule
status:
  capacity:$resources
  allocatable:$resources
EOF
  done
}

up() {
  UP_START=$SECONDS
  WAIT_DEADLINE=$((SECONDS + TIMEOUT))
  if healthy; then
    if [ -f "$STATE/test-owned" ]; then
      # A test session started it; a user asking for it now wants it kept after the tests.
      rm -f "$STATE/test-owned"
      log "already up (started by tests; now kept after they end): export KUBECONFIG=$STATE/kubeconfig"
    else
      log "already up: export KUBECONFIG=$STATE/kubeconfig"
    fi
    return 0
  fi
  if [ -d "$STATE" ]; then
    log "found stale state in $STATE, cleaning it up first"
    down_locked
  fi
  local bin real=0 why
  case "${EVS_REAL_NODE:-auto}" in
    0) ;;
    1)
      why=$(bash "$REPO/hack/node.sh" check 2>&1) || die "EVS_REAL_NODE=1 but ${why#node.sh: }"
      real=1
      ;;
    *)
      if why=$(bash "$REPO/hack/node.sh" check 2>&1); then
        real=1
      else
        log "no real node (${why#node.sh: }): pods run on the simulated nodes only"
      fi
      ;;
  esac
  bin=$(bash "$REPO/hack/build-binaries.sh" cluster | tail -n1)
  [ $real = 0 ] || bash "$REPO/hack/build-binaries.sh" node >/dev/null
  WAIT_DEADLINE=$((SECONDS + TIMEOUT)) # the first build may take long; the timeout is for the start
  mkdir -p "$STATE/logs" "$STATE/pids"
  mkdir -m 700 "$STATE/etcd"
  local ports
  read -r -a ports <<<"$(free_ports 6)"
  API_ADDRESS=127.0.0.1
  if [ $real = 1 ]; then
    API_ADDRESS=$NODE_IP
    bash "$REPO/hack/node.sh" bridge
  fi
  cat >"$STATE/ports.env" <<EOF
REAL_NODE=$real
API_ADDRESS=$API_ADDRESS
ETCD_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
API_PORT=${ports[2]}
KCM_PORT=${ports[3]}
SCHEDULER_PORT=${ports[4]}
KWOK_PORT=${ports[5]}
EOF
  # shellcheck disable=SC1091
  source "$STATE/ports.env"
  make_pki
  kubeconfig "$STATE/kubeconfig" admin
  kubeconfig "$STATE/kube-controller-manager.kubeconfig" kube-controller-manager
  kubeconfig "$STATE/kube-scheduler.kubeconfig" kube-scheduler
  kubeconfig "$STATE/kwok.kubeconfig" kwok
  log "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (state: $STATE)"
  # Nothing half-started survives a failed `up`; the logs stay for the diagnosis.
  trap 'stop_all_and_node; log "up failed: stopped what had started; logs in $STATE/logs/"' EXIT

  start etcd "$bin/etcd" --name=evs-local --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="evs-local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level=warn
  wait_for "etcd healthy" curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$API_ADDRESS" --advertise-address="$API_ADDRESS" --secure-port="$API_PORT" \
    --cert-dir="$STATE/pki" \
    --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
    --client-ca-file="$STATE/pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$STATE/pki/sa.pub" \
    --service-account-signing-key-file="$STATE/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --requestheader-client-ca-file="$STATE/pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$STATE/pki/front-proxy-client.crt" \
    --proxy-client-key-file="$STATE/pki/front-proxy-client.key" \
    --kubelet-client-certificate="$STATE/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$STATE/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$STATE/pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling="${EVS_PROFILING:-false}"
  wait_for "kube-apiserver ready" api_get /readyz

  # Simulated nodes do not die, but the node lifecycle controller marks every pod of a node
  # NotReady once the node's heartbeat is older than the grace period, and KWOK does not make
  # them Ready again: a warm window was judged missed for pods that were fine. Without a Lease
  # KWOK only rewrote node status, measured 3 min apart on a loaded machine (a grace of 3m
  # then raced it); with --node-lease-duration-seconds it renews a Lease per node, as a kubelet
  # does, which the controller reads first.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$STATE/pki/kcm" \
    --service-account-private-key-file="$STATE/pki/sa.key" --root-ca-file="$STATE/pki/ca.crt" \
    --cluster-signing-cert-file="$STATE/pki/ca.crt" --cluster-signing-key-file="$STATE/pki/ca.key" \
    --use-service-account-credentials=true --leader-elect=false --controllers='*' \
    --service-cluster-ip-range="$SERVICE_CIDR" --kube-api-qps=100 --kube-api-burst=200 \
    --node-monitor-grace-period=3m --profiling=false
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$STATE/pki/scheduler" \
    --leader-elect=false --kube-api-qps=100 --kube-api-burst=200 --profiling=false
  start kwok "$bin/kwok" --kubeconfig="$STATE/kwok.kubeconfig" \
    --manage-all-nodes=false --node-lease-duration-seconds=40 \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --server-address="127.0.0.1:$KWOK_PORT" --node-ip=127.0.0.1 --cidr=10.244.0.1/16

  local kubectl=("$bin/kubectl" --kubeconfig="$STATE/kubeconfig")
  wait_for "kube-controller-manager healthy" \
    curl -sfk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for "kube-scheduler healthy" curl -sfk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  wait_for "kwok healthy" curl -sf --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"
  fake_nodes | "${kubectl[@]}" apply -f - >/dev/null
  wait_for "fake nodes $CPU_NODE, $GPU_NODE Ready" \
    "${kubectl[@]}" wait --for=condition=Ready "node/$CPU_NODE" "node/$GPU_NODE" --timeout=2s
  wait_for "default ServiceAccount created" "${kubectl[@]}" get serviceaccount default -n default
  [ $real = 0 ] || bash "$REPO/hack/node.sh" up
  trap - EXIT
  log "up in $((SECONDS - UP_START)) s (Kubernetes $(api_get /version |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])'))"
  cat >&2 <<EOF
Use it:
  export KUBECONFIG=$STATE/kubeconfig    # or: eval "\$(hack/cluster.sh env)"
  $bin/kubectl get nodes
Pods run on the fake nodes with the toleration
  {key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}
EOF
  [ $real = 0 ] || cat >&2 <<EOF
and on the real node $NODE_NAME (real containers) with the toleration
  {key: $REAL_NODE_TAINT_KEY, operator: Exists, effect: NoSchedule}
Images for it: hack/images.sh (builds and pushes to its registry $REGISTRY)
EOF
  echo "Stop it: hack/cluster.sh down" >&2
}

stop_all_and_node() {
  # Only a cluster that has the real node takes it down (another state directory's may run).
  if grep -qx 'REAL_NODE=1' "$STATE/ports.env" 2>/dev/null; then
    bash "$REPO/hack/node.sh" down || true
  fi
  stop_all
}

down_locked() {
  stop_all_and_node
  rm -rf "$STATE"
}

status() {
  local name
  if [ ! -d "$STATE" ]; then
    echo "down (no state in $STATE)"
    return 1
  fi
  for name in "${COMPONENTS[@]}"; do
    if alive "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; fi
  done
  if healthy; then
    echo "up: export KUBECONFIG=$STATE/kubeconfig"
  else
    echo "not healthy (logs: $STATE/logs/)"
    return 1
  fi
}

# Serialises up/down across concurrent callers (test sessions, a user). A caller that holds
# this lock already (the test sessions' registry, around its own check-then-start) says so with
# EVS_CLUSTER_LOCK_HELD=the lock's path; any other path there is refused, since the caller and
# this script would then name different state directories.
locked() {
  local lock
  lock=/tmp/evs-cluster-$(echo "$STATE" | sha1sum | cut -c1-12).lock
  if [ -n "${EVS_CLUSTER_LOCK_HELD:-}" ]; then
    [ "$EVS_CLUSTER_LOCK_HELD" = "$lock" ] ||
      die "EVS_CLUSTER_LOCK_HELD=$EVS_CLUSTER_LOCK_HELD, but the lock of $STATE is $lock"
    "$@"
    return
  fi
  exec 9>"$lock"
  flock 9
  "$@"
}

restart_component() {
  local name=$1 pause=${2:-0}
  case " ${COMPONENTS[*]} " in
    *" $name "*) ;;
    *) die "unknown component '$name' (known: ${COMPONENTS[*]})" ;;
  esac
  local t0=$SECONDS
  restart "$name" "$pause"
  wait_for "kube-apiserver ready after restarting $name" api_get /readyz
  log "$name restarted ($((SECONDS - t0)) s, down for at least $pause s)"
}

case "${1:-}" in
  up) locked up ;;
  restart) restart_component "${2:?usage: hack/cluster.sh restart NAME [PAUSE]}" "${3:-0}" ;;
  down) locked down_locked && log "down (state removed)" ;;
  env) echo "export KUBECONFIG=$STATE/kubeconfig" ;;
  nodes) fake_nodes ;;
  status) status ;;
  *)
    echo "usage: hack/cluster.sh up|down|env|status|nodes|restart NAME [PAUSE]" >&2
    exit 2
    ;;
esac
