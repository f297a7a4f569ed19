/* Tail calls made from a subprogram (bpf-to-bpf call + tail call, as the kernel's x86
 * JIT allows): the target replaces only the subprogram, so its return value comes
 * back to the caller, which goes on. The entry program calls dispatch(), which
 * tail-calls sub_jmp[class]: TCP -> sub_tcp (3), UDP -> sub_udp (1), ICMP -> sub_icmp,
 * which tail-calls slot 9 -> sub_chain (4); any other class misses (dispatch
 * returns 6). The entry program counts the value it got back and returns
 * (value + 1) % 5, so every verdict depends on the tail call's result. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 10);
	__type(key, __u32);
	__type(value, __u32);
} sub_jmp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} sub_hits SEC(".maps");

/* What dispatch() returns on a miss. A variable in .data, so that the compiler
 * cannot assume what dispatch() returns (it does not know the tail call replaces
 * the function, and would fold a constant into the caller). */
__u32 miss_ret = 6;

static __noinline int dispatch(struct xdp_md *ctx, __u32 slot)
{
	bpf_tail_call(ctx, &sub_jmp, slot);
	return miss_ret;
}

SEC("xdp")
int subprog_tail(struct xdp_md *ctx)
{
	struct pkt_info pi;

	parse_pkt(ctx, &pi);
	__u32 r = dispatch(ctx, pkt_class(&pi)) & 7;
	__u64 *v = bpf_map_lookup_elem(&sub_hits, &r);
	if (v)
		__sync_fetch_and_add(v, 1);
	return (r + 1) % 5;
}

SEC("xdp")
int sub_tcp(struct xdp_md *ctx)
{
	return 3;
}

SEC("xdp")
int sub_udp(struct xdp_md *ctx)
{
	return 1;
}

SEC("xdp")
int sub_icmp(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &sub_jmp, 9);
	return 7; /* slot 9 empty */
}

SEC("xdp")
int sub_chain(struct xdp_md *ctx)
{
	return 4;
}
