// SPDX-License-Identifier: GPL-2.0 OR MIT
// DEVMAP forwarder: redirects every packet received on an interface to the
// interface stored in `tx_port[0]` (set by the loader or with bpftool).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_port SEC(".maps");

SEC("xdp")
int xdp_devmap_forward(struct xdp_md *ctx)
{
	return bpf_redirect_map(&tx_port, 0, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
