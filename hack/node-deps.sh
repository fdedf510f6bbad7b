#!/usr/bin/env bash
# Installs the Debian packages the real node (hack/node.sh) and the image builds
# (hack/images.sh) need, when missing: containerd, runc, the CNI plugins, nftables, buildah,
# mmdebstrap, and a static C library for the pause binary. Root only (CI machines are root);
# elsewhere it says so and exits 0, and the tests that need the real node are skipped.
set -euo pipefail
if [ "$(id -u)" != 0 ] || [ "$(uname -s)" != Linux ]; then
  echo ">> not root on Linux: no real node here (the end-to-end tests will say they are skipped)" >&2
  exit 0
fi
missing=()
need() { command -v "$1" >/dev/null 2>&1 || [ -e "$1" ] || missing+=("$2"); }
need containerd containerd
need runc runc
need /usr/lib/cni/bridge containernetworking-plugins
need nft nftables
need iptables iptables
need ip iproute2
need conntrack conntrack
need buildah buildah
need mmdebstrap mmdebstrap
need gcc gcc
need /usr/lib/x86_64-linux-gnu/libc.a libc6-dev
need curl curl
need openssl openssl
if [ ${#missing[@]} -gt 0 ]; then
  echo ">> installing Debian packages for the real node: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
