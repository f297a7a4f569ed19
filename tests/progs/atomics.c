/* Atomics on a map value, 64 and 32 bit: add, fetch_add, or, fetch_or, and, fetch_and,
 * xor, fetch_xor, xchg, cmpxchg. Operands come from the packet length, results of the
 * fetch forms are stored too, so the final state proves each operation's semantics. */
#include "common.h"

struct atom {
	__u64 add64;
	__u64 fadd64_old;
	__u64 or64;
	__u64 for64_old;
	__u64 and64;
	__u64 fand64_old;
	__u64 xor64;
	__u64 fxor64_old;
	__u64 xchg64;
	__u64 xchg64_old;
	__u64 cmpx64;
	__u64 cmpx64_old;
	__u32 add32;
	__u32 fadd32_old;
	__u32 or32;
	__u32 for32_old;
	__u32 and32;
	__u32 fand32_old;
	__u32 xor32;
	__u32 fxor32_old;
	__u32 xchg32;
	__u32 xchg32_old;
	__u32 cmpx32;
	__u32 cmpx32_old;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct atom);
} atom_map SEC(".maps");

SEC("xdp")
int atomics(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 len = ctx->data_end - ctx->data;
	struct atom *a = bpf_map_lookup_elem(&atom_map, &zero);

	if (!a)
		return XDP_ABORTED;
	/* 64 bit */
	__sync_fetch_and_add(&a->add64, len);                       /* BPF_ADD */
	a->fadd64_old = __sync_fetch_and_add(&a->add64, len << 32);  /* BPF_ADD|FETCH */
	__sync_fetch_and_or(&a->or64, 1ULL << (len % 64));          /* BPF_OR */
	a->for64_old = __sync_fetch_and_or(&a->or64, len << 40);    /* BPF_OR|FETCH */
	if (a->and64 == 0)
		a->and64 = ~0ULL;
	__sync_fetch_and_and(&a->and64, ~(1ULL << (len % 61)));     /* BPF_AND */
	a->fand64_old = __sync_fetch_and_and(&a->and64, ~(len << 20)); /* BPF_AND|FETCH */
	__sync_fetch_and_xor(&a->xor64, len * 0x9e3779b97f4a7c15ULL); /* BPF_XOR */
	a->fxor64_old = __sync_fetch_and_xor(&a->xor64, len);        /* BPF_XOR|FETCH */
	a->xchg64_old = __sync_lock_test_and_set(&a->xchg64, len * 3 + (1ULL << 33)); /* XCHG */
	a->cmpx64_old = __sync_val_compare_and_swap(&a->cmpx64, a->cmpx64_old, len); /* CMPXCHG */
	/* 32 bit */
	__u32 l32 = len;
	__sync_fetch_and_add(&a->add32, l32);
	a->fadd32_old = __sync_fetch_and_add(&a->add32, l32 << 16);
	__sync_fetch_and_or(&a->or32, 1U << (l32 % 32));
	a->for32_old = __sync_fetch_and_or(&a->or32, l32 << 8);
	if (a->and32 == 0)
		a->and32 = ~0U;
	__sync_fetch_and_and(&a->and32, ~(1U << (l32 % 31)));
	a->fand32_old = __sync_fetch_and_and(&a->and32, ~(l32 << 4));
	__sync_fetch_and_xor(&a->xor32, l32 * 0x9e3779b9U);
	a->fxor32_old = __sync_fetch_and_xor(&a->xor32, l32);
	a->xchg32_old = __sync_lock_test_and_set(&a->xchg32, l32 * 5);
	/* succeeds when the previous length was even (old value matches), fails otherwise */
	__u32 expect = (l32 & 1) ? 0xdeadbeef : a->cmpx32;
	a->cmpx32_old = __sync_val_compare_and_swap(&a->cmpx32, expect, l32);
	return XDP_PASS;
}
