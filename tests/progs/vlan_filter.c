/* HASH set of allowed VLAN ids (filled by user space): untagged -> PASS, allowed outer
 * VID -> PASS (counted per VID), unknown VID -> DROP, truncated tag -> ABORTED. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} allowed_vids SEC(".maps");

SEC("xdp")
int vlan_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_8021Q_) && eth->h_proto != bpf_htons(ETH_P_8021AD_))
		return XDP_PASS;
	struct vlan_hdr *vh = (void *)(eth + 1);
	if ((void *)(vh + 1) > data_end)
		return XDP_ABORTED;
	__u32 vid = bpf_ntohs(vh->tci) & 0xfff;
	__u64 *n = bpf_map_lookup_elem(&allowed_vids, &vid);
	if (!n)
		return XDP_DROP;
	__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}
