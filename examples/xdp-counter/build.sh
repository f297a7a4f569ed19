#!/usr/bin/env bash
# Builds the xdp-counter example: the BPF object (clang-19) and the loader,
# dynamically linked and fully static. Output goes to $OUT (default ./build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/build}
mkdir -p "$out"
clang-19 -O2 -g -target bpf -mcpu=v3 -I/usr/include/x86_64-linux-gnu \
  -c "$here/xdp_counter.bpf.c" -o "$out/xdp_counter.bpf.o"
gcc -O2 -Wall -o "$out/xdp-counter" "$here/loader.c" -lbpf
gcc -O2 -Wall -static -o "$out/xdp-counter-static" "$here/loader.c" -lbpf -lelf -lz
echo "$out"
