#!/usr/bin/env bash
# Keeps the image stores' disk bounded. Every content change gives an image a new tag (a hash,
# hack/images.sh), and nothing removed the old ones: one session's rebuilds left 12 GB in the
# registry and 25 GB in containerd, and the next CI run's CUDA build ran out of disk.
#
#   hack/prune-images.sh registry     delete the tags of ours that hack/images.sh would not build
#                                     now, then the registry's garbage collection (untagged
#                                     manifests and the blobs no manifest names)
#   hack/prune-images.sh containerd SOCKET
#                                     remove every image in the node's containerd that no current
#                                     reference names (node.sh up calls it before the kubelet
#                                     starts, so no container uses one); containerd then
#                                     collects their content and snapshots
#
# "Current" = hack/images.sh --refs for every image it knows, from this checkout's files: two
# checkouts with different trees sharing this cache prune each other's images (the next run
# rebuilds them: about a minute for a code change, the pip cache makes the rest). Safe while the registry runs:
# hack/images.sh is its only writer and calls this after its pushes, and the registry keeps no
# blob cache (hack/node.sh's registry.yml has none) that could outlive a collected blob.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${EVS_CACHE_DIR:-$HOME/.cache/emotivoice-operator}
KEEP=$CACHE/node
# shellcheck source=hack/node.env
source "$REPO/hack/node.env"

log() { echo ">> $*" >&2; }
die() {
  echo "prune-images.sh: $*" >&2
  exit 1
}

# The references every image has now, one per line (REGISTRY/PATH:TAG).
current_refs() { bash "$REPO/hack/images.sh" --refs | cut -d= -f2-; }

prune_registry() {
  local tags=$KEEP/registry/docker/registry/v2/repositories keep removed=0
  [ -d "$tags" ] || return 0
  [ -f "$KEEP/registry.yml" ] || die "no $KEEP/registry.yml (hack/node.sh registry writes it)"
  keep=$(current_refs)
  local dir repo tag
  while IFS= read -r dir; do
    repo=${dir#"$tags"/}
    repo=${repo%/_manifests/tags/*}
    tag=${dir##*/}
    if ! grep -qxF "$REGISTRY/$repo:$tag" <<<"$keep"; then
      rm -rf "$dir"
      removed=$((removed + 1))
    fi
  done < <(find "$tags" -mindepth 4 -maxdepth 6 -type d -path '*/_manifests/tags/*' -prune)
  [ "$removed" -gt 0 ] || return 0
  local before after
  before=$(du -sm "$KEEP/registry" | cut -f1)
  "$(bash "$REPO/hack/build-binaries.sh" registry | tail -n1)/registry" garbage-collect \
    --delete-untagged "$KEEP/registry.yml" >/dev/null 2>&1 ||
    die "the registry's garbage collection failed"
  after=$(du -sm "$KEEP/registry" | cut -f1)
  log "registry: $removed stale tags removed, $((before - after)) MB freed"
}

prune_containerd() {
  local sock=$1 keep listing keep_digests stale
  keep=$(current_refs)
  listing=$(ctr -a "$sock" -n k8s.io images ls 2>/dev/null | tail -n +2 | awk '{print $1, $3}')
  # An image is named several ways (NAME:TAG, NAME@DIGEST, sha256:ID), all with one digest: an
  # image stays when any current reference names its digest.
  keep_digests=$(awk 'NR==FNR {keep[$0]=1; next} ($1 in keep) {print $2}' \
    <(echo "$keep") <(echo "$listing") | sort -u)
  stale=$(awk 'NR==FNR {if ($0 != "") keep[$0]=1; next} !($2 in keep) {print $1}' \
    <(echo "$keep_digests") <(echo "$listing"))
  [ -n "$stale" ] || return 0
  # shellcheck disable=SC2086
  ctr -a "$sock" -n k8s.io images rm --sync $stale >/dev/null
  log "containerd: $(wc -l <<<"$stale") stale image names removed"
}

case "${1:-}" in
  registry) prune_registry ;;
  containerd)
    [ -n "${2:-}" ] || die "usage: hack/prune-images.sh containerd SOCKET"
    prune_containerd "$2"
    ;;
  *)
    echo "usage: hack/prune-images.sh registry | containerd SOCKET" >&2
    exit 2
    ;;
esac
