/* bpf_csum_diff: IPv4 (IHL 5) TTL decrement with the header checksum recomputed by
 * csum_diff over the header, and UDP port 53 -> 5353 with an incremental csum_diff update
 * of the UDP checksum. TTL <= 1 -> DROP; rewritten frames -> TX; others PASS unchanged. */
#include "common.h"

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

SEC("xdp")
int csum_rewrite(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt_info pi;

	if (parse_pkt(ctx, &pi) < 0 || pi.eth_proto != ETH_P_IP)
		return XDP_PASS;
	struct iphdr *iph = data + (pi.l3_off & 0xff);
	if ((void *)(iph + 1) > data_end)
		return XDP_ABORTED;
	if (iph->ihl != 5)
		return XDP_PASS;
	if (iph->ttl <= 1)
		return XDP_DROP;
	iph->ttl--;
	iph->check = 0;
	__s64 s = bpf_csum_diff(0, 0, (__be32 *)iph, sizeof(*iph), 0);
	if (s < 0)
		return XDP_ABORTED;
	iph->check = csum_fold(s);
	if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);
		if ((void *)(uh + 1) > data_end)
			return XDP_ABORTED;
		if (uh->dest == bpf_htons(53)) {
			__be32 from = *(__be32 *)uh;
			uh->dest = bpf_htons(5353);
			__be32 to = *(__be32 *)uh;
			if (uh->check) {
				__u16 c;
				s = bpf_csum_diff(&from, 4, &to, 4, (__u16)~uh->check);
				if (s < 0)
					return XDP_ABORTED;
				c = csum_fold(s);
				uh->check = c ? c : 0xffff;
			}
		}
	}
	return XDP_TX;
}
