#!/usr/bin/env bash
# Builds the tool binaries the tests need from their Go modules and caches them outside the
# clone, keyed by version, so a second run costs seconds.
#
#   hack/build-binaries.sh [NAME...]
#     NAME in: versitygw kwok helm etcd kube-apiserver kube-controller-manager kube-scheduler
#              kubectl kubelet kube-proxy coredns registry metrics-server prometheus promtool, or
#              the groups
#              `cluster` (everything
#              hack/cluster.sh runs for the control plane and its simulated nodes) and `node`
#              (what the real node adds: kubelet, kube-proxy, CoreDNS, the image registry,
#              metrics-server)
#     (default: all)
#
# Prints the directory that holds the binaries on its last line of stdout; progress goes to stderr.
# Cache root: $EVS_CACHE_DIR (default ~/.cache/emotivoice-operator).
# KUBEBUILDER_ASSETS (the envtest convention): when set, any binary found there is used as is
# instead of being built.
set -euo pipefail

CACHE=${EVS_CACHE_DIR:-$HOME/.cache/emotivoice-operator}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOPATH=${GOPATH:-$HOME/go}

# The versions are the single source of truth; docs/development.md states them.
VERSITYGW_VERSION=v1.8.0
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.19.5
# Kubernetes and the etcd release it is paired with (Kubernetes 1.35 pairs with etcd 3.6).
K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.16
# The real node's cluster DNS and the local image registry the node pulls from.
COREDNS_VERSION=v1.15.0
DISTRIBUTION_VERSION=v3.0.0
# Prometheus 3.x (its Go module is tagged v0.3XX.0 for Prometheus 3.XX): the recommendation's
# history and the chart's alert rules are tested against it.
PROMETHEUS_VERSION=v0.316.0
# The resource metrics API the HPA reads on the real node (v0.9.x needs Go >= 1.26.10).
METRICS_SERVER_VERSION=v0.8.1

K8S_NAMES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
# The real node's binaries: their own `go build` and cache directory, so adding them never
# invalidates the control plane's.
K8S_NODE_NAMES=(kubelet kube-proxy)
CLUSTER_NAMES=(etcd "${K8S_NAMES[@]}" kwok)
NODE_GROUP=("${K8S_NODE_NAMES[@]}" coredns registry metrics-server)
ALL_NAMES=(versitygw kwok helm etcd "${K8S_NAMES[@]}" "${NODE_GROUP[@]}" prometheus promtool)

log() { echo ">> $*" >&2; }

# with_lock NAME CMD...: one build per name at a time, even across concurrent callers.
with_lock() {
  local name=$1
  shift
  mkdir -p "$CACHE"
  (
    flock 9
    "$@"
  ) 9>"$CACHE/.$name.lock"
}

# go_install NAME PACKAGE VERSION: for modules without replace directives.
go_install() {
  local name=$1 pkg=$2 version=$3
  local dir="$CACHE/$name-$version"
  if [ -x "$dir/$name" ]; then return 0; fi
  log "building $name $version from its Go module (first time only, cached in $dir)"
  local start=$SECONDS
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  GOBIN="$(cd "$dir.tmp" && pwd)" go install "$pkg@$version"
  mv "$dir.tmp/$(basename "$pkg")" "$dir.tmp/$name" 2>/dev/null || true
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "built $name in $((SECONDS - start)) s"
}

# wrapper_go_mod MODULE@VERSION: prints the path of that release's own go.mod (downloaded through
# the Go module proxy by the ordinary client).
release_go_mod() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p'
}

# build_etcd: go.etcd.io/etcd/server/v3 has relative replace directives, so `go install` refuses
# it; a wrapper module that requires it builds the same main package.
build_etcd() {
  local dir="$CACHE/etcd-$ETCD_VERSION"
  if [ -x "$dir/etcd" ]; then return 0; fi
  log "building etcd $ETCD_VERSION from its Go module (first time only, cached in $dir)"
  local start=$SECONDS
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp/src"
  local gomod go_line
  gomod=$(release_go_mod "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  go_line=$(grep -m1 '^go ' "$gomod")
  printf 'module evs.local/etcd-build\n\n%s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$go_line" "$ETCD_VERSION" >"$dir.tmp/src/go.mod"
  (
    cd "$dir.tmp/src"
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w" -o "$dir.tmp/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$dir.tmp/src"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "built etcd in $((SECONDS - start)) s"
}

# build_k8s: k8s.io/kubernetes requires its staging modules at v0.0.0 and points them at
# ./staging, so it cannot be installed directly. A wrapper module replaces every staging module
# (the `=> ./staging` lines of the release's own go.mod) with its published v0.X.Y release, then
# builds all the binaries in one `go build` so the shared packages compile once.
# build_k8s [SET NAME...]: the default set `k8s` is K8S_NAMES; the node set is `k8s-node`.
build_k8s() {
  local set=k8s names=("${K8S_NAMES[@]}")
  if [ $# -gt 0 ]; then
    set=$1
    shift
    names=("$@")
  fi
  local dir="$CACHE/$set-$K8S_VERSION"
  local K8S_NAMES=("${names[@]}")
  local missing=0 n
  for n in "${K8S_NAMES[@]}"; do [ -x "$dir/$n" ] || missing=1; done
  [ $missing = 1 ] || return 0
  log "building ${K8S_NAMES[*]} $K8S_VERSION from the k8s.io/kubernetes Go module" \
    "(first time only, cached in $dir; about 6 min on 2 cores)"
  local start=$SECONDS
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp/src"
  local gomod staging_version=v0.${K8S_VERSION#v1.}
  gomod=$(release_go_mod "k8s.io/kubernetes@$K8S_VERSION")
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$gomod")
  if [ -z "$staging" ]; then
    echo "no staging replace lines found in $gomod: cannot derive the wrapper module" >&2
    exit 1
  fi
  {
    echo "module evs.local/k8s-build"
    echo
    grep -m1 '^go ' "$gomod"
    grep -m1 '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for n in $staging; do echo "	$n => $n $staging_version"; done
    echo ")"
  } >"$dir.tmp/src/go.mod"
  log "wrapper module replaces $(echo "$staging" | wc -w) staging modules with $staging_version"
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local ldflags="-s -w" key val
  for kv in "gitVersion=$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
    "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    key=${kv%%=*}
    val=${kv#*=}
    ldflags+=" -X k8s.io/component-base/version.$key=$val -X k8s.io/client-go/pkg/version.$key=$val"
  done
  local pkgs=()
  for n in "${K8S_NAMES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
  (
    cd "$dir.tmp/src"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir.tmp/" "${pkgs[@]}"
  )
  rm -rf "$dir.tmp/src"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "built ${K8S_NAMES[*]} in $((SECONDS - start)) s"
}

# from_assets NAME: true when KUBEBUILDER_ASSETS holds NAME (then it is used, not built).
from_assets() {
  [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$1" ]
}

build_one() {
  if from_assets "$1"; then return 0; fi
  case "$1" in
    versitygw) with_lock versitygw go_install versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION" ;;
    kwok) with_lock kwok go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" ;;
    helm) with_lock helm go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    etcd) with_lock etcd build_etcd ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) with_lock k8s build_k8s ;;
    kubelet | kube-proxy) with_lock k8s-node build_k8s k8s-node "${K8S_NODE_NAMES[@]}" ;;
    coredns) with_lock coredns go_install coredns github.com/coredns/coredns "$COREDNS_VERSION" ;;
    registry) with_lock registry go_install registry github.com/distribution/distribution/v3/cmd/registry "$DISTRIBUTION_VERSION" ;;
    metrics-server) with_lock metrics-server go_install metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" ;;
    # promtool first: it fetches the modules prometheus shares (about 4 min, then 1 min).
    promtool) with_lock promtool go_install promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION" ;;
    prometheus) with_lock prometheus go_install prometheus github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_VERSION" ;;
    *) echo "unknown binary '$1' (known: ${ALL_NAMES[*]} cluster node)" >&2; exit 2 ;;
  esac
}

bin_dir() {
  if from_assets "$1"; then
    (cd "$KUBEBUILDER_ASSETS" && pwd)
    return
  fi
  case "$1" in
    versitygw) echo "$CACHE/versitygw-$VERSITYGW_VERSION" ;;
    kwok) echo "$CACHE/kwok-$KWOK_VERSION" ;;
    helm) echo "$CACHE/helm-$HELM_VERSION" ;;
    etcd) echo "$CACHE/etcd-$ETCD_VERSION" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "$CACHE/k8s-$K8S_VERSION" ;;
    kubelet | kube-proxy) echo "$CACHE/k8s-node-$K8S_VERSION" ;;
    coredns) echo "$CACHE/coredns-$COREDNS_VERSION" ;;
    registry) echo "$CACHE/registry-$DISTRIBUTION_VERSION" ;;
    metrics-server) echo "$CACHE/metrics-server-$METRICS_SERVER_VERSION" ;;
    promtool) echo "$CACHE/promtool-$PROMETHEUS_VERSION" ;;
    prometheus) echo "$CACHE/prometheus-$PROMETHEUS_VERSION" ;;
  esac
}

if [ "${1:-}" = "--versions" ]; then
  # For scripts and docs that state the versions: one NAME=VERSION per line.
  printf 'K8S_VERSION=%s\nETCD_VERSION=%s\nKWOK_VERSION=%s\nHELM_VERSION=%s\nVERSITYGW_VERSION=%s\nCOREDNS_VERSION=%s\nDISTRIBUTION_VERSION=%s\nPROMETHEUS_VERSION=%s\nMETRICS_SERVER_VERSION=%s\n' \
    "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" "$HELM_VERSION" "$VERSITYGW_VERSION" \
    "$COREDNS_VERSION" "$DISTRIBUTION_VERSION" "$PROMETHEUS_VERSION" "$METRICS_SERVER_VERSION"
  exit 0
fi

names=()
for arg in "$@"; do
  case "$arg" in
    cluster) names+=("${CLUSTER_NAMES[@]}") ;;
    node) names+=("${NODE_GROUP[@]}") ;;
    *) names+=("$arg") ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=("${ALL_NAMES[@]}")
for n in "${names[@]}"; do
  case " ${ALL_NAMES[*]} " in
    *" $n "*) ;;
    *) echo "unknown binary '$n' (known: ${ALL_NAMES[*]} cluster node)" >&2; exit 2 ;;
  esac
done
total_start=$SECONDS
for n in "${names[@]}"; do build_one "$n"; done
# Collect every requested binary in one directory (symlinks), the KUBEBUILDER_ASSETS convention.
# A KUBEBUILDER_ASSETS mix gets its own directory, so it never redirects another caller's links.
out="$CACHE/bin"
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  out="$CACHE/bin-assets-$(echo "$KUBEBUILDER_ASSETS" | sha1sum | cut -c1-12)"
fi
mkdir -p "$out"
for n in "${names[@]}"; do
  target="$(bin_dir "$n")/$n"
  [ "$(readlink "$out/$n" 2>/dev/null)" = "$target" ] && continue
  # Atomic replacement: a concurrent reader never finds the link missing.
  ln -sfn "$target" "$out/.$n.$$" && mv -Tf "$out/.$n.$$" "$out/$n"
done
log "binaries ready in $out ($((SECONDS - total_start)) s)"
echo "$out"
