/* bpf() calls with two faults at once: which errno wins (the kernel's order of checks
 * in bpf_prog_load and bpf_raw_tracepoint_open). One line per case: name errno. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

static char attr[256];
static void put32(int off, unsigned v) { memcpy(attr + off, &v, 4); }
static void put64(int off, unsigned long long v) { memcpy(attr + off, &v, 8); }

static void run(const char *name, int cmd, unsigned size)
{
	long r = syscall(__NR_bpf, cmd, attr, size);
	printf("%s %s\n", name, r >= 0 ? "ok" : strerrorname_np(errno));
	if (r >= 0)
		close(r);
	memset(attr, 0, sizeof(attr));
}

int main(void)
{
	static unsigned long long insns[2] = { 0x00000002000000b7ull, 0x95ull };
	const char *gpl = "GPL";
	unsigned long long bad = 0x10; /* an unmapped user address */
	/* PROG_LOAD: type 0, cnt 4, insns 8, license 16, prog_ifindex 64, eat 68. */
	put32(0, 6); put32(4, 2); put64(8, (unsigned long)insns); run("load.null_license", BPF_PROG_LOAD, 144);
	put32(0, 6); put32(4, 2); put64(8, bad); put64(16, (unsigned long)gpl); run("load.bad_insns", BPF_PROG_LOAD, 144);
	put32(0, 6); put32(4, 2); put64(8, (unsigned long)insns); put64(16, bad); run("load.bad_license", BPF_PROG_LOAD, 144);
	put32(0, 6); put32(4, 2); put64(8, bad); put64(16, (unsigned long)gpl); put32(64, 1); run("load.bad_insns+ifindex", BPF_PROG_LOAD, 144);
	put32(0, 999); put32(4, 2); put64(8, bad); put64(16, (unsigned long)gpl); run("load.bad_insns+type", BPF_PROG_LOAD, 144);
	put32(0, 6); put32(4, 2); put64(8, bad); put64(16, (unsigned long)gpl); put32(68, 999); run("load.bad_insns+eat", BPF_PROG_LOAD, 144);
	put32(0, 6); put32(4, 2000000); put64(8, bad); put64(16, (unsigned long)gpl); run("load.too_many", BPF_PROG_LOAD, 144);
	put32(0, 6); put32(4, 2); put64(8, (unsigned long)insns); put64(16, (unsigned long)gpl); memcpy(attr + 48, "bad-name!", 9); run("load.bad_name", BPF_PROG_LOAD, 144);
	put32(0, 6); put32(4, 2); put64(8, bad); put64(16, (unsigned long)gpl); memcpy(attr + 48, "bad-name!", 9); run("load.bad_insns+name", BPF_PROG_LOAD, 144);
	/* RAW_TRACEPOINT_OPEN: name 0, prog_fd 8. */
	put32(8, 12345); run("rawtp.closed_fd", BPF_RAW_TRACEPOINT_OPEN, 16);
	put32(8, 0); run("rawtp.stdin", BPF_RAW_TRACEPOINT_OPEN, 16);
	put64(0, bad); put32(8, 12345); run("rawtp.bad_name+closed_fd", BPF_RAW_TRACEPOINT_OPEN, 16);
	return 0;
}
