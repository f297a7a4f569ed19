/* ARRAY and PERCPU_ARRAY: per-class packet counters (atomic add) and per-class byte counts. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} class_pkts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} class_bytes SEC(".maps");

SEC("xdp")
int class_counters(struct xdp_md *ctx)
{
	struct pkt_info pi;
	__u32 len = ctx->data_end - ctx->data;

	parse_pkt(ctx, &pi);
	__u32 c = pkt_class(&pi);
	__u64 *n = bpf_map_lookup_elem(&class_pkts, &c);
	if (n)
		__sync_fetch_and_add(n, 1);
	__u64 *b = bpf_map_lookup_elem(&class_bytes, &c);
	if (b)
		*b += len;
	if (pi.vlans) {
		c = C_VLAN;
		n = bpf_map_lookup_elem(&class_pkts, &c);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return XDP_PASS;
}
