#!/usr/bin/env bash
# One REAL node for the local control plane of hack/cluster.sh: containerd (runc, overlayfs,
# cgroupfs), a CNI bridge, kubelet and kube-proxy v1.35.4, CoreDNS, metrics-server (the resource
# metrics API the HPA reads), and a local image registry the kubelet pulls from. Needs root on
# Linux (network interfaces, mounts, cgroups): `check` says why not when it cannot run.
# cluster.sh calls it; by hand, use cluster.sh.
#
#   hack/node.sh check     exit 0 when this machine can run the real node, else say why
#   hack/node.sh bridge    create the bridge evs0 with the node address (before the apiserver
#                          binds it: pods must reach the API, so it listens there, not on lo)
#   hack/node.sh up        containerd, registry, kubelet, kube-proxy, CoreDNS, metrics-server;
#                          wait until Ready and the metrics API answers
#   hack/node.sh healthy   exit 0 when all of them run
#   hack/node.sh restart NAME [PAUSE]
#                          stop kubelet, containerd, kube-proxy or metrics-server and start it
#                          again with the same flags after PAUSE seconds (the pods keep running:
#                          their shims are not containerd's children); waits until it answers
#   hack/node.sh reboot BOOT_ID
#                          what the node's pods see of a reboot (the fault suite's): every
#                          component stopped, every container killed (SIGKILL), kube-proxy's
#                          rules gone, then all started again; the containers started from now on
#                          see BOOT_ID as the kernel's boot id (EMOTIVOICE_FETCH_BOOT_ID, through
#                          containerd's base spec: a TEST HOOK, see reboot_node)
#   hack/node.sh down      delete the pods, stop everything by pid, remove every interface,
#                          nftables table, mount and cgroup the node made
#
# Network: the node's and the pods' addresses live only on evs0 (10.244.0.0/24, node
# 10.244.0.1); nothing is routed or NATed off the machine (the bridge plugin's ipMasq is off;
# ip_forward is on while the node runs, for Service DNAT back onto the bridge, and restored by
# down). The registry listens on 127.0.0.1 only.
#
# State under $EVS_CLUSTER_DIR/node (removed by down). Kept across runs, outside the clone, so a
# second `up` costs seconds: containerd's image store and the registry's blobs, under
# $EVS_CACHE_DIR/node (default ~/.cache/emotivoice-operator/node).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=${EVS_CLUSTER_DIR:-$REPO/.cluster}
case "$CLUSTER" in /*) ;; *) CLUSTER=$PWD/$CLUSTER ;; esac
STATE=$CLUSTER/node
CACHE=${EVS_CACHE_DIR:-$HOME/.cache/emotivoice-operator}
KEEP=$CACHE/node
# shellcheck source=hack/node.env
source "$REPO/hack/node.env"
SOCK=$STATE/run/containerd.sock
COMPONENTS=(registry containerd kubelet kube-proxy metrics-server)

SCRIPT=node.sh
# Ours: a command line that names the state directory or the cache (the registry's config).
OURS=("$STATE/" "$KEEP/")
WAIT_TIMEOUT=${NODE_TIMEOUT:-180}
WAIT_INTERVAL=0.2
# shellcheck source=hack/lib/util.sh
source "$REPO/hack/lib/util.sh"

kubectl() { "$BIN/kubectl" --kubeconfig="$CLUSTER/kubeconfig" "$@"; }

# ---- can this machine run it? ----------------------------------------------------------------

check() {
  [ "$(uname -s)" = Linux ] || die "needs Linux (kernel namespaces, cgroups, overlayfs)"
  [ "$(id -u)" = 0 ] || die "needs root: it creates a bridge, mounts overlay file systems and cgroups"
  [ -d /sys/fs/cgroup ] || die "no /sys/fs/cgroup"
  ip link add evs-probe0 type bridge 2>/dev/null || die "cannot create a bridge interface here"
  ip link del evs-probe0
  if ip link show "$BRIDGE" >/dev/null 2>&1 && [ ! -d "$STATE" ] &&
    pgrep -f -- "--hostname-override=$NODE_NAME" >/dev/null; then
    die "another local cluster runs the real node (its kubelet runs): one real node per machine"
  fi
  local tool
  for tool in containerd runc buildah mmdebstrap nft /usr/lib/cni/bridge; do
    command -v "$tool" >/dev/null || die "$tool is missing: run hack/node-deps.sh (Debian packages)"
  done
  [ "${EVS_REAL_NODE:-auto}" != 0 ] || die "EVS_REAL_NODE=0 asks for the simulated nodes only"
}

# ---- network ---------------------------------------------------------------------------------

bridge() {
  # A bridge without a running kubelet is a killed run's leftover: start from a clean one.
  if ip link show "$BRIDGE" >/dev/null 2>&1 && [ ! -d "$STATE" ]; then
    log "removing the leftover bridge $BRIDGE of an earlier run"
    nft delete table inet evs-node 2>/dev/null || true
    ip link del "$BRIDGE"
  fi
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service addresses are virtual (kube-proxy DNATs them to pods); one without a rule goes
  # onto our bridge, never to the machine's default route.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
  # Nothing from the pods is forwarded anywhere but back onto the bridge.
  nft -f - <<EOF
table inet evs-node
delete table inet evs-node
table inet evs-node {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$BRIDGE" oifname != "$BRIDGE" drop
  }
}
EOF
}

cni_config() {
  mkdir -p "$STATE/cni/net.d"
  cat >"$STATE/cni/net.d/10-evs.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "evs",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
}

# ---- certificates (signed by the control plane's CA) ------------------------------------------

node_cert() { # node_cert NAME CN ORG [SANS]
  local name=$1 cn=$2 org=$3 sans=${4:-} pki=$CLUSTER/pki ext=$STATE/$1.ext
  if [ -n "$sans" ]; then
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$STATE/pki/$name.key" -subj "/O=$org/CN=$cn" -out "$STATE/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$STATE/pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 365 -extfile "$ext" -out "$STATE/pki/$name.crt" 2>/dev/null
  rm -f "$STATE/pki/$name.csr" "$ext"
  chmod 600 "$STATE/pki/$name.key"
}

node_kubeconfig() { # node_kubeconfig NAME: a kubeconfig for the identity in pki/NAME.*
  local b64="base64 -w0"
  # shellcheck disable=SC1091
  source "$CLUSTER/ports.env"
  cat >"$STATE/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: evs-local
  cluster: {server: "https://$API_ADDRESS:$API_PORT", certificate-authority-data: $($b64 <"$CLUSTER/pki/ca.crt")}
users:
- name: $1
  user: {client-certificate-data: $($b64 <"$STATE/pki/$1.crt"), client-key-data: $($b64 <"$STATE/pki/$1.key")}
contexts:
- name: evs-local
  context: {cluster: evs-local, user: $1}
current-context: evs-local
EOF
  chmod 600 "$STATE/$1.kubeconfig"
}

# ---- components ------------------------------------------------------------------------------

containerd_config() {
  mkdir -p "$KEEP/containerd" "$STATE/run"
  cat >"$STATE/containerd.toml" <<EOF
version = 2
root = "$KEEP/containerd"
state = "$STATE/run/containerd-state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE in this sandbox: oom_score_adj cannot be lowered below the parent's.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      # Written by `reboot` only (the fault suite's TEST HOOK, see reboot_node).
$([ -f "$STATE/base-spec.json" ] && printf '      base_runtime_spec = "%s"\n' "$STATE/base-spec.json")
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY_ADDR"]
EOF
}

# registry: the local image registry in the foreground (node.sh up starts it; images.sh runs
# one of its own while no node runs). Its blobs stay in $KEEP/registry across runs.
registry() {
  mkdir -p "$KEEP/registry"
  cat >"$KEEP/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $KEEP/registry}
  delete: {enabled: true}
http:
  addr: $REGISTRY_ADDR
EOF
  exec "$(bash "$REPO/hack/build-binaries.sh" registry | tail -n1)/registry" serve "$KEEP/registry.yml"
}

kubelet_config() {
  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $CLUSTER/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $STATE/pki/kubelet-serving.crt
tlsPrivateKeyFile: $STATE/pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
# This machine's cgroups are v1 (hybrid): allowed explicitly since 1.31.
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
# The host's resolver is not reachable from pods; CoreDNS answers cluster names only.
resolvConf: $STATE/resolv.conf
serializeImagePulls: false
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
maxPods: 40
podPidsLimit: 4096
syncFrequency: 10s
nodeStatusReportFrequency: 10s
registerWithTaints:
- {key: $REAL_NODE_TAINT_KEY, value: "true", effect: NoSchedule}
EOF
  : >"$STATE/resolv.conf"
}

kube_proxy_config() {
  cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: nftables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0}
EOF
}

# coredns_manifest: hack/manifests/coredns.yaml with the node's facts (hack/node.env) filled in.
coredns_manifest() {
  local text
  text=$(<"$REPO/hack/manifests/coredns.yaml")
  text=${text//'$NODE_NAME'/"$NODE_NAME"}
  text=${text//'$REAL_NODE_TAINT_KEY'/"$REAL_NODE_TAINT_KEY"}
  text=${text//'$COREDNS_IMAGE'/"$COREDNS_IMAGE"}
  text=${text//'$DNS_IP'/"$DNS_IP"}
  printf '%s\n' "$text"
}

# metrics_server_manifest: hack/manifests/metrics-server.yaml with the node's facts filled in.
metrics_server_manifest() {
  local text
  text=$(<"$REPO/hack/manifests/metrics-server.yaml")
  text=${text//'$METRICS_SERVER_PORT'/"$METRICS_SERVER_PORT"}
  text=${text//'$NODE_IP'/"$NODE_IP"}
  text=${text//'$CA_BUNDLE'/"$(base64 -w0 <"$CLUSTER/pki/ca.crt")"}
  printf '%s\n' "$text"
}

# metrics_server: started after the kubelet (it scrapes its /metrics/resource every 15 s, the
# shortest resolution the HPA uses well). The kubelet's serving certificate is checked against
# the cluster CA, so no --kubelet-insecure-tls is needed here.
metrics_server() {
  metrics_server_manifest | kubectl apply -f - 2>/dev/null >/dev/null
  start metrics-server "$BIN/metrics-server" \
    --kubeconfig="$STATE/metrics-server.kubeconfig" \
    --authentication-kubeconfig="$STATE/metrics-server.kubeconfig" \
    --authorization-kubeconfig="$STATE/metrics-server.kubeconfig" \
    --bind-address="$NODE_IP" --secure-port="$METRICS_SERVER_PORT" \
    --tls-cert-file="$STATE/pki/metrics-server-serving.crt" \
    --tls-private-key-file="$STATE/pki/metrics-server-serving.key" \
    --kubelet-preferred-address-types=InternalIP --kubelet-use-node-status-port \
    --kubelet-certificate-authority="$CLUSTER/pki/ca.crt" \
    --metric-resolution=15s --v=1
  wait_for "metrics API available" \
    kubectl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=2s
}

up() {
  local t0=$SECONDS
  BIN=$(bash "$REPO/hack/build-binaries.sh" cluster node | tail -n1)
  mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/pki" "$STATE/run"
  # ip_forward as found, restored by down.
  [ -f "$STATE/ip_forward.before" ] || cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward.before"
  bridge
  cni_config
  node_cert kubelet "system:node:$NODE_NAME" system:nodes
  node_cert kubelet-serving "system:node:$NODE_NAME" system:nodes "IP:$NODE_IP,DNS:$NODE_NAME"
  node_cert kube-proxy system:kube-proxy system:node-proxier
  node_cert metrics-server system:metrics-server system:metrics-server
  node_cert metrics-server-serving metrics-server.kube-system.svc system:metrics-server \
    "DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.cluster.local,IP:$NODE_IP"
  node_kubeconfig kubelet
  node_kubeconfig kube-proxy
  node_kubeconfig metrics-server
  containerd_config
  kubelet_config
  kube_proxy_config

  start registry bash "$REPO/hack/node.sh" registry
  start containerd containerd --config "$STATE/containerd.toml"
  wait_for "registry on $REGISTRY" curl -sf --max-time 2 "http://$REGISTRY_ADDR/v2/"
  wait_for "containerd" ctr -a "$SOCK" version
  # The images the node itself runs: the pod sandbox (pause) and CoreDNS.
  bash "$REPO/hack/images.sh" pause coredns >&2
  ctr -a "$SOCK" -n k8s.io images pull --plain-http "$PAUSE_IMAGE" >/dev/null
  # Before the kubelet starts, no container uses an image: the stale ones go (GBs each).
  bash "$REPO/hack/prune-images.sh" containerd "$SOCK"

  start kubelet "$BIN/kubelet" --config="$STATE/kubelet.yaml" \
    --kubeconfig="$STATE/kubelet.kubeconfig" --root-dir="$STATE/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --node-labels="evs.local/node-kind=real" --v=1
  wait_for "kubelet healthy" curl -sf --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for "node $NODE_NAME registered" kubectl get node "$NODE_NAME"
  # No node-ipam controller runs (--allocate-node-cidrs is off): the node's pod range is ours.
  kubectl patch node "$NODE_NAME" --type=merge \
    -p "{\"spec\":{\"podCIDR\":\"$POD_CIDR\",\"podCIDRs\":[\"$POD_CIDR\"]}}" >/dev/null
  start kube-proxy "$BIN/kube-proxy" --config="$STATE/kube-proxy.yaml" --v=1
  wait_for "kube-proxy healthy" curl -sf --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
  wait_for "node $NODE_NAME Ready" kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  coredns_manifest | kubectl apply -f - >/dev/null
  wait_for "CoreDNS ready" kubectl -n kube-system wait --for=condition=Available deploy/coredns --timeout=2s
  metrics_server
  log "real node $NODE_NAME up in $((SECONDS - t0)) s (pods: $POD_CIDR on $BRIDGE; taint $REAL_NODE_TAINT_KEY)"
}

# ---- down: nothing left behind -----------------------------------------------------------------

down() {
  BIN=$CACHE/bin
  # The pods first, through the kubelet: its sandbox teardown runs the CNI DEL (veths, netns,
  # addresses) and unmounts the pods' volumes; stopping the kubelet alone leaves them running.
  if alive kubelet && [ -f "$CLUSTER/kubeconfig" ]; then
    kubectl delete pods --all -A --field-selector "spec.nodeName=$NODE_NAME" --grace-period=2 \
      --wait=false >/dev/null 2>&1 || true
    kubectl delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
    local stopped=0
    for _ in $(seq 1 100); do
      if [ -z "$(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null)" ]; then
        stopped=1
        break
      fi
      sleep 0.2
    done
    [ $stopped = 1 ] || log "containers still running after 20 s; killing them"
  fi
  stop metrics-server
  stop kube-proxy
  stop kubelet
  # Whatever the kubelet did not stop: kill the tasks, remove the sandboxes' network namespaces.
  if alive containerd; then
    local task
    for task in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n k8s.io tasks kill -s KILL "$task" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for task in $(ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n k8s.io tasks delete -f "$task" >/dev/null 2>&1 || true
      ctr -a "$SOCK" -n k8s.io containers delete "$task" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  stop registry
  # Shims of our containerd that outlived it.
  pkill -KILL -f "containerd-shim.*-address $SOCK" 2>/dev/null || true
  local ns
  for ns in /var/run/netns/cni-*; do
    [ -e "$ns" ] || continue
    if ip netns pids "$(basename "$ns")" 2>/dev/null | grep -q .; then continue; fi
    ip netns del "$(basename "$ns")" 2>/dev/null || true
  done
  [ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  clean_kubelet_tables
  nft delete table inet evs-node 2>/dev/null || true
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  if [ -f "$STATE/ip_forward.before" ]; then
    sysctl -qw "net.ipv4.ip_forward=$(cat "$STATE/ip_forward.before")"
  fi
  # The kubelet makes its root directory a shared bind mount; pod volumes live beneath it.
  local m
  for m in $(awk -v p="$STATE/" '$5 ~ "^"p {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  umount -l "$STATE/kubelet" 2>/dev/null || true
  local h
  for h in /sys/fs/cgroup/*/kubepods; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$STATE"
  log "real node down"
}

# The kubelet's iptables-nft canary and firewall chains (KUBE-*): delete a table only when
# nothing but those chains and empty base chains is left in it.
clean_kubelet_tables() {
  local t
  for t in "ip mangle" "ip filter" "ip nat" "ip6 mangle" "ip6 filter" "ip6 nat"; do
    # shellcheck disable=SC2086
    nft list table $t >/dev/null 2>&1 || continue
    # shellcheck disable=SC2086
    if ! nft list table $t | grep -vE '^\s*$|^\s*}|type (filter|nat) hook|KUBE-|chain [A-Z]+ \{|^table|ct status dnat|counter packets 0 bytes 0 (jump|goto)' | grep -q .; then
      # shellcheck disable=SC2086
      nft delete table $t
    fi
  done
}

healthy() {
  local name
  for name in "${COMPONENTS[@]}"; do alive "$name" || return 1; done
}

restart_component() {
  local name=$1 pause=${2:-0} t0=$SECONDS
  BIN=$CACHE/bin
  restart "$name" "$pause"
  case "$name" in
    kubelet) wait_for "kubelet healthy" curl -sf --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" ;;
    containerd) wait_for "containerd" ctr -a "$SOCK" version ;;
    kube-proxy) wait_for "kube-proxy healthy" curl -sf --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" ;;
    metrics-server) wait_for "metrics API available" kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes ;;
    *) die "cannot restart '$name' (known: kubelet containerd kube-proxy metrics-server)" ;;
  esac
  log "$name restarted ($((SECONDS - t0)) s, down for at least $pause s)"
}

# reboot_node BOOT_ID: a reboot as the node's pods see it, without rebooting the machine (the
# control plane and the other session's processes run on it). Played: every node component
# stops at once, every container (pause included) is SIGKILLed, kube-proxy's nftables tables go
# (a reboot empties them), then containerd, the kubelet (which finds every sandbox dead and runs
# each pod again from its first init container, in a new sandbox), kube-proxy and metrics-server
# start. Not played: the kernel, so the page cache keeps what was written (no data is lost) and
# /proc/sys/kernel/random/boot_id keeps its value; the new boot id reaches the containers as the
# fetch step's TEST HOOK EMOTIVOICE_FETCH_BOOT_ID (server/emotivoice_fetch/durability.py), set in
# containerd's base OCI spec (`ctr oci spec` plus the variable), which every container created
# from now on starts from: the fetch step and the server alike see the new boot.
reboot_node() {
  local boot_id=${1:?usage: hack/node.sh reboot BOOT_ID} t0=$SECONDS name pid task
  BIN=$CACHE/bin
  for name in kubelet containerd kube-proxy metrics-server; do
    alive "$name" || die "$name is not running: nothing to reboot"
    pid=$(pid_of "$name")
    cp "/proc/$pid/cmdline" "$STATE/pids/$name.argv"
  done
  stop kubelet
  stop kube-proxy
  stop metrics-server
  for task in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr -a "$SOCK" -n k8s.io tasks kill -s KILL "$task" >/dev/null 2>&1 || true
  done
  stop containerd
  # Not "exited" while down: wait_for dies when a component with a recorded pid has exited.
  for name in kubelet containerd kube-proxy metrics-server; do rm -f "$STATE/pids/$name.pid"; done
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  ctr oci spec | jq --arg id "$boot_id" \
    '.process.env = ((.process.env // []) + ["EMOTIVOICE_FETCH_BOOT_ID=" + $id])' \
    >"$STATE/base-spec.json"
  containerd_config
  local argv=()
  for name in containerd kubelet kube-proxy metrics-server; do
    mv "$STATE/logs/$name.log" "$STATE/logs/$name.log.$(date +%s)"
    mapfile -d '' -t argv <"$STATE/pids/$name.argv"
    start "$name" "${argv[@]}"
    case "$name" in
      containerd) wait_for "containerd" ctr -a "$SOCK" version ;;
      kubelet) wait_for "kubelet healthy" curl -sf --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" ;;
      kube-proxy) wait_for "kube-proxy healthy" curl -sf --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" ;;
    esac
  done
  log "node 'rebooted' in $((SECONDS - t0)) s: containers now see boot id $boot_id"
}

case "${1:-}" in
  check) check ;;
  reboot) reboot_node "${2:-}" ;;
  restart) restart_component "${2:?usage: hack/node.sh restart NAME [PAUSE]}" "${3:-0}" ;;
  healthy) healthy ;;
  registry) registry ;;
  bridge) bridge ;;
  up) up ;;
  down) down ;;
  *)
    echo "usage: hack/node.sh check|bridge|up|healthy|down|registry|restart NAME [PAUSE]|reboot BOOT_ID" >&2
    exit 2
    ;;
esac
