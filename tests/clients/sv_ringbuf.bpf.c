/* XDP program with a ring buffer: one record (packet length, sequence) per packet. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

__u64 seq;

SEC("xdp")
int sv_ringbuf(struct xdp_md *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&events, 16, 0);
	if (!e)
		return XDP_ABORTED;
	e[0] = ctx->data_end - ctx->data;
	e[1] = ++seq;
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
