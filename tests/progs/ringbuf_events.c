/* RINGBUF: one event per IP packet; reserve/submit for IPv4, bpf_ringbuf_output for IPv6;
 * odd-length IPv4 packets are reserved then discarded. */
#include "common.h"

struct event {
	__u32 len;
	__u16 eth_proto;
	__u8 l4_proto;
	__u8 klass;
	__u32 saddr;
	__u32 daddr;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

SEC("xdp")
int ringbuf_events(struct xdp_md *ctx)
{
	struct pkt_info pi;
	__u32 len = ctx->data_end - ctx->data;

	if (parse_pkt(ctx, &pi) < 0)
		return XDP_PASS;
	if (pi.eth_proto == ETH_P_IP) {
		struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e)
			return XDP_ABORTED;
		e->len = len;
		e->eth_proto = pi.eth_proto;
		e->l4_proto = pi.l4_proto;
		e->klass = pkt_class(&pi);
		e->saddr = pi.saddr;
		e->daddr = pi.daddr;
		if (len & 1)
			bpf_ringbuf_discard(e, 0);
		else
			bpf_ringbuf_submit(e, 0);
	} else if (pi.eth_proto == ETH_P_IPV6) {
		struct event e = {
			.len = len,
			.eth_proto = pi.eth_proto,
			.l4_proto = pi.l4_proto,
			.klass = pkt_class(&pi),
		};
		if (bpf_ringbuf_output(&events, &e, sizeof(e), 0))
			return XDP_ABORTED;
	}
	return XDP_PASS;
}
