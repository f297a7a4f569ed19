/* ARRAY_OF_MAPS: outer[0] (IPv4) and outer[1] (IPv6) hold inner ARRAY maps set by user
 * space; the program counts L4 classes in the inner map. A missing inner map -> DROP. */
#include "common.h"

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner inner_v4 SEC(".maps");
struct inner inner_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps");

SEC("xdp")
int map_in_map(struct xdp_md *ctx)
{
	struct pkt_info pi;

	parse_pkt(ctx, &pi);
	__u32 okey;
	if (pi.eth_proto == ETH_P_IP)
		okey = 0;
	else if (pi.eth_proto == ETH_P_IPV6)
		okey = 1;
	else
		okey = 2; /* empty slot */
	void *in = bpf_map_lookup_elem(&outer, &okey);
	if (!in)
		return XDP_DROP;
	__u32 c = pkt_class(&pi);
	__u64 *v = bpf_map_lookup_elem(in, &c);
	if (v)
		__sync_fetch_and_add(v, 1);
	return XDP_PASS;
}
