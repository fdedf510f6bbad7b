#!/usr/bin/env bash
# Builds the images without any image registry to pull from, and pushes them to the real
# node's local registry (hack/node.sh), where the kubelet pulls them like any other image.
#
#   hack/images.sh [NAME...]     NAME in: pause coredns s3 operator server server-cpu, or all;
#                                default: what the tests run (operator server-cpu s3; this
#                                machine has no GPU). Prints NAME=REFERENCE lines. server is
#                                the CUDA variant, server-cpu the CPU one (server/Dockerfile's
#                                TORCH_VARIANT); `make images` builds all
#   hack/images.sh --refs [NAME...]
#                                the references only, without building (the tags are hashes);
#                                default: every image
#
# How: a Debian bookworm base with Python made by mmdebstrap from Debian's packages (cached
# as a tar by a hash of its package list), then buildah (runc, host network, --pull=never) for
# operator/Dockerfile and server/Dockerfile with their base image given as a build argument,
# each with the ignore file BuildKit would read for it (<Dockerfile>.dockerignore, else the
# root's .dockerignore): buildah reads neither by itself, which once hid a broken context.
# pause is a static C binary in an empty image; coredns and s3 (versitygw) are Go binaries of
# hack/build-binaries.sh on the base. Each tag is a hash of what goes into the image, so an
# image already in the registry is neither built nor pushed again (a second run: seconds).
# TLS to the package registries passes through this machine's intercepting proxy: the host's
# CA bundle and pip config are mounted into the builds read-only, never copied into an image.
# Needs root (buildah's overlay mounts). Pushes to the real node's registry when it runs, else
# to one it starts for the while (the same blobs on disk, so the node finds them later).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${EVS_CACHE_DIR:-$HOME/.cache/emotivoice-operator}
# shellcheck source=hack/node.env
source "$REPO/hack/node.env"
IMAGES=$CACHE/images
BUILDAH=(buildah --root "$IMAGES/buildah/root" --runroot "$IMAGES/buildah/run"
  --storage-driver overlay)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
BASE_PACKAGES=python3,python3-venv,ca-certificates

# What the tests run (tests/support/realnode.py builds the default), and every image there is.
TEST_IMAGES=(operator server-cpu s3)
ALL_IMAGES=(pause coredns operator server-cpu server s3)

log() { echo ">> $*" >&2; }
die() {
  echo "images.sh: $*" >&2
  exit 1
}

hash_of() { sha256sum | cut -c1-12; }

# Every file under the given paths (as the build context sees them), hashed by content.
tree_hash() {
  (
    cd "$REPO"
    find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 |
      sort -z | xargs -0 sha256sum
  ) | hash_of
}

in_registry() { # in_registry NAME TAG
  curl -sf --max-time 5 -o /dev/null -I \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_ADDR/v2/$1/manifests/$2"
}

push() { # push LOCAL_NAME REPO_PATH TAG
  # Asks for uncompressed layers (the registry and the node share this disk, gzip only costs
  # CPU); buildah 1.28 still sends the gzip layers it has stored (the manifests say tar+gzip).
  "${BUILDAH[@]}" push --quiet --tls-verify=false --disable-compression \
    "$1" "docker://$REGISTRY_ADDR/$2:$3" >/dev/null
}

# ---- the base: Debian bookworm + Python 3.11, from Debian's packages ---------------------------

base_ref() { echo "localhost/evs/base-python:$(echo "bookworm minbase $BASE_PACKAGES v1" | hash_of)"; }

ensure_base() {
  local ref tar
  ref=$(base_ref)
  tar="$IMAGES/${ref##*:}-base.tar"
  if "${BUILDAH[@]}" inspect --type image "$ref" >/dev/null 2>&1; then return 0; fi
  if [ ! -s "$tar" ]; then
    log "making the base image with mmdebstrap (bookworm minbase + $BASE_PACKAGES; first time, ~1 min)"
    mkdir -p "$IMAGES"
    mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/info/*' bookworm "$tar.tmp" >&2
    mv "$tar.tmp" "$tar"
  fi
  local ctr
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$tar" / >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$ref" >/dev/null
  log "base image $ref"
}

# ---- the images ---------------------------------------------------------------------------------

ref_of() { # ref_of NAME: the full reference, tag = hash of its inputs
  local bin
  bin=$(bash "$REPO/hack/build-binaries.sh" --versions)
  case "$1" in
    pause) echo "$PAUSE_IMAGE" ;;
    coredns) echo "$COREDNS_IMAGE" ;;
    s3) echo "$REGISTRY/evs/versitygw:$(echo "$bin" | grep VERSITYGW | cut -d= -f2)-$(base_ref | hash_of)" ;;
    operator) echo "$REGISTRY/emotivoice/operator:$( (tree_hash operator/Dockerfile .dockerignore pyproject.toml README.md crds operator server; base_ref) | hash_of)" ;;
    server) echo "$REGISTRY/emotivoice/server:$( (server_inputs; echo cuda) | hash_of)" ;;
    server-cpu) echo "$REGISTRY/emotivoice/server:$( (server_inputs; echo cpu) | hash_of)-cpu" ;;
    *) die "unknown image '$1' (known: pause coredns s3 operator server server-cpu)" ;;
  esac
}

server_inputs() {
  tree_hash server/Dockerfile server/Dockerfile.dockerignore pyproject.toml README.md crds operator server
  base_ref
}

# The ignore file BuildKit reads for a Dockerfile: its own, else the context's.
ignore_file_of() { if [ -f "$REPO/$1.dockerignore" ]; then echo "$1.dockerignore"; else echo .dockerignore; fi; }

build_pause() {
  local work ctr
  work=$(mktemp -d)
  gcc -O2 -static -o "$work/pause" "$REPO/hack/pause.c"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$ctr" "$work/pause" /pause >/dev/null
  "${BUILDAH[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "evs-build/pause" >/dev/null
  rm -rf "$work"
}

build_on_base() { # build_on_base NAME BINARY ENTRYPOINT_JSON
  local ctr
  ensure_base
  ctr=$("${BUILDAH[@]}" from --pull=never "$(base_ref)")
  "${BUILDAH[@]}" copy "$ctr" "$2" "/usr/local/bin/$(basename "$2")" >/dev/null
  "${BUILDAH[@]}" config --entrypoint "$3" --user 65532:65532 --workingdir /tmp "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "evs-build/$1" >/dev/null
}

build_dockerfile() { # build_dockerfile NAME DOCKERFILE BASE_ARG [BUILD_ARG=VALUE...]
  ensure_base
  local extra=()
  for a in "${@:4}"; do extra+=(--build-arg "$a"); done
  local mounts=(-v "$CA_BUNDLE:$CA_BUNDLE:ro")
  [ ! -f /etc/pip.conf ] || mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
  # The host's pip cache: torch's wheels (GBs) are downloaded once for the venv and the image.
  mkdir -p "$HOME/.cache/pip"
  mounts+=(-v "$HOME/.cache/pip:/root/.cache/pip")
  local build_log="$IMAGES/build-$1.log"
  log "buildah build -f $2 (log: $build_log)"
  if ! (
    cd "$REPO"
    "${BUILDAH[@]}" build --layers --pull=never --network=host --runtime=/usr/sbin/runc \
      --isolation=oci "${mounts[@]}" --ignorefile "$(ignore_file_of "$2")" \
      --build-arg "$3=$(base_ref)" --build-arg PIP_CACHE_FLAG= "${extra[@]}" \
      -f "$2" -t "evs-build/$1" . >"$build_log" 2>&1
  ); then
    tail -n 30 "$build_log" >&2
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true # its working container holds GBs
    die "building $1 failed (log: $build_log)"
  fi
}

build() { # build NAME: built and in the registry under ref_of NAME
  local name=$1 ref path tag t0=$SECONDS
  ref=$(ref_of "$name")
  path=${ref#"$REGISTRY"/}
  tag=${path##*:}
  path=${path%:*}
  if in_registry "$path" "$tag"; then
    echo "$name=$ref"
    return 0
  fi
  log "building image $name ($ref)"
  local bin
  case "$name" in
    pause) build_pause ;;
    coredns)
      bin=$(bash "$REPO/hack/build-binaries.sh" coredns | tail -n1)
      build_on_base coredns "$bin/coredns" '["/usr/local/bin/coredns"]'
      ;;
    s3)
      bin=$(bash "$REPO/hack/build-binaries.sh" versitygw | tail -n1)
      build_on_base s3 "$bin/versitygw" '["/usr/local/bin/versitygw"]'
      ;;
    operator) build_dockerfile operator operator/Dockerfile PYTHON_BASE ;;
    server) build_dockerfile server server/Dockerfile CUDA_BASE TORCH_VARIANT=cuda ;;
    server-cpu) build_dockerfile server-cpu server/Dockerfile CUDA_BASE TORCH_VARIANT=cpu ;;
  esac
  push "evs-build/$name" "$path" "$tag"
  log "image $name built and pushed in $((SECONDS - t0)) s ($(image_size "evs-build/$name"))"
  echo "$name=$ref"
}

image_size() {
  "${BUILDAH[@]}" images --format '{{.Size}}' "$1" 2>/dev/null | head -n1 || true
}

if [ "${1:-}" = --refs ]; then
  shift
  [ $# -gt 0 ] || set -- "${ALL_IMAGES[@]}"
  for n in "$@"; do echo "$n=$(ref_of "$n")"; done
  exit 0
fi
[ "$(id -u)" = 0 ] || die "needs root (buildah's overlay mounts); the images are for the real node"
# The real node's registry, or one of our own for this run (same blobs, stopped at exit).
if ! curl -sf --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null; then
  mkdir -p "$IMAGES"
  setsid bash "$REPO/hack/node.sh" registry >"$IMAGES/registry.log" 2>&1 </dev/null &
  registry_pid=$!
  trap 'kill "$registry_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    curl -sf --max-time 1 "http://$REGISTRY_ADDR/v2/" >/dev/null && break
    kill -0 "$registry_pid" 2>/dev/null || die "the registry did not start: $(tail -5 "$IMAGES/registry.log")"
    sleep 0.2
  done
fi
mkdir -p "$IMAGES"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${TEST_IMAGES[@]}")
[ "${names[*]}" != all ] || names=("${ALL_IMAGES[@]}")
for n in "${names[@]}"; do build "$n"; done
# Disk stays bounded (every changed build leaves GBs behind): working containers of failed builds
# and images no tag names go; the registry keeps what the node pulls. The cost: a later change
# re-runs every step of its Dockerfile (pip from the host's cache), not only the changed ones.
"${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
"${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
# The registry keeps the current tags only (hack/prune-images.sh).
bash "$REPO/hack/prune-images.sh" registry
