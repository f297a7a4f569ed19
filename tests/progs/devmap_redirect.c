/* DEVMAP + bpf_redirect_map: UDP/TCP packets go to tx_ports[dport % 4]; slot 0 holds
 * ifindex 1 (lo, filled by user space), a miss falls back to the flags (XDP_PASS),
 * everything else is dropped. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

SEC("xdp")
int devmap_redirect(struct xdp_md *ctx)
{
	struct pkt_info pi;

	if (parse_pkt(ctx, &pi) < 0)
		return XDP_DROP;
	if (pi.l4_proto != IPPROTO_TCP && pi.l4_proto != IPPROTO_UDP)
		return XDP_DROP;
	return bpf_redirect_map(&tx_ports, pi.dport % 4, XDP_PASS);
}
