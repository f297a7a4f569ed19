/* The smallest program: XDP_PASS, no packet access. */
#include "common.h"

SEC("xdp")
int pass_all(struct xdp_md *ctx)
{
	return XDP_PASS;
}
