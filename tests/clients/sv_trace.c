/* bpf_trace_printk through BPF_PROG_TEST_RUN: loads an XDP program printing
 * "hi %d\n" with 42 (and then "no newline %d" with 7) and runs it once. Prints its
 * pid and the run's result; the trace lines go to the kernel's trace_pipe natively
 * and to the daemon's under bpftime-run. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

static long sys(int c, union bpf_attr *a) { return syscall(__NR_bpf, c, a, sizeof(*a)); }

#define W(s) ((int)((s)[0] | (s)[1] << 8 | (s)[2] << 16 | (s)[3] << 24))

int main(void)
{
	struct bpf_insn p[] = {
		/* "hi %d\n\0" at r10-8 */
		{0xb7, 1, 0, 0, W("hi %")}, {0x63, 10, 1, -8, 0},
		{0xb7, 1, 0, 0, W("d\n\0\0")}, {0x63, 10, 1, -4, 0},
		{0xbf, 1, 10, 0, 0}, {0x07, 1, 0, 0, -8},
		{0xb7, 2, 0, 0, 7}, {0xb7, 3, 0, 0, 42},
		{0x85, 0, 0, 0, 6},
		/* "no newline %d\0" at r10-24 */
		{0xb7, 1, 0, 0, W("no n")}, {0x63, 10, 1, -24, 0},
		{0xb7, 1, 0, 0, W("ewli")}, {0x63, 10, 1, -20, 0},
		{0xb7, 1, 0, 0, W("ne %")}, {0x63, 10, 1, -16, 0},
		{0xb7, 1, 0, 0, W("d\0\0\0")}, {0x63, 10, 1, -12, 0},
		{0xbf, 1, 10, 0, 0}, {0x07, 1, 0, 0, -24},
		{0xb7, 2, 0, 0, 14}, {0xb7, 3, 0, 0, 7},
		{0x85, 0, 0, 0, 6},
		{0xb7, 0, 0, 0, 2}, {0x95, 0, 0, 0, 0},
	};
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (unsigned long)p;
	a.insn_cnt = sizeof(p) / sizeof(p[0]);
	a.license = (unsigned long)"GPL";
	int fd = sys(BPF_PROG_LOAD, &a);
	if (fd < 0) {
		perror("load");
		return 1;
	}
	char pkt[64] = {0};
	memset(&a, 0, sizeof(a));
	a.test.prog_fd = fd;
	a.test.data_in = (unsigned long)pkt;
	a.test.data_size_in = sizeof(pkt);
	a.test.repeat = 1;
	long r = sys(BPF_PROG_TEST_RUN, &a);
	printf("pid %d run %ld retval %u\n", getpid(), r, a.test.retval);
	return 0;
}
