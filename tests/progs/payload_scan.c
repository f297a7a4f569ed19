/* Bounded loop over the L4 payload (up to 256 bytes) in a global function (verified on its
 * own): counts 0xAA bytes and sums all bytes. Count > 8 -> DROP, else PASS; the results go
 * to an ARRAY (key 0: count, 1: sum, 2: runs). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} scan SEC(".maps");

__u64 scan_sum = 0; /* .bss: sum of the last scan */

__noinline int scan_payload(struct xdp_md *ctx, __u32 off)
{
	void *data, *data_end;
	__u64 sum = 0;
	int count = 0;

	if (!ctx)
		return 0;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	off &= 0x3fff;
	for (__u32 i = 0; i < 256; i++) {
		__u8 *p = data + off + i;
		if ((void *)(p + 1) > data_end)
			break;
		if (*p == 0xAA)
			count++;
		sum += *p;
	}
	scan_sum = sum;
	return count;
}

SEC("xdp")
int payload_scan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt_info pi;
	__u32 off;

	if (parse_pkt(ctx, &pi) < 0 || !pi.l4_off)
		return XDP_PASS;
	if (pi.l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = data + (pi.l4_off & 0x3fff);
		if ((void *)(th + 1) > data_end)
			return XDP_PASS;
		off = pi.l4_off + th->doff * 4;
	} else if (pi.l4_proto == IPPROTO_UDP || pi.l4_proto == IPPROTO_ICMP ||
		   pi.l4_proto == IPPROTO_ICMPV6) {
		off = pi.l4_off + 8;
	} else {
		return XDP_PASS;
	}
	__u64 count = scan_payload(ctx, off);
	__u64 sum = scan_sum;
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&scan, &k);
	if (v)
		*v += count;
	k = 1;
	v = bpf_map_lookup_elem(&scan, &k);
	if (v)
		*v += sum;
	k = 2;
	v = bpf_map_lookup_elem(&scan, &k);
	if (v)
		*v += 1;
	return count > 8 ? XDP_DROP : XDP_PASS;
}
