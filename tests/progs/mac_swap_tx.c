/* XDP_TX with a MAC swap: IPv4 and IPv6 frames (any VLAN tags) get source and destination
 * MAC and IP addresses swapped and are bounced; everything else passes unchanged. */
#include "common.h"

SEC("xdp")
int mac_swap_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct pkt_info pi;
	__u8 tmp[16];

	if (parse_pkt(ctx, &pi) < 0)
		return XDP_PASS;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (pi.eth_proto == ETH_P_IP) {
		struct iphdr *iph = data + (pi.l3_off & 0xff);
		if ((void *)(iph + 1) > data_end)
			return XDP_ABORTED;
		__be32 a = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = a;
	} else if (pi.eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + (pi.l3_off & 0xff);
		if ((void *)(ip6 + 1) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(tmp, &ip6->saddr, 16);
		__builtin_memcpy(&ip6->saddr, &ip6->daddr, 16);
		__builtin_memcpy(&ip6->daddr, tmp, 16);
	} else {
		return XDP_PASS;
	}
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}
