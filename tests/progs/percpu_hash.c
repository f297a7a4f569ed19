/* PERCPU_HASH: packets per EtherType (after VLAN tags); also deletes the entry for
 * EtherType 0x88b5 each time it is seen (so it never stays), checking delete returns 0. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} per_proto SEC(".maps");

SEC("xdp")
int percpu_hash(struct xdp_md *ctx)
{
	struct pkt_info pi;

	parse_pkt(ctx, &pi);
	__u32 key = pi.eth_proto;
	__u64 one = 1;
	__u64 *v = bpf_map_lookup_elem(&per_proto, &key);
	if (v)
		*v += 1;
	else
		bpf_map_update_elem(&per_proto, &key, &one, BPF_ANY);
	if (key == 0x88b5) {
		if (bpf_map_delete_elem(&per_proto, &key) != 0)
			return XDP_ABORTED;
		if (bpf_map_delete_elem(&per_proto, &key) != -2 /* -ENOENT */)
			return XDP_ABORTED;
		return XDP_DROP;
	}
	return XDP_PASS;
}
