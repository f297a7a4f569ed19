/* Non-inlined bpf-to-bpf calls: a global function (verified on its own, takes the ctx),
 * a static noinline function taking packet pointers, and a nested static call. The FNV-1a
 * hash of the first 64 bytes (or fewer) decides: even -> PASS, odd -> DROP; the hash is
 * stored in .bss and the byte count in an ARRAY. */
#include "common.h"

/* .bss, one struct so user space knows the layout */
struct {
	__u32 last_hash;
	__u32 calls_made;
} stats = {};

static __noinline __u32 fnv_step(__u32 h, __u8 b)
{
	return (h ^ b) * 16777619U;
}

static __noinline __u32 fnv_bytes(__u8 *p, void *data_end)
{
	__u32 h = 2166136261U;

	for (int i = 0; i < 64; i++) {
		if ((void *)(p + i + 1) > data_end)
			break;
		h = fnv_step(h, p[i]);
	}
	return h;
}

__noinline int count_bytes(struct xdp_md *ctx)
{
	if (!ctx)
		return 0;
	__u32 n = ctx->data_end - ctx->data;
	return n > 64 ? 64 : n;
}

SEC("xdp")
int bpf2bpf_calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 h = fnv_bytes(data, data_end);
	int n = count_bytes(ctx);

	stats.last_hash = h;
	stats.calls_made += n;
	return (h & 1) ? XDP_DROP : XDP_PASS;
}
