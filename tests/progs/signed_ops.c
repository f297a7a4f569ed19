/* Signed arithmetic, where -mcpu=v4 has its own instructions: sign-extending loads (ldsx),
 * sign-extending moves (movsx), signed division and modulo (sdiv/smod, 64 and 32 bit; the v3
 * build computes the same results with unsigned division), arithmetic shifts, byte swaps.
 * Results go to .bss; verdict DROP when the 64-bit quotient is negative, else PASS; frames
 * shorter than 30 bytes are passed untouched. */
#include "common.h"

struct {
	__s64 r[14];
} signed_out = {}; /* .bss */

static __always_inline __s64 sdiv64(__s64 a, __s64 b)
{
#if __BPF_CPU_VERSION__ >= 4
	return a / b;
#else
	__u64 ua = a < 0 ? -(__u64)a : (__u64)a;
	__u64 ub = b < 0 ? -(__u64)b : (__u64)b;
	__u64 q = ua / ub;
	return (a < 0) != (b < 0) ? -(__s64)q : (__s64)q;
#endif
}

static __always_inline __s64 smod64(__s64 a, __s64 b)
{
#if __BPF_CPU_VERSION__ >= 4
	return a % b;
#else
	return a - sdiv64(a, b) * b;
#endif
}

static __always_inline __s32 sdiv32(__s32 a, __s32 b)
{
#if __BPF_CPU_VERSION__ >= 4
	return a / b;
#else
	return (__s32)sdiv64(a, b);
#endif
}

static __always_inline __s32 smod32(__s32 a, __s32 b)
{
#if __BPF_CPU_VERSION__ >= 4
	return a % b;
#else
	return (__s32)smod64(a, b);
#endif
}

SEC("xdp")
int signed_ops(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;

	if (data + 30 > data_end)
		return XDP_PASS;
	__s8 a8 = *(volatile __s8 *)(p + 14);
	__s16 a16 = *(volatile __s16 *)(p + 16);
	__s32 a32 = *(volatile __s32 *)(p + 18);
	__s64 d = (__s8)p[22];
	if (d == 0 || d == -1)
		d = -7;
	__u32 len = data_end - data;

	signed_out.r[0] = a8;
	signed_out.r[1] = a16;
	signed_out.r[2] = a32;
	signed_out.r[3] = sdiv64((__s64)a32 * 1000003, d);
	signed_out.r[4] = smod64((__s64)a32 * 999983, d);
	signed_out.r[5] = sdiv32(a32, (__s32)d);
	signed_out.r[6] = smod32(a32 ^ 0x5a5a, (__s32)d);
	signed_out.r[7] = sdiv64(a16, d * 3);
	signed_out.r[8] = (__s64)((__u64)len << 58) >> 58;     /* arsh */
	signed_out.r[9] = (__s32)((__u32)a8 << 24) >> 28;      /* arsh32 */
	signed_out.r[10] = bpf_ntohl(*(volatile __u32 *)(p + 14));  /* bswap32 */
	signed_out.r[11] = bpf_be64_to_cpu(*(volatile __u64 *)(p + 14)); /* bswap64 */
	signed_out.r[12] = (__s16)(len * 2731);                 /* movsx16 */
	signed_out.r[13] = (__s8)(a16 >> 3);                    /* movsx8 */
	return signed_out.r[3] < 0 ? XDP_DROP : XDP_PASS;
}
