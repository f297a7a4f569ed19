/* LPM_TRIE: IPv4 source ACL filled by user space ({prefixlen, addr} -> verdict);
 * no match -> PASS. Hits are counted per verdict in an ARRAY. */
#include "common.h"

struct lpm_key {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u32);
} acl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} acl_hits SEC(".maps");

SEC("xdp")
int lpm_acl(struct xdp_md *ctx)
{
	struct pkt_info pi;

	if (parse_pkt(ctx, &pi) < 0 || pi.eth_proto != ETH_P_IP)
		return XDP_PASS;
	struct lpm_key k = { .prefixlen = 32, .addr = pi.saddr };
	__u32 *act = bpf_map_lookup_elem(&acl, &k);
	if (!act)
		return XDP_PASS;
	__u32 a = *act & 7;
	__u64 *hits = bpf_map_lookup_elem(&acl_hits, &a);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return a > XDP_TX ? XDP_ABORTED : a;
}
