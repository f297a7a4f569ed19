#!/usr/bin/env bash
# The README's first command: the xdp-counter demo.
#
# Builds bpftime and the example, makes a throwaway pair of network namespaces joined
# by a veth pair, runs the unmodified libbpf loader under `bpftime-run`, sends traffic
# from the peer namespace, shows the counts rising (from the loader, from
# `bpftool map dump pinned`, and from `bpftime status`), and cleans everything up.
#
#   sudo bash examples/demo.sh            # under bpftime
#   sudo bash examples/demo.sh --kernel   # the same loader on the real kernel, to compare
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode=${1:-bpftime}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo bash examples/demo.sh)" >&2; exit 1; }

bash tests/install-deps.sh
# BPFTIME_BIN_DIR: use already built binaries (the end-to-end test does).
bindir=${BPFTIME_BIN_DIR:-$root/target/release}
if [ -z "${BPFTIME_BIN_DIR:-}" ]; then
  echo "== building bpftime (release; the first build takes a few minutes)"
  cargo build --release -q -p bpftime-supervisor
fi
echo "== building the xdp-counter example"
out=$(mktemp -d /tmp/bpftime-demo.XXXXXX)
OUT=$out bash examples/xdp-counter/build.sh >/dev/null

tag=$$
nsA=bpftime-demo-a-$tag; nsB=bpftime-demo-b-$tag
sock=$out/bpftimed.sock
cleanup() {
  set +e
  [ "$mode" = bpftime ] && "$bindir/bpftime" --socket "$sock" stop >/dev/null 2>&1
  ip netns del "$nsA" 2>/dev/null; ip netns del "$nsB" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do mountpoint -q "$out/bpffs" || break; sleep 0.2; done
  umount -l "$out/bpffs" 2>/dev/null
  rm -rf "$out"
}
trap cleanup EXIT
ip netns add "$nsA"; ip netns add "$nsB"
ip link add veth0 netns "$nsA" type veth peer name veth1 netns "$nsB"
ip -n "$nsA" addr add 10.199.0.1/24 dev veth0; ip -n "$nsB" addr add 10.199.0.2/24 dev veth1
ip -n "$nsA" link set veth0 up; ip -n "$nsB" link set veth1 up

loader=("$out/xdp-counter" "$out/xdp_counter.bpf.o" veth0 --seconds 6 --attach link)
if [ "$mode" = --kernel ]; then
  echo "== running the loader on the real kernel (namespace $nsA)"
  unshare -m --propagation private sh -c "mount -t bpf bpf /sys/fs/bpf && exec nsenter --net=/run/netns/$nsA $(printf '%q ' "${loader[@]}")" &
else
  echo "== running the unmodified loader under bpftime-run (namespace $nsA)"
  "$bindir/bpftime-run" --socket "$sock" -- nsenter --net="/run/netns/$nsA" "${loader[@]}" &
fi
loader_pid=$!
sleep 1.5
echo "== sending traffic from $nsB: ping and UDP"
ip netns exec "$nsB" ping -c 5 -i 0.2 -q 10.199.0.1 || true
for i in 1 2 3; do ip netns exec "$nsB" bash -c "echo hello $i > /dev/udp/10.199.0.1/9999" || true; done
sleep 1
if [ "$mode" = bpftime ]; then
  echo "== bpftool map dump pinned /sys/fs/bpf/xdp_counter (bpftool under bpftime-run)"
  "$bindir/bpftime-run" --socket "$sock" -- bpftool map dump pinned /sys/fs/bpf/xdp_counter || true
  echo "== bpftime status"
  "$bindir/bpftime" --socket "$sock" status || true
fi
wait "$loader_pid"
echo "== done"
