/* ICMP and ICMPv6 echo responder: an echo request becomes an echo reply (type 8 -> 0,
 * 128 -> 129) with the checksum updated incrementally (RFC 1624), MACs and IPs swapped,
 * sent back with XDP_TX. Everything else passes. */
#include "common.h"

static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 s = (__u16)~bpf_ntohs(check);
	s += (__u16)~old;
	s += new;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return bpf_htons(~s & 0xffff);
}

SEC("xdp")
int icmp_echo(struct xdp_md *ctx)
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
	__u8 *ic = data + (pi.l4_off & 0x1ff);
	if ((void *)(ic + 8) > data_end)
		return XDP_PASS;
	if (pi.eth_proto == ETH_P_IP && pi.l4_proto == IPPROTO_ICMP && ic[0] == 8 && ic[1] == 0) {
		struct iphdr *iph = data + (pi.l3_off & 0xff);
		if ((void *)(iph + 1) > data_end)
			return XDP_ABORTED;
		__be32 a = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = a;
		ic[0] = 0;
		*(__u16 *)(ic + 2) = csum_replace16(*(__u16 *)(ic + 2), 0x0800, 0x0000);
	} else if (pi.eth_proto == ETH_P_IPV6 && pi.l4_proto == IPPROTO_ICMPV6 && ic[0] == 128 &&
		   ic[1] == 0) {
		struct ipv6hdr *ip6 = data + (pi.l3_off & 0xff);
		if ((void *)(ip6 + 1) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(tmp, &ip6->saddr, 16);
		__builtin_memcpy(&ip6->saddr, &ip6->daddr, 16);
		__builtin_memcpy(&ip6->daddr, tmp, 16);
		ic[0] = 129;
		*(__u16 *)(ic + 2) = csum_replace16(*(__u16 *)(ic + 2), 0x8000, 0x8100);
	} else {
		return XDP_PASS;
	}
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}
