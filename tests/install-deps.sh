#!/usr/bin/env bash
# Installs what bpftime's build, demo and tests need on Debian (idempotent, quiet
# when everything is already there).
set -euo pipefail
pkgs=(clang-19 clang llvm libbpf-dev bpftool iproute2 xdp-tools libelf-dev zlib1g-dev
      pkg-config libfuse3-dev fuse3 tcpdump gcc make iputils-ping netcat-openbsd
      golang-go golang-github-cilium-ebpf-dev golang-github-vishvananda-netlink-dev iperf3 tmux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest missing: installing it from crates.io" >&2
  cargo install --locked cargo-nextest >/dev/null 2>&1 || true
fi
