/* bpf_xdp_adjust_meta: invalid sizes must fail (-3: not a multiple of 4, -EACCES; -256: past
 * the headroom, -EINVAL); 64 bytes (over the old 32-byte limit; 6.x allows 255) are reserved then
 * 56 given back, leaving 8 bytes of metadata {magic, len} written and read back through
 * data_meta. Results in .data/.bss; verdict PASS if the read-back matches, else ABORTED. */
#include "common.h"

struct {
	int bad3;
	int bad256;
	int grow64;
	int shrink56;
} meta_rets = { 1, 1, 1, 1 }; /* .data, overwritten */
__u32 meta_len = 0;  /* .bss */

struct meta {
	__u32 magic;
	__u32 len;
};

SEC("xdp")
int adjust_meta(struct xdp_md *ctx)
{
	meta_rets.bad3 = bpf_xdp_adjust_meta(ctx, -3);
	meta_rets.bad256 = bpf_xdp_adjust_meta(ctx, -256);
	meta_rets.grow64 = bpf_xdp_adjust_meta(ctx, -64);
	if (meta_rets.grow64 == 0) {
		meta_rets.shrink56 = bpf_xdp_adjust_meta(ctx, 56);
		if (meta_rets.shrink56)
			return XDP_ABORTED;
	} else if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct meta))) {
		return XDP_ABORTED;
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct meta *m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > data)
		return XDP_ABORTED;
	m->magic = 0x4d455441;
	m->len = data_end - data;
	meta_len = m->len;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return XDP_ABORTED;
	return m->magic == 0x4d455441 ? XDP_PASS : XDP_ABORTED;
}
