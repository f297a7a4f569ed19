/* A prog array belongs to the program type (and XDP frags support) of its first user
 * or stored program: the kernel refuses others with EINVAL at load and at update. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

static void step(const char *name, int r)
{
	printf("%s %s\n", name, r >= 0 ? "ok" : errno == EINVAL ? "EINVAL" : strerror(errno));
	fflush(stdout);
}

/* tail_call(ctx, map, 0); return ret */
static int load(enum bpf_prog_type t, int map, int frags, int ret)
{
	struct bpf_insn insns[] = {
		{ .code = 0x18, .dst_reg = 2, .src_reg = map >= 0 ? 1 : 0, .imm = map >= 0 ? map : 0 },
		{ 0 },
		{ .code = 0xb7, .dst_reg = 3, .imm = 0 },
		{ .code = 0x85, .imm = 12 },
		{ .code = 0xb7, .dst_reg = 0, .imm = ret },
		{ .code = 0x95 },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o);
	if (t == BPF_PROG_TYPE_XDP)
		o.expected_attach_type = BPF_XDP;
	if (frags)
		o.prog_flags = BPF_F_XDP_HAS_FRAGS;
	struct bpf_insn *p = insns;
	int n = 6;
	if (map < 0) { /* no tail call: r0 = ret; exit */
		p = insns + 4;
		n = 2;
	}
	return bpf_prog_load(t, "owner", "GPL", p, n, &o);
}

static int set(int map, int idx, int prog)
{
	return bpf_map_update_elem(map, &idx, &prog, 0);
}

int main(void)
{
	int pa = bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, "pa", 4, 4, 4, NULL);
	int pb = bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, "pb", 4, 4, 4, NULL);
	step("maps", pa < 0 || pb < 0 ? -1 : 0);
	/* pa: owned by its first user, an XDP program. */
	int x = load(BPF_PROG_TYPE_XDP, pa, 0, 2);
	step("xdp.uses.pa", x);
	step("sockfilter.uses.pa", load(BPF_PROG_TYPE_SOCKET_FILTER, pa, 0, 0));
	step("xdp.frags.uses.pa", load(BPF_PROG_TYPE_XDP, pa, 1, 2));
	int s = load(BPF_PROG_TYPE_SOCKET_FILTER, -1, 0, 0);
	int xf = load(BPF_PROG_TYPE_XDP, -1, 1, 2);
	int x2 = load(BPF_PROG_TYPE_XDP, -1, 0, 1);
	step("progs", s < 0 || xf < 0 || x2 < 0 ? -1 : 0);
	step("pa.set.sockfilter", set(pa, 1, s));
	step("pa.set.xdp.frags", set(pa, 1, xf));
	step("pa.set.xdp", set(pa, 1, x2));
	/* pb: owned by the first program stored, a socket filter. */
	step("pb.set.sockfilter", set(pb, 0, s));
	step("xdp.uses.pb", load(BPF_PROG_TYPE_XDP, pb, 0, 2));
	step("pb.set.xdp", set(pb, 1, x2));
	step("sockfilter.uses.pb", load(BPF_PROG_TYPE_SOCKET_FILTER, pb, 0, 0));
	return 0;
}
