/* bpf_perf_event_output into a PERF_EVENT_ARRAY, with the flags the client sets in
 * .bss (index or BPF_F_CURRENT_CPU, and a packet length in bits 32-51); the helper's
 * return value goes back through .bss. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
} events SEC(".maps");

struct {
	__u64 flags_in;
	long ret_out;
	__u32 seq;
} g;

SEC("xdp")
int out(struct xdp_md *ctx)
{
	struct {
		__u32 seq;
		__u32 len;
	} m;
	m.seq = g.seq++;
	m.len = ctx->data_end - ctx->data;
	g.ret_out = bpf_perf_event_output(ctx, &events, g.flags_in, &m, sizeof(m));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
