/* Hand-built XDP programs for the verifier cases of the security tests: instruction
 * macros, the program being built (`prog`, `n`), and `run(name)`: load it, print
 * "<name> <EINVAL|EACCES|error>" when refused, else test-run it once on a 64-byte
 * frame and print "<name> ran <r0>". */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>

#define I(c, d, s, o, i) ((struct bpf_insn){ .code = c, .dst_reg = d, .src_reg = s, .off = o, .imm = i })
#define MOV(d, s) I(0xbf, d, s, 0, 0)
#define ADDI(d, i) I(0x07, d, 0, 0, i)
#define MOVI(d, i) I(0xb7, d, 0, 0, i)
#define CALL(n) I(0x85, 0, 0, 0, n)
#define EXIT I(0x95, 0, 0, 0, 0)

static struct bpf_insn prog[64];
static int n;

static void run(const char *name)
{
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_XDP);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, name, "GPL", prog, n, &o);
	if (fd < 0) {
		printf("%s %s\n", name, errno == EINVAL ? "EINVAL" : errno == EACCES ? "EACCES" : strerror(errno));
		fflush(stdout);
		return;
	}
	unsigned char pkt[64] = { 0 };
	unsigned r = 99;
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt, .data_size_in = sizeof(pkt));
	if (bpf_prog_test_run_opts(fd, &t) == 0)
		r = t.retval;
	printf("%s ran %u\n", name, r);
	fflush(stdout);
	close(fd);
}
