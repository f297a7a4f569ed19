/* BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES for the supervisor tests.
 *   sv_live run IFINDEX DSTMAC VERDICT REPEAT
 *     loads `return VERDICT;` (XDP; VERDICT rN: `return bpf_redirect(N, 0);`), runs it live REPEAT times on an Ethernet frame
 *     (DSTMAC, ethertype 0x88b5, payload "BPFTIMELIVE") as received on IFINDEX, and
 *     prints the results and the errnos of malformed live runs, one "name: value" line
 *     each. Run natively and under bpftime-run: the outputs must be equal.
 *   sv_live hold IFINDEX
 *     attaches `return XDP_PASS;` to IFINDEX (bpf_link), prints "attached", and keeps it
 *     until stdin closes (a veth peer needs XDP to take frames of ndo_xdp_xmit). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

static long sys(int cmd, union bpf_attr *a)
{
	long r = syscall(__NR_bpf, cmd, a, sizeof(*a));
	return r < 0 ? -errno : r;
}

/* `return verdict;`, or with verdict "rIFINDEX" `return bpf_redirect(IFINDEX, 0);` */
static int load_insns(struct bpf_insn *insns, int n)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (unsigned long)insns;
	a.insn_cnt = n;
	a.license = (unsigned long)"GPL";
	return sys(BPF_PROG_LOAD, &a);
}

static int load_verdict(const char *v)
{
	if (v[0] == 'r') {
		struct bpf_insn insns[] = {
			{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 1, .imm = atoi(v + 1)},
			{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 2, .imm = 0},
			{.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect},
			{.code = BPF_JMP | BPF_EXIT},
		};
		return load_insns(insns, 4);
	}
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = atoi(v)},
		{.code = BPF_JMP | BPF_EXIT},
	};
	return load_insns(insns, 2);
}

static int load(int verdict)
{
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = verdict},
		{.code = BPF_JMP | BPF_EXIT},
	};
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (unsigned long)insns;
	a.insn_cnt = 2;
	a.license = (unsigned long)"GPL";
	return sys(BPF_PROG_LOAD, &a);
}

static unsigned char frame[4096];
static unsigned char out[4096];

struct run {
	unsigned size, repeat, batch, ifindex, queue, flags;
	int with_ctx, data_out, ctx_data;
};

static long test_run(int prog, struct run *r, unsigned *retval, unsigned *size_out)
{
	struct xdp_md md;
	union bpf_attr a;
	memset(&md, 0, sizeof(md));
	memset(&a, 0, sizeof(a));
	md.data = r->ctx_data;
	md.data_end = r->size;
	md.ingress_ifindex = r->ifindex;
	md.rx_queue_index = r->queue;
	a.test.prog_fd = prog;
	a.test.data_in = (unsigned long)frame;
	a.test.data_size_in = r->size;
	a.test.repeat = r->repeat;
	a.test.flags = r->flags;
	a.test.batch_size = r->batch;
	if (r->with_ctx) {
		a.test.ctx_in = (unsigned long)&md;
		a.test.ctx_size_in = sizeof(md);
	}
	if (r->data_out) {
		a.test.data_out = (unsigned long)out;
		a.test.data_size_out = sizeof(out);
	}
	long ret = sys(BPF_PROG_TEST_RUN, &a);
	if (retval)
		*retval = a.test.retval;
	if (size_out)
		*size_out = a.test.data_size_out;
	return ret;
}

static int hold(int ifindex)
{
	int prog = load(XDP_PASS);
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = prog;
	a.link_create.target_ifindex = ifindex;
	a.link_create.attach_type = BPF_XDP;
	long l = sys(BPF_LINK_CREATE, &a);
	if (prog < 0 || l < 0) {
		printf("attach: %d %ld\n", prog, l);
		return 1;
	}
	printf("attached\n");
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "hold"))
		return hold(atoi(argv[2]));
	if (argc != 6 || strcmp(argv[1], "run")) {
		fprintf(stderr, "usage: sv_live run IFINDEX DSTMAC VERDICT REPEAT | hold IFINDEX\n");
		return 2;
	}
	unsigned ifindex = atoi(argv[2]);
	unsigned m[6];
	if (sscanf(argv[3], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		return 2;
	for (int i = 0; i < 6; i++) {
		frame[i] = m[i];
		frame[6 + i] = i == 0 ? 0x02 : 0x55;
	}
	frame[12] = 0x88;
	frame[13] = 0xb5;
	memcpy(frame + 14, "BPFTIMELIVE", 11);
	int prog = load_verdict(argv[4]);
	printf("load: %d\n", prog >= 0 ? 0 : prog);

	unsigned retval = 77, size_out = 0;
	struct run r = {.size = 60, .repeat = atoi(argv[5]), .ifindex = ifindex,
			.flags = BPF_F_TEST_XDP_LIVE_FRAMES, .with_ctx = 1};
	long ret = test_run(prog, &r, &retval, &size_out);
	printf("live run: %ld retval %u size_out %u\n", ret, retval, size_out);

	/* Malformed live runs (the packet must not be sent: errors come first). */
	struct run bad;
	bad = r, bad.repeat = 1, bad.batch = 257;
	printf("batch 257: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.data_out = 1;
	printf("data_out with ctx: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.ifindex = 4242;
	printf("missing ifindex: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.queue = 5;
	printf("bad rx queue: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.ifindex = 0, bad.queue = 1;
	printf("queue without ifindex: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.size = 13;
	printf("size 13: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.flags = 4;
	printf("flags 4: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.flags = 0, bad.batch = 1;
	printf("batch without live: %ld\n", test_run(prog, &bad, NULL, NULL));
	/* Frames that carry no marker: not counted by the test. */
	memset(frame + 14, 0, 11);
	/* The largest frame a live run takes (no jumbo frames): binary search. */
	unsigned lo = 14, hi = 4096;
	while (lo + 1 < hi) {
		bad = r, bad.repeat = 1, bad.batch = 256, bad.size = (lo + hi) / 2;
		if (test_run(prog, &bad, NULL, NULL) == 0)
			lo = bad.size;
		else
			hi = bad.size;
	}
	printf("largest live frame: %u\n", lo);
	bad = r, bad.repeat = 1, bad.size = 4097;
	printf("size 4097: %ld\n", test_run(prog, &bad, NULL, NULL));
	bad = r, bad.repeat = 1, bad.with_ctx = 0, bad.data_out = 1;
	retval = 77;
	ret = test_run(prog, &bad, &retval, &size_out);
	printf("no ctx, data_out: %ld retval %u size_out %u same %d\n", ret, retval, size_out,
	       !memcmp(out, frame, 60));
	return 0;
}
