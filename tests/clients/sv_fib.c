/* bpf_fib_lookup and bpf_check_mtu through BPF_PROG_TEST_RUN.
 * A case "family,dst,src,ifname,flags,tot_len,tbid": the XDP program copies the
 * struct bpf_fib_lookup from the packet, calls the helper with the flags that follow
 * it, and writes the struct back; prints the result and the 64 bytes.
 * A case "mtu,ifname,mtu_len,len_diff,flags": bpf_check_mtu with those arguments;
 * prints the result and mtu_len.
 * Run natively and under bpftime-run in the same network namespace: the outputs
 * must be equal. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

static long sys(int c, union bpf_attr *a) { return syscall(__NR_bpf, c, a, sizeof(*a)); }

struct prog {
	struct bpf_insn i[64];
	int n;
};

static void I(struct prog *p, int c, int d, int s, int o, int im)
{
	p->i[p->n++] = (struct bpf_insn){c, d, s, o, im};
}

/* data_reg = ctx->data (ctx in r6), r3 = ctx->data_end; "if data_reg + need >
 * data_end" jumps to the exit the caller patches in: the index of the jump. */
static int bounds(struct prog *p, int data_reg, int need)
{
	I(p, 0x61, data_reg, 6, 0, 0);
	I(p, 0x61, 3, 6, 4, 0);
	I(p, 0xbf, 4, data_reg, 0, 0);
	I(p, 0x07, 4, 0, 0, need);
	I(p, 0x2d, 4, 3, 0, 0);
	return p->n - 1;
}

/* "return r8", then the bounds-failure exit (999) the jumps `j1`, `j2` go to. */
static void finish(struct prog *p, int j1, int j2)
{
	I(p, 0xbf, 0, 8, 0, 0);
	I(p, 0x95, 0, 0, 0, 0);
	int out = p->n;
	I(p, 0xb7, 0, 0, 0, 999);
	I(p, 0x95, 0, 0, 0, 0);
	p->i[j1].off = out - j1 - 1;
	p->i[j2].off = out - j2 - 1;
}

static int load(struct prog *p, const char *what)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (unsigned long)p->i;
	a.insn_cnt = p->n;
	a.license = (unsigned long)"GPL";
	int fd = sys(BPF_PROG_LOAD, &a);
	if (fd < 0)
		perror(what);
	return fd;
}

/* One run over the 80-byte `pkt`; the output packet in `out`, the verdict in `ret`. */
static long run(int fd, unsigned char *pkt, unsigned char *out, int *ret)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.test.prog_fd = fd;
	a.test.data_in = (unsigned long)pkt;
	a.test.data_size_in = 80;
	a.test.data_out = (unsigned long)out;
	a.test.data_size_out = 80;
	a.test.repeat = 1;
	long r = sys(BPF_PROG_TEST_RUN, &a);
	*ret = (int)a.test.retval;
	return r;
}

/* Split `s` at commas into `f` (at most `max`): the number of fields. */
static int fields(char *s, char **f, int max)
{
	int nf = 0;
	for (char *t = strtok(s, ","); t && nf < max; t = strtok(NULL, ","))
		f[nf++] = t;
	return nf;
}

int main(int argc, char **argv)
{
	/* fib: params (64 bytes) and flags (at 64) from the packet, params back. */
	struct prog fib = {.n = 0};
	I(&fib, 0xbf, 6, 1, 0, 0);
	int j1 = bounds(&fib, 2, 72);
	for (int k = 0; k < 8; k++) {
		I(&fib, 0x79, 5, 2, 8 * k, 0);
		I(&fib, 0x7b, 10, 5, -64 + 8 * k, 0);
	}
	I(&fib, 0x61, 7, 2, 64, 0);
	I(&fib, 0xbf, 1, 6, 0, 0);
	I(&fib, 0xbf, 2, 10, 0, 0);
	I(&fib, 0x07, 2, 0, 0, -64);
	I(&fib, 0xb7, 3, 0, 0, 64);
	I(&fib, 0xbf, 4, 7, 0, 0);
	I(&fib, 0x85, 0, 0, 0, 69);
	I(&fib, 0xbf, 8, 0, 0, 0);
	int j2 = bounds(&fib, 2, 72);
	for (int k = 0; k < 8; k++) {
		I(&fib, 0x79, 5, 10, -64 + 8 * k, 0);
		I(&fib, 0x7b, 2, 5, 8 * k, 0);
	}
	finish(&fib, j1, j2);

	/* check_mtu: ifindex, mtu_len, len_diff, flags from the packet; mtu_len back. */
	struct prog mtu = {.n = 0};
	I(&mtu, 0xbf, 6, 1, 0, 0);
	int k1 = bounds(&mtu, 9, 16);
	I(&mtu, 0x61, 7, 9, 0, 0);
	I(&mtu, 0x61, 8, 9, 4, 0);
	I(&mtu, 0x63, 10, 8, -4, 0);
	I(&mtu, 0x61, 4, 9, 8, 0);
	I(&mtu, 0x61, 5, 9, 12, 0);
	I(&mtu, 0xbf, 1, 6, 0, 0);
	I(&mtu, 0xbf, 2, 7, 0, 0);
	I(&mtu, 0xbf, 3, 10, 0, 0);
	I(&mtu, 0x07, 3, 0, 0, -4);
	I(&mtu, 0x85, 0, 0, 0, 163);
	I(&mtu, 0xbf, 8, 0, 0, 0);
	int k2 = bounds(&mtu, 9, 16);
	I(&mtu, 0x61, 1, 10, -4, 0);
	I(&mtu, 0x63, 9, 1, 4, 0);
	finish(&mtu, k1, k2);

	int fd = load(&fib, "load fib");
	int mfd = load(&mtu, "load check_mtu");
	if (fd < 0 || mfd < 0)
		return 1;

	for (int c = 1; c < argc; c++) {
		char buf[256], *f[7];
		unsigned char pkt[80] = {0}, outp[80];
		int ret;
		if (!strncmp(argv[c], "mtu,", 4)) {
			snprintf(buf, sizeof(buf), "%s", argv[c] + 4);
			if (fields(buf, f, 4) != 4)
				return 1;
			unsigned v[4] = {strcmp(f[0], "0") ? if_nametoindex(f[0]) : 0,
					 strtoul(f[1], NULL, 0), strtol(f[2], NULL, 0),
					 strtoul(f[3], NULL, 0)};
			if (!strcmp(f[0], "none"))
				v[0] = 9999;
			memcpy(pkt, v, sizeof(v));
			long r = run(mfd, pkt, outp, &ret);
			unsigned got;
			memcpy(&got, outp + 4, 4);
			printf("%s: run %ld ret %d mtu_len %u\n", argv[c], r, ret, got);
			continue;
		}
		snprintf(buf, sizeof(buf), "%s", argv[c]);
		if (fields(buf, f, 7) != 7) {
			fprintf(stderr, "bad case %s\n", argv[c]);
			return 1;
		}
		int fam = atoi(f[0]) == 6 ? AF_INET6 : AF_INET;
		pkt[0] = fam;
		unsigned short tot = atoi(f[5]);
		memcpy(pkt + 6, &tot, 2);
		unsigned ifx = strcmp(f[3], "none") ? if_nametoindex(f[3]) : 9999;
		memcpy(pkt + 8, &ifx, 4);
		inet_pton(fam, f[2], pkt + 16);
		inet_pton(fam, f[1], pkt + 32);
		unsigned tbid = atoi(f[6]);
		memcpy(pkt + 48, &tbid, 4);
		unsigned flags = strtoul(f[4], NULL, 0);
		memcpy(pkt + 64, &flags, 4);
		long r = run(fd, pkt, outp, &ret);
		/* the ifindex the kernel writes back is this namespace's: print names */
		unsigned oif;
		memcpy(&oif, outp + 8, 4);
		char name[IF_NAMESIZE] = "?";
		if (!if_indextoname(oif, name))
			snprintf(name, sizeof(name), "#%u", oif);
		printf("%s: run %ld ret %d oif %s bytes ", argv[c], r, ret, name);
		for (int k = 0; k < 64; k++)
			if (k < 8 || k >= 12)
				printf("%02x", outp[k]);
		printf("\n");
	}
	return 0;
}
