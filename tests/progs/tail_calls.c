/* PROG_ARRAY tail calls: the entry program jumps to jmp[class]; user space fills slot 3
 * (TCP), 4 (UDP) and 5 (ICMP); the ICMP handler chains on to slot 9. An empty slot falls
 * through: the entry program counts the miss and returns PASS. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 10);
	__type(key, __u32);
	__type(value, __u32);
} jmp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 10);
	__type(key, __u32);
	__type(value, __u64);
} tc_hits SEC(".maps");

static __always_inline void hit(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&tc_hits, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int tail_entry(struct xdp_md *ctx)
{
	struct pkt_info pi;

	parse_pkt(ctx, &pi);
	__u32 c = pkt_class(&pi);
	bpf_tail_call(ctx, &jmp, c);
	hit(0); /* miss */
	return XDP_PASS;
}

SEC("xdp")
int tail_tcp(struct xdp_md *ctx)
{
	hit(3);
	return XDP_PASS;
}

SEC("xdp")
int tail_udp(struct xdp_md *ctx)
{
	hit(4);
	return XDP_DROP;
}

SEC("xdp")
int tail_icmp(struct xdp_md *ctx)
{
	hit(5);
	bpf_tail_call(ctx, &jmp, 9);
	return XDP_ABORTED; /* slot 9 missing */
}

SEC("xdp")
int tail_chain(struct xdp_md *ctx)
{
	hit(9);
	return XDP_TX;
}
