/* TCP flags (with the data offset bounds-checked): counts each set flag bit in an ARRAY
 * (bounded loop over 8 bits); RST or FIN -> DROP, SYN without ACK -> PASS, other TCP -> PASS,
 * malformed -> ABORTED, non-TCP -> PASS. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} flag_counts SEC(".maps");

SEC("xdp")
int tcp_flags(struct xdp_md *ctx)
{
	struct pkt_info pi;

	if (parse_pkt(ctx, &pi) < 0)
		return XDP_ABORTED;
	if (pi.l4_proto != IPPROTO_TCP)
		return XDP_PASS;
	for (int bit = 0; bit < 8; bit++) {
		if (!(pi.tcp_flags & (1 << bit)))
			continue;
		__u32 key = bit;
		__u64 *n = bpf_map_lookup_elem(&flag_counts, &key);
		if (n)
			*n += 1;
	}
	if (pi.tcp_flags & 0x05) /* FIN | RST */
		return XDP_DROP;
	return XDP_PASS;
}
