/* bpf_ktime_get_ns stored in a map that is not compared (stamps); the deterministic part:
 * a packet counter and a check that time does not go backwards (else ABORTED). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stamps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pkt_count SEC(".maps");

SEC("xdp")
int ktime_stamp(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 *last = bpf_map_lookup_elem(&stamps, &k);
	__u64 *cnt = bpf_map_lookup_elem(&pkt_count, &k);

	if (!last || !cnt)
		return XDP_ABORTED;
	if (now < *last)
		return XDP_ABORTED;
	*last = now;
	*cnt += 1;
	return XDP_PASS;
}
