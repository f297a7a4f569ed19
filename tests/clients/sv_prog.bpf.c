/* XDP program for the supervisor tests: a hash map, an array map, and global data
 * in .rodata, .data and .bss. Built with clang-19 at test time. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} config SEC(".maps");

const volatile __u32 verdict_default = 0; /* .rodata, set by the loader */
__u64 bytes_total = 7;                   /* .data */
__u64 packets;                           /* .bss */

SEC("xdp")
int sv_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = end - data;
	__u32 key = len & 63, k0 = 0;
	__u64 *c, one = 1;
	__u32 *v;

	packets++;
	bytes_total += len;
	c = bpf_map_lookup_elem(&counts, &key);
	if (c)
		__sync_fetch_and_add(c, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_ANY);
	v = bpf_map_lookup_elem(&config, &k0);
	if (v && *v)
		return *v;
	return verdict_default;
}

char LICENSE[] SEC("license") = "GPL";
