/* bpf_xdp_adjust_tail: frames longer than 128 bytes are cut to 128, frames shorter than
 * 60 are padded to 60 (the kernel zero-fills), others are untouched; the new length's
 * last byte is then set to 0x5a. Shrinking below 14 bytes must fail (-EINVAL). */
#include "common.h"

int shrink_ret = 0; /* .bss */

SEC("xdp")
int adjust_tail(struct xdp_md *ctx)
{
	__s32 len = ctx->data_end - ctx->data;
	int delta = 0;

	shrink_ret = bpf_xdp_adjust_tail(ctx, -len);
	if (len > 128)
		delta = 128 - len;
	else if (len < 60)
		delta = 60 - len;
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 nl = data_end - data;
	if (nl < 1 || nl > 2000)
		return XDP_ABORTED;
	__u8 *last = data + (nl - 1);
	if ((void *)(last + 1) > data_end)
		return XDP_ABORTED;
	*last = 0x5a;
	return XDP_TX;
}
