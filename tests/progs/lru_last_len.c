/* LRU_HASH: last packet length and packet count per IPv4 source address. */
#include "common.h"

struct src_val {
	__u32 last_len;
	__u32 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct src_val);
} by_src SEC(".maps");

SEC("xdp")
int lru_last_len(struct xdp_md *ctx)
{
	struct pkt_info pi;
	__u32 len = ctx->data_end - ctx->data;

	if (parse_pkt(ctx, &pi) < 0 || pi.eth_proto != ETH_P_IP)
		return XDP_PASS;
	struct src_val *v = bpf_map_lookup_elem(&by_src, &pi.saddr);
	struct src_val nv = { .last_len = len, .count = 1 };
	if (v)
		nv.count = v->count + 1;
	bpf_map_update_elem(&by_src, &pi.saddr, &nv, BPF_ANY);
	return XDP_PASS;
}
