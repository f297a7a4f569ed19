// SPDX-License-Identifier: GPL-2.0 OR MIT
// xdp-counter: counts packets per protocol in an ARRAY map and in a global
// .bss counter, and passes every packet on. The seed's demo program.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum proto_slot { SLOT_OTHER = 0, SLOT_ARP, SLOT_ICMP, SLOT_TCP, SLOT_UDP, SLOT_ICMPV6, SLOT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

__u64 total_packets = 0; /* .bss: the loader reads it through the skeleton-style mmap */

static __always_inline __u32 classify(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return SLOT_OTHER;
	__u16 proto = bpf_ntohs(eth->h_proto);
	if (proto == ETH_P_ARP)
		return SLOT_ARP;
	if (proto == ETH_P_IP) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return SLOT_OTHER;
		if (ip->protocol == IPPROTO_ICMP)
			return SLOT_ICMP;
		if (ip->protocol == IPPROTO_TCP)
			return SLOT_TCP;
		if (ip->protocol == IPPROTO_UDP)
			return SLOT_UDP;
		return SLOT_OTHER;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return SLOT_OTHER;
		if (ip6->nexthdr == IPPROTO_ICMPV6)
			return SLOT_ICMPV6;
		if (ip6->nexthdr == IPPROTO_TCP)
			return SLOT_TCP;
		if (ip6->nexthdr == IPPROTO_UDP)
			return SLOT_UDP;
	}
	return SLOT_OTHER;
}

SEC("xdp")
int xdp_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 slot = classify(data, data_end);
	__u64 *count = bpf_map_lookup_elem(&counters, &slot);
	if (count)
		__sync_fetch_and_add(count, 1);
	__sync_fetch_and_add(&total_packets, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
