#!/usr/bin/env bash
# Builds the tool binaries the tests need from their Go modules and caches them outside the
# clone, keyed by version, so a second run costs seconds.
#
#   hack/build-binaries.sh [NAME...]     NAME in: versitygw kwok helm   (default: all)
#
# Prints the directory that holds the binaries on its last line of stdout.
# Cache root: $EVS_CACHE_DIR (default ~/.cache/emotivoice-operator).
set -euo pipefail

CACHE=${EVS_CACHE_DIR:-$HOME/.cache/emotivoice-operator}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOPATH=${GOPATH:-$HOME/go}

# One line per tool: name, Go package, version. The versions are the single source of truth;
# README.md states them.
VERSITYGW_VERSION=v1.8.0
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.19.5

log() { echo ">> $*" >&2; }

# go_install NAME PACKAGE VERSION: for modules without replace directives.
go_install() {
  local name=$1 pkg=$2 version=$3
  local dir="$CACHE/$name-$version"
  if [ -x "$dir/$name" ]; then return 0; fi
  log "building $name $version from its Go module (first time only, cached in $dir)"
  local start=$SECONDS
  mkdir -p "$dir.tmp"
  GOBIN="$(cd "$dir.tmp" && pwd)" go install "$pkg@$version"
  mv "$dir.tmp/$(basename "$pkg")" "$dir.tmp/$name" 2>/dev/null || true
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "built $name in $((SECONDS - start)) s"
}

build_one() {
  case "$1" in
    versitygw) go_install versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION" ;;
    kwok) go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" ;;
    helm) go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    *) echo "unknown binary '$1'" >&2; exit 2 ;;
  esac
}

bin_dir() {
  case "$1" in
    versitygw) echo "$CACHE/versitygw-$VERSITYGW_VERSION" ;;
    kwok) echo "$CACHE/kwok-$KWOK_VERSION" ;;
    helm) echo "$CACHE/helm-$HELM_VERSION" ;;
  esac
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(versitygw kwok helm)
for n in "${names[@]}"; do build_one "$n"; done
# Collect every requested binary in one directory (symlinks), the KUBEBUILDER_ASSETS convention.
out="$CACHE/bin"
mkdir -p "$out"
for n in "${names[@]}"; do ln -sf "$(bin_dir "$n")/$n" "$out/$n"; done
echo "$out"
