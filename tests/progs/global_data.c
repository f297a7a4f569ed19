/* Global data: .rodata (const volatile config), .data (initialised, updated), .bss
 * (zeroed counters). UDP to the blocked port is dropped while the .data budget lasts,
 * then passed. */
#include "common.h"

/* One struct per section so user space knows the layout. */
const volatile struct {
	__u16 blocked_port;
	__u16 pad;
	__u32 magic;
} cfg = { .blocked_port = 53, .magic = 0xfeedf00d }; /* .rodata */

struct {
	__u32 drop_budget;
	__u32 pad;
	__u64 bytes_seen;
} state = { .drop_budget = 2, .bytes_seen = 1000 }; /* .data */

struct {
	__u64 passed;
	__u64 dropped;
	__u32 last_magic;
	__u32 pad;
} counts = {}; /* .bss */

SEC("xdp")
int global_data(struct xdp_md *ctx)
{
	struct pkt_info pi;

	state.bytes_seen += ctx->data_end - ctx->data;
	counts.last_magic = cfg.magic;
	if (parse_pkt(ctx, &pi) == 0 && pi.l4_proto == IPPROTO_UDP && pi.dport == cfg.blocked_port &&
	    state.drop_budget > 0) {
		state.drop_budget--;
		counts.dropped++;
		return XDP_DROP;
	}
	counts.passed++;
	return XDP_PASS;
}
