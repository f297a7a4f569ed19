/* HASH: IPv4 5-tuple flow table {packets, bytes}; new flows inserted with BPF_NOEXIST. */
#include "common.h"

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_val {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

SEC("xdp")
int flow_hash(struct xdp_md *ctx)
{
	struct pkt_info pi;
	struct flow_key k = {};
	__u32 len = ctx->data_end - ctx->data;

	if (parse_pkt(ctx, &pi) < 0 || pi.eth_proto != ETH_P_IP)
		return XDP_PASS;
	k.saddr = pi.saddr;
	k.daddr = pi.daddr;
	k.sport = pi.sport;
	k.dport = pi.dport;
	k.proto = pi.l4_proto;
	struct flow_val *v = bpf_map_lookup_elem(&flows, &k);
	if (v) {
		__sync_fetch_and_add(&v->packets, 1);
		__sync_fetch_and_add(&v->bytes, len);
	} else {
		struct flow_val nv = { .packets = 1, .bytes = len };
		if (bpf_map_update_elem(&flows, &k, &nv, BPF_NOEXIST))
			return XDP_ABORTED;
	}
	return XDP_PASS;
}
