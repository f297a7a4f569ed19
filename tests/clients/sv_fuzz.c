/* A bounded, seeded fuzzer of what a loader can send: random bpf() calls ("bpf"), BTF
 * blobs mutated from a valid one ("btf"), rtnetlink link messages with IFLA_XDP
 * ("rtnl"), and random well-formed XDP programs loaded and test-run ("prog": ALU64/32
 * with immediates and registers, forward conditional jumps, stack spills; the result
 * is the load's errno or r0). Usage: sv_fuzz MODE SEED COUNT. Prints one line per call, "<i> <what>
 * <result>" (result: ok, a value, or an errno name), so that a run on the kernel and
 * one under bpftime-run with the same seed can be compared line by line.
 *
 * It runs in a network namespace of its own (only lo), and never names a cgroup, a
 * path outside its scratch buffers, or an object it did not create, so the host is
 * left alone. Results that depend on the rest of the system (object ids, which
 * objects exist) are printed as "state". */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

static unsigned long long rng;
static unsigned long long rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static unsigned pick(unsigned n) { return rnd() % n; }

static int objs[8];
/* FUZZ_DUMP=i: print call i's arguments on stderr. */
static int dump = -1;
static char buf[4096];
static char attr_buf[512];

static const char *ename(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case 524: return "ENOTSUPP";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPROTO: return "EPROTO";
	case ENOSYS: return "ENOSYS";
	case ELOOP: return "ELOOP";
	case ENXIO: return "ENXIO";
	case EMSGSIZE: return "EMSGSIZE";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case EOVERFLOW: return "EOVERFLOW";
	case ETOOMANYREFS: return "ETOOMANYREFS";
	default: {
		static char s[16];
		snprintf(s, sizeof(s), "E%d", e);
		return s;
	}
	}
}

static long bpf(int cmd, void *a, unsigned size)
{
	long r = syscall(__NR_bpf, cmd, a, size);
	return r < 0 ? -errno : r;
}

static unsigned u32v(void)
{
	switch (pick(10)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return 4;
	case 3: return 8;
	case 4: return 0xffffffffu;
	case 5: return pick(64);
	case 6: return (unsigned)rnd();
	case 7: return 1u << pick(32);
	default: return objs[pick(8)];
	}
}

static unsigned long long ptrv(void)
{
	switch (pick(6)) {
	case 0: return 0;
	case 1: return (unsigned long long)buf;
	case 2: return (unsigned long long)buf + pick(sizeof(buf));
	case 3: return 0x1000;
	case 4: return ~0ull;
	default: return (unsigned long long)"GPL";
	}
}

/* XDP: r0 = 2; exit */
static struct bpf_insn pass[] = {
	{ .code = 0xb7, .dst_reg = 0, .imm = 2 },
	{ .code = 0x95 },
};

static int setup(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_HASH; a.key_size = 4; a.value_size = 8; a.max_entries = 8;
	objs[0] = bpf(BPF_MAP_CREATE, &a, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	objs[1] = bpf(BPF_MAP_CREATE, &a, sizeof(a));
	a.map_type = BPF_MAP_TYPE_PROG_ARRAY; a.value_size = 4;
	objs[2] = bpf(BPF_MAP_CREATE, &a, sizeof(a));
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_RINGBUF; a.max_entries = 4096;
	objs[3] = bpf(BPF_MAP_CREATE, &a, sizeof(a));
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP; a.insns = (unsigned long long)pass; a.insn_cnt = 2;
	a.license = (unsigned long long)"GPL"; a.expected_attach_type = BPF_XDP;
	objs[4] = bpf(BPF_PROG_LOAD, &a, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER; a.expected_attach_type = 0;
	objs[5] = bpf(BPF_PROG_LOAD, &a, sizeof(a));
	objs[6] = 0;
	objs[7] = -1;
	for (int i = 0; i < 6; i++)
		if (objs[i] < 0) {
			fprintf(stderr, "setup %d: %s\n", i, ename(-objs[i]));
			return -1;
		}
	return 0;
}

/* Commands whose answer depends on objects outside this process (ids, other users'
 * objects): only whether they returned is compared. */
static int state_dependent(int cmd)
{
	return cmd == BPF_PROG_GET_NEXT_ID || cmd == BPF_MAP_GET_NEXT_ID ||
	       cmd == BPF_PROG_GET_FD_BY_ID || cmd == BPF_MAP_GET_FD_BY_ID ||
	       cmd == BPF_BTF_GET_FD_BY_ID || cmd == BPF_BTF_GET_NEXT_ID ||
	       cmd == BPF_LINK_GET_FD_BY_ID || cmd == BPF_LINK_GET_NEXT_ID ||
	       cmd == BPF_TASK_FD_QUERY || cmd == BPF_PROG_QUERY;
}

static void fuzz_bpf(int i)
{
	int cmd = pick(10) < 8 ? (int)pick(37) : (int)pick(64);
	unsigned size = pick(5) ? sizeof(union bpf_attr) : pick(256);
	memset(attr_buf, 0, sizeof(attr_buf));
	int words = 1 + pick(16);
	for (int w = 0; w < words; w++) {
		int at = pick(sizeof(union bpf_attr) / 4);
		if (pick(3) == 0 && at % 2 == 0) {
			unsigned long long p = ptrv();
			memcpy(attr_buf + at * 4, &p, 8);
		} else {
			unsigned v = u32v();
			memcpy(attr_buf + at * 4, &v, 4);
		}
	}
	for (unsigned j = 0; j < sizeof(buf); j++)
		buf[j] = pick(4) ? 0 : (char)rnd();
	/* Never a path: pin/get name a path in buf; keep it empty. */
	if (cmd == BPF_OBJ_PIN || cmd == BPF_OBJ_GET)
		buf[0] = 0;
	if (dump == i) {
		fprintf(stderr, "call %d: cmd %d size %u attr:", i, cmd, size);
		for (unsigned w = 0; w < sizeof(union bpf_attr) / 4; w++)
			fprintf(stderr, " %u:%#x", w * 4, ((unsigned *)attr_buf)[w]);
		fprintf(stderr, "\nobjs: %d %d %d %d %d %d buf %p\n", objs[0], objs[1], objs[2], objs[3], objs[4], objs[5], buf);
	}
	long r = bpf(cmd, attr_buf, size);
	if (r >= 0 && (cmd == BPF_MAP_CREATE || cmd == BPF_PROG_LOAD || cmd == BPF_OBJ_GET ||
		       cmd == BPF_RAW_TRACEPOINT_OPEN || cmd == BPF_BTF_LOAD ||
		       cmd == BPF_LINK_CREATE || cmd == BPF_ENABLE_STATS || cmd == BPF_ITER_CREATE ||
		       state_dependent(cmd)))
		if (r > 2 && r != objs[0] && r != objs[1] && r != objs[2] && r != objs[3] &&
		    r != objs[4] && r != objs[5])
			close(r);
	if (state_dependent(cmd))
		printf("%d bpf %d state\n", i, cmd);
	else if (r < 0)
		printf("%d bpf %d %s\n", i, cmd, ename(-r));
	else
		printf("%d bpf %d ok\n", i, cmd);
}

static unsigned char btf[1024];
static unsigned btf_len;
static char bstr[256];
static unsigned bslen = 1;
static unsigned bt[256];
static unsigned btn;

static unsigned bs(const char *x)
{
	unsigned o = bslen;
	strcpy(bstr + bslen, x);
	bslen += strlen(x) + 1;
	return o;
}
static void w(unsigned v) { bt[btn++] = v; }

/* A valid blob with one type of each kind programs use, for mutations to start from. */
static void btf_build(void)
{
	w(bs("int")); w(BTF_KIND_INT << 24); w(4); w(BTF_INT_SIGNED << 24 | 32);          /* 1 */
	w(bs("s")); w(BTF_KIND_STRUCT << 24 | 2); w(8);                                   /* 2 */
	w(bs("a")); w(1); w(0); w(bs("b")); w(1); w(32);
	w(0); w(BTF_KIND_PTR << 24); w(2);                                                 /* 3 */
	w(0); w(BTF_KIND_ARRAY << 24); w(0); w(1); w(1); w(4);                             /* 4 */
	w(bs("t")); w(BTF_KIND_TYPEDEF << 24); w(1);                                       /* 5 */
	w(0); w(BTF_KIND_CONST << 24); w(5);                                               /* 6 */
	w(bs("e")); w(BTF_KIND_ENUM << 24 | 2); w(4); w(bs("A")); w(0); w(bs("B")); w(1); /* 7 */
	w(0); w(BTF_KIND_FUNC_PROTO << 24 | 2); w(1); w(bs("x")); w(1); w(bs("y")); w(3); /* 8 */
	w(bs("f")); w(BTF_KIND_FUNC << 24 | 1); w(8);                                      /* 9 */
	w(bs("v")); w(BTF_KIND_VAR << 24); w(1); w(1);                                     /* 10 */
	w(bs(".data")); w(BTF_KIND_DATASEC << 24 | 1); w(4); w(10); w(0); w(4);           /* 11 */
	w(bs("float")); w(BTF_KIND_FLOAT << 24); w(4);                                     /* 12 */
	w(bs("tag")); w(BTF_KIND_DECL_TAG << 24); w(2); w(0);                              /* 13 */
	w(bs("tt")); w(BTF_KIND_TYPE_TAG << 24); w(1);                                     /* 14 */
	w(0); w(BTF_KIND_PTR << 24); w(14);                                                /* 15 */
	struct btf_header h = { .magic = BTF_MAGIC, .version = BTF_VERSION, .hdr_len = 24 };
	h.type_len = btn * 4;
	h.str_off = btn * 4;
	h.str_len = bslen;
	memcpy(btf, &h, 24);
	memcpy(btf + 24, bt, btn * 4);
	memcpy(btf + 24 + btn * 4, bstr, bslen);
	btf_len = 24 + btn * 4 + bslen;
}

static void fuzz_btf(int i)
{
	unsigned char b[1024];
	memcpy(b, btf, sizeof(b));
	unsigned len = btf_len;
	int flips = 1 + pick(4);
	for (int f = 0; f < flips; f++) {
		switch (pick(4)) {
		case 0: b[pick(len ? len : 1)] = (unsigned char)rnd(); break;
		case 1: b[pick(len ? len : 1)] ^= 1 << pick(8); break;
		case 2: { unsigned v = u32v(); memcpy(b + (pick(len ? len : 1) & ~3u), &v, 4); break; }
		default: len = pick(sizeof(b)); break;
		}
	}
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.btf = (unsigned long long)b;
	a.btf_size = len;
	if (pick(2)) {
		a.btf_log_buf = (unsigned long long)buf;
		a.btf_log_size = pick(3) ? sizeof(buf) : pick(64);
		a.btf_log_level = pick(4);
	}
	static char why[4096];
	if (getenv("FUZZ_BTFLOG")) {
		/* Diagnosis: a full log, and its last line after the result. */
		memset(why, 0, sizeof(why));
		a.btf_log_buf = (unsigned long long)why;
		a.btf_log_size = sizeof(why);
		a.btf_log_level = 1;
	}
	long r = bpf(BPF_BTF_LOAD, &a, sizeof(a));
	if (r >= 0)
		close(r);
	if (getenv("FUZZ_BTFLOG")) {
		char *last = why, *p;
		while ((p = strchr(last, '\n')) && p[1])
			last = p + 1;
		printf("%d btf %s %.*s\n", i, r < 0 ? ename(-r) : "ok", (int)strcspn(last, "\n"), last);
		return;
	}
	printf("%d btf %s\n", i, r < 0 ? ename(-r) : "ok");
}

static int nl;

static void put_attr(char *m, unsigned *len, unsigned short type, const void *data, unsigned dlen)
{
	struct nlattr *na = (struct nlattr *)(m + *len);
	na->nla_type = type;
	na->nla_len = NLA_HDRLEN + dlen;
	memcpy(m + *len + NLA_HDRLEN, data, dlen);
	*len += NLA_ALIGN(na->nla_len);
}

static void fuzz_rtnl(int i)
{
	static char m[1024];
	memset(m, 0, sizeof(m));
	struct nlmsghdr *h = (struct nlmsghdr *)m;
	h->nlmsg_type = pick(10) < 9 ? RTM_SETLINK : RTM_NEWLINK + pick(4);
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (pick(4) ? 0 : (pick(16) << 8));
	h->nlmsg_seq = i + 1;
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	int ifx[] = { 1, 1, 1, 0, 2, 999, -1 };
	ifi->ifi_index = ifx[pick(7)];
	ifi->ifi_family = pick(8) ? AF_UNSPEC : pick(32);
	unsigned len = NLMSG_LENGTH(sizeof(*ifi));
	unsigned nest_at = len;
	struct nlattr *nest = (struct nlattr *)(m + len);
	nest->nla_type = pick(8) ? (IFLA_XDP | NLA_F_NESTED) : pick(64);
	len += NLA_HDRLEN;
	int n = pick(4);
	for (int k = 0; k < n; k++) {
		int fds[] = { objs[4], objs[4], objs[5], objs[0], -1, 999 };
		unsigned v;
		switch (pick(6)) {
		case 0: case 1: v = fds[pick(6)]; put_attr(m, &len, IFLA_XDP_FD, &v, 4); break;
		case 2: v = pick(32) | (pick(8) ? 0 : (unsigned)rnd()); put_attr(m, &len, IFLA_XDP_FLAGS, &v, 4); break;
		case 3: v = fds[pick(6)]; put_attr(m, &len, IFLA_XDP_EXPECTED_FD, &v, 4); break;
		case 4: v = (unsigned)rnd(); put_attr(m, &len, pick(12), &v, pick(3) ? 4 : pick(9)); break;
		default: v = pick(4); put_attr(m, &len, IFLA_XDP_FLAGS, &v, 4); break;
		}
	}
	nest->nla_len = len - nest_at;
	if (pick(16) == 0)
		nest->nla_len = pick(64);
	h->nlmsg_len = pick(32) ? len : pick(len + 8);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (sendto(nl, m, h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("%d rtnl send %s\n", i, ename(errno));
		return;
	}
	/* The ack (and whatever came before it); a malformed message may get none. */
	for (;;) {
		struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
		setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		static char r[8192];
		int got = recv(nl, r, sizeof(r), 0);
		if (got < 0) {
			printf("%d rtnl none\n", i);
			return;
		}
		for (struct nlmsghdr *rh = (struct nlmsghdr *)r; NLMSG_OK(rh, got); rh = NLMSG_NEXT(rh, got)) {
			if (rh->nlmsg_seq != (unsigned)i + 1)
				continue;
			if (rh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(rh);
				printf("%d rtnl %s\n", i, e->error ? ename(-e->error) : "ok");
				return;
			}
		}
	}
}

/* One random well-formed program: every register set first, forward jumps only, so
 * that the kernel's verifier accepts it; r0 (as a test run returns it) compared. */
static void fuzz_prog(int i)
{
	static struct bpf_insn p[160];
	int n = 0;
	for (int r = 0; r <= 9; r++) {
		if (r == 1)
			continue; /* keep the context in r1 unused */
		unsigned long long v = rnd();
		if (pick(2)) {
			p[n++] = (struct bpf_insn){ .code = 0x18, .dst_reg = r, .imm = (int)v };
			p[n++] = (struct bpf_insn){ .imm = (int)(v >> 32) };
		} else {
			p[n++] = (struct bpf_insn){ .code = 0xb7, .dst_reg = r, .imm = (int)u32v() };
		}
	}
	for (int k = 1; k <= 4; k++)
		p[n++] = (struct bpf_insn){ .code = 0x7b, .dst_reg = 10, .src_reg = pick(10) == 1 ? 0 : pick(10) == 1 ? 2 : 3, .off = -8 * k };
	int body = 8 + pick(64);
	int end = n + body;
	static const unsigned char alu[] = { 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0 };
	static const unsigned char jmp[] = { 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0 };
	while (n < end) {
		int d = pick(10), s2 = pick(10);
		if (d == 1)
			d = 0;
		if (s2 == 1)
			s2 = 0;
		switch (pick(8)) {
		case 0: case 1: case 2: case 3: {
			unsigned char op = alu[pick(sizeof(alu))];
			int is64 = pick(2);
			int x = pick(2);
			struct bpf_insn in = { .code = (is64 ? 0x07 : 0x04) | op | (x ? 0x08 : 0), .dst_reg = d, .src_reg = x ? s2 : 0, .imm = x ? 0 : (int)u32v() };
			if (op == 0x80) { /* neg: no source */
				in.code = (is64 ? 0x07 : 0x04) | 0x80; in.src_reg = 0; in.imm = 0;
			}
			if (op == 0x60 || op == 0x70 || op == 0xc0) { /* shifts: in range */
				if (x) {
					/* shift by a register: mask it first */
					p[n++] = (struct bpf_insn){ .code = 0x57, .dst_reg = s2, .imm = is64 ? 63 : 31 };
				} else {
					in.imm = pick(is64 ? 64 : 32);
				}
			}
			if (op == 0xd0) { /* byte swap: to-le/to-be 16/32/64 */
				static const int w[] = { 16, 32, 64 };
				in.code = 0xd4 | (pick(2) ? 0x08 : 0);
				in.src_reg = 0;
				in.imm = w[pick(3)];
			}
			p[n++] = in;
			break;
		}
		case 4: case 5: {
			int left = end - n - 1;
			if (left < 1)
				break;
			int x = pick(2);
			p[n++] = (struct bpf_insn){ .code = (pick(3) ? 0x05 : 0x06) | jmp[pick(sizeof(jmp))] | (x ? 0x08 : 0), .dst_reg = d, .src_reg = x ? s2 : 0, .off = 1 + pick(left < 8 ? left : 8), .imm = x ? 0 : (int)u32v() };
			break;
		}
		case 6:
			p[n++] = (struct bpf_insn){ .code = 0x7b, .dst_reg = 10, .src_reg = s2, .off = -8 * (1 + pick(4)) };
			break;
		default:
			p[n++] = (struct bpf_insn){ .code = 0x79, .dst_reg = d, .src_reg = 10, .off = -8 * (1 + pick(4)) };
			break;
		}
	}
	/* Every forward jump lands at or before this exit. */
	p[n++] = (struct bpf_insn){ .code = 0xbf, .dst_reg = 0, .src_reg = pick(10) == 1 ? 0 : pick(8) + 2 };
	p[n++] = (struct bpf_insn){ .code = 0x95 };
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.expected_attach_type = BPF_XDP;
	a.insns = (unsigned long long)p;
	a.insn_cnt = n;
	a.license = (unsigned long long)"GPL";
	static char vlog[65536];
	if (getenv("FUZZ_PROGLOG")) {
		vlog[0] = 0;
		a.log_buf = (unsigned long long)vlog;
		a.log_size = sizeof(vlog);
		a.log_level = 1;
	}
	int fd = bpf(BPF_PROG_LOAD, &a, sizeof(a));
	if (fd < 0) {
		if (getenv("FUZZ_PROGLOG")) {
			/* The verifier's last two lines (the instruction and the reason). */
			int len = strlen(vlog), nl = 0, at = len;
			while (at > 0 && nl < 3)
				if (vlog[--at] == '\n')
					nl++;
			for (char *q = vlog + at; *q; q++)
				if (*q == '\n')
					*q = ' ';
			printf("%d prog %s %s\n", i, ename(-fd), vlog + at);
			return;
		}
		printf("%d prog %s\n", i, ename(-fd));
		return;
	}
	unsigned char pkt[64] = { 0 };
	memset(&a, 0, sizeof(a));
	a.test.prog_fd = fd;
	a.test.data_in = (unsigned long long)pkt;
	a.test.data_size_in = sizeof(pkt);
	long r = bpf(BPF_PROG_TEST_RUN, &a, sizeof(a));
	close(fd);
	if (r < 0)
		printf("%d prog run %s\n", i, ename(-r));
	else
		printf("%d prog ran %#x\n", i, a.test.retval);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s bpf|btf|rtnl|prog SEED COUNT\n", argv[0]);
		return 2;
	}
	rng = strtoull(argv[2], 0, 0) * 0x9e3779b97f4a7c15ull + 1;
	int count = atoi(argv[3]);
	if (getenv("FUZZ_DUMP"))
		dump = atoi(getenv("FUZZ_DUMP"));
	if (unshare(CLONE_NEWNET)) {
		perror("unshare");
		return 2;
	}
	if (setup())
		return 2;
	btf_build();
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < count; i++) {
		if (!strcmp(argv[1], "bpf"))
			fuzz_bpf(i);
		else if (!strcmp(argv[1], "btf"))
			fuzz_btf(i);
		else if (!strcmp(argv[1], "prog"))
			fuzz_prog(i);
		else
			fuzz_rtnl(i);
	}
	return 0;
}
