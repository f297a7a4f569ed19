/* bpf_xdp_adjust_head: untagged IPv4 frames get an 802.1Q tag (VID 100) pushed
 * (adjust_head -4, MACs moved), tagged frames have their outer tag popped (adjust_head +4).
 * Others pass unchanged. Also checks that an impossible adjust_head (growing past the
 * headroom) fails with -EINVAL and records it in .bss. */
#include "common.h"

int bad_adjust_ret = 0;   /* .bss */

SEC("xdp")
int vlan_push_pop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 macs[12];

	bad_adjust_ret = bpf_xdp_adjust_head(ctx, -4096);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(macs, eth, 12);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		if (bpf_xdp_adjust_head(ctx, -4))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		__u8 *p = data;
		if ((void *)(p + 18) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(p, macs, 12);
		struct vlan_hdr *vh = (void *)(p + 12);
		vh->tci = bpf_htons(ETH_P_8021Q_);  /* TPID */
		vh->encap_proto = bpf_htons(100);   /* TCI: VID 100 */
		return XDP_PASS;
	}
	if (eth->h_proto == bpf_htons(ETH_P_8021Q_) || eth->h_proto == bpf_htons(ETH_P_8021AD_)) {
		if ((void *)((__u8 *)data + 18) > data_end)
			return XDP_DROP;
		if (bpf_xdp_adjust_head(ctx, 4))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		__u8 *p = data;
		if ((void *)(p + 12) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(p, macs, 12);
		return XDP_PASS;
	}
	return XDP_PASS;
}
