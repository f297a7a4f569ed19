/* Every XDP verdict chosen by protocol: TCP -> PASS, UDP -> DROP (port 7777 -> bpf_redirect
 * to ifindex 1: REDIRECT; port 7778 -> bpf_redirect with flags: ABORTED), ICMP/ICMPv6 -> TX,
 * malformed -> ABORTED, other L4 -> DROP, non-IP -> PASS. */
#include "common.h"

SEC("xdp")
int verdict_by_proto(struct xdp_md *ctx)
{
	struct pkt_info pi;

	parse_pkt(ctx, &pi);
	switch (pkt_class(&pi)) {
	case C_MALFORMED:
		return XDP_ABORTED;
	case C_TCP:
		return XDP_PASS;
	case C_UDP:
		if (pi.dport == 7777)
			return bpf_redirect(1, 0);
		if (pi.dport == 7778)
			return bpf_redirect(1, 1); /* non-zero flags: the kernel answers ABORTED */
		return XDP_DROP;
	case C_ICMP:
	case C_ICMPV6:
		return XDP_TX;
	case C_OTHER_L4:
		return XDP_DROP;
	default:
		return XDP_PASS;
	}
}
