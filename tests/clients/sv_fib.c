/* bpf_fib_lookup through BPF_PROG_TEST_RUN: each argument is a case
 * "family,dst,src,ifname,flags,tot_len,tbid"; the XDP program copies the
 * struct bpf_fib_lookup from the packet, calls the helper with the flags that follow
 * it, and writes the struct back. Prints the result and the 64 bytes of each case.
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

int main(int argc, char **argv)
{
	struct bpf_insn p[64];
	int n = 0;
#define I(c, d, s, o, im) p[n++] = (struct bpf_insn){c, d, s, o, im}
	I(0xbf, 6, 1, 0, 0);
	I(0x61, 2, 6, 0, 0);
	I(0x61, 3, 6, 4, 0);
	I(0xbf, 4, 2, 0, 0);
	I(0x07, 4, 0, 0, 72);
	int j1 = n;
	I(0x2d, 4, 3, 0, 0); /* if r4 > r3 goto out (patched) */
	for (int k = 0; k < 8; k++) {
		I(0x79, 5, 2, 8 * k, 0);
		I(0x7b, 10, 5, -64 + 8 * k, 0);
	}
	I(0x61, 7, 2, 64, 0);
	I(0xbf, 1, 6, 0, 0);
	I(0xbf, 2, 10, 0, 0);
	I(0x07, 2, 0, 0, -64);
	I(0xb7, 3, 0, 0, 64);
	I(0xbf, 4, 7, 0, 0);
	I(0x85, 0, 0, 0, 69);
	I(0xbf, 8, 0, 0, 0);
	I(0x61, 2, 6, 0, 0);
	I(0x61, 3, 6, 4, 0);
	I(0xbf, 4, 2, 0, 0);
	I(0x07, 4, 0, 0, 72);
	int j2 = n;
	I(0x2d, 4, 3, 0, 0);
	for (int k = 0; k < 8; k++) {
		I(0x79, 5, 10, -64 + 8 * k, 0);
		I(0x7b, 2, 5, 8 * k, 0);
	}
	I(0xbf, 0, 8, 0, 0);
	I(0x95, 0, 0, 0, 0);
	int out = n;
	I(0xb7, 0, 0, 0, 999);
	I(0x95, 0, 0, 0, 0);
	p[j1].off = out - j1 - 1;
	p[j2].off = out - j2 - 1;

	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (unsigned long)p;
	a.insn_cnt = n;
	a.license = (unsigned long)"GPL";
	int fd = sys(BPF_PROG_LOAD, &a);
	if (fd < 0) {
		perror("load");
		return 1;
	}
	/* The bpf_check_mtu program: ifindex, mtu_len, len_diff, flags from the packet;
	 * returns the result, writes mtu_len back. */
	struct bpf_insn q[48];
	int m = 0;
#define Q(c, d, s, o, im) q[m++] = (struct bpf_insn){c, d, s, o, im}
	Q(0xbf, 6, 1, 0, 0);
	Q(0x61, 9, 6, 0, 0);
	Q(0x61, 3, 6, 4, 0);
	Q(0xbf, 4, 9, 0, 0);
	Q(0x07, 4, 0, 0, 16);
	int k1 = m;
	Q(0x2d, 4, 3, 0, 0);
	Q(0x61, 7, 9, 0, 0);
	Q(0x61, 8, 9, 4, 0);
	Q(0x63, 10, 8, -4, 0);
	Q(0x61, 4, 9, 8, 0);
	Q(0x61, 5, 9, 12, 0);
	Q(0xbf, 1, 6, 0, 0);
	Q(0xbf, 2, 7, 0, 0);
	Q(0xbf, 3, 10, 0, 0);
	Q(0x07, 3, 0, 0, -4);
	Q(0x85, 0, 0, 0, 163);
	Q(0xbf, 8, 0, 0, 0);
	Q(0x61, 9, 6, 0, 0);
	Q(0x61, 3, 6, 4, 0);
	Q(0xbf, 4, 9, 0, 0);
	Q(0x07, 4, 0, 0, 16);
	int k2 = m;
	Q(0x2d, 4, 3, 0, 0);
	Q(0x61, 1, 10, -4, 0);
	Q(0x63, 9, 1, 4, 0);
	Q(0xbf, 0, 8, 0, 0);
	Q(0x95, 0, 0, 0, 0);
	int qout = m;
	Q(0xb7, 0, 0, 0, 999);
	Q(0x95, 0, 0, 0, 0);
	q[k1].off = qout - k1 - 1;
	q[k2].off = qout - k2 - 1;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (unsigned long)q;
	a.insn_cnt = m;
	a.license = (unsigned long)"GPL";
	int mfd = sys(BPF_PROG_LOAD, &a);
	if (mfd < 0) {
		perror("load check_mtu");
		return 1;
	}

	for (int c = 1; c < argc; c++) {
		char buf[256], *f[7];
		if (!strncmp(argv[c], "mtu,", 4)) {
			/* "mtu,ifname,mtu_len,len_diff,flags" */
			int nf = 0;
			snprintf(buf, sizeof(buf), "%s", argv[c] + 4);
			for (char *t = strtok(buf, ","); t && nf < 4; t = strtok(NULL, ","))
				f[nf++] = t;
			if (nf != 4)
				return 1;
			unsigned char pkt[80] = {0}, outp[80];
			unsigned v[4] = {strcmp(f[0], "0") ? if_nametoindex(f[0]) : 0,
					 strtoul(f[1], NULL, 0), strtol(f[2], NULL, 0),
					 strtoul(f[3], NULL, 0)};
			if (!strcmp(f[0], "none"))
				v[0] = 9999;
			memcpy(pkt, v, sizeof(v));
			memset(&a, 0, sizeof(a));
			a.test.prog_fd = mfd;
			a.test.data_in = (unsigned long)pkt;
			a.test.data_size_in = sizeof(pkt);
			a.test.data_out = (unsigned long)outp;
			a.test.data_size_out = sizeof(outp);
			a.test.repeat = 1;
			long r = sys(BPF_PROG_TEST_RUN, &a);
			unsigned got;
			memcpy(&got, outp + 4, 4);
			printf("%s: run %ld ret %d mtu_len %u\n", argv[c], r, (int)a.test.retval, got);
			continue;
		}
		int nf = 0;
		snprintf(buf, sizeof(buf), "%s", argv[c]);
		for (char *t = strtok(buf, ","); t && nf < 7; t = strtok(NULL, ","))
			f[nf++] = t;
		if (nf != 7) {
			fprintf(stderr, "bad case %s\n", argv[c]);
			return 1;
		}
		unsigned char pkt[80] = {0};
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
		unsigned char outp[80];
		memset(&a, 0, sizeof(a));
		a.test.prog_fd = fd;
		a.test.data_in = (unsigned long)pkt;
		a.test.data_size_in = sizeof(pkt);
		a.test.data_out = (unsigned long)outp;
		a.test.data_size_out = sizeof(outp);
		a.test.repeat = 1;
		long r = sys(BPF_PROG_TEST_RUN, &a);
		/* the ifindex the kernel writes back is this namespace's: print names */
		unsigned oif;
		memcpy(&oif, outp + 8, 4);
		char name[IF_NAMESIZE] = "?";
		if (!if_indextoname(oif, name))
			snprintf(name, sizeof(name), "#%u", oif);
		printf("%s: run %ld ret %d oif %s bytes ", argv[c], r, (int)a.test.retval, name);
		for (int k = 0; k < 64; k++)
			if (k < 8 || k >= 12)
				printf("%02x", outp[k]);
		printf("\n");
	}
	return 0;
}
