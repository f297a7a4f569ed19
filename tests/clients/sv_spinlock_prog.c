/* Programs using bpf_spin_lock on an ARRAY value { int cnt; struct bpf_spin_lock lock; }
 * (BTF built by hand): which ones load, and what two test runs of each return.
 * Prints "<case> <errno name>" for a refused load, "<case> ran <r0> <r0>" otherwise. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <bpf/bpf.h>

static unsigned char btf[512];
static unsigned tlen;
static char strs[128];
static unsigned slen = 1;

static unsigned str(const char *s)
{
	unsigned o = slen;
	strcpy(strs + slen, s);
	slen += strlen(s) + 1;
	return o;
}
static void t32(unsigned v) { memcpy(btf + 24 + tlen, &v, 4); tlen += 4; }

static int load_btf(void)
{
	t32(str("int")); t32(BTF_KIND_INT << 24); t32(4); t32(BTF_INT_SIGNED << 24 | 32); /* 1 */
	t32(str("bpf_spin_lock")); t32(BTF_KIND_STRUCT << 24 | 1); t32(4);                 /* 2 */
	t32(str("val")); t32(1); t32(0);
	t32(str("val")); t32(BTF_KIND_STRUCT << 24 | 2); t32(8);                           /* 3 */
	t32(str("cnt")); t32(1); t32(0);
	t32(str("lock")); t32(2); t32(32);
	struct btf_header h = { .magic = BTF_MAGIC, .version = BTF_VERSION, .hdr_len = 24,
				.type_len = tlen, .str_off = tlen, .str_len = slen };
	memcpy(btf, &h, 24);
	memcpy(btf + 24 + tlen, strs, slen);
	return bpf_btf_load(btf, 24 + tlen + slen, NULL);
}

#define I(c, d, s, o, i) ((struct bpf_insn){ .code = c, .dst_reg = d, .src_reg = s, .off = o, .imm = i })
#define MOV(d, s) I(0xbf, d, s, 0, 0)
#define ADDI(d, i) I(0x07, d, 0, 0, i)
#define MOVI(d, i) I(0xb7, d, 0, 0, i)
#define CALL(n) I(0x85, 0, 0, 0, n)
#define EXIT I(0x95, 0, 0, 0, 0)

static struct bpf_insn prog[64];
static int n;

static void lookup(int map)
{
	n = 0;
	prog[n++] = I(0x62, 10, 0, -4, 0);     /* *(u32 *)(r10 - 4) = 0 */
	prog[n++] = MOV(2, 10);
	prog[n++] = ADDI(2, -4);
	prog[n++] = I(0x18, 1, 1, 0, map);      /* r1 = map */
	prog[n++] = I(0, 0, 0, 0, 0);
	prog[n++] = CALL(1);
	prog[n++] = I(0x55, 0, 0, 2, 0);        /* if r0 != 0 goto +2 */
	prog[n++] = MOVI(0, 2);
	prog[n++] = EXIT;
	prog[n++] = MOV(6, 0);
}
static void lock(int id)
{
	prog[n++] = MOV(1, 6);
	prog[n++] = ADDI(1, 4);
	prog[n++] = CALL(id);
}
static void ret(int v)
{
	prog[n++] = MOVI(0, v);
	prog[n++] = EXIT;
}

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
	unsigned r[2] = { 99, 99 };
	for (int i = 0; i < 2; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt, .data_size_in = sizeof(pkt));
		if (bpf_prog_test_run_opts(fd, &t) == 0)
			r[i] = t.retval;
	}
	printf("%s ran %u %u\n", name, r[0], r[1]);
	fflush(stdout);
	close(fd);
}

int main(void)
{
	int b = load_btf();
	LIBBPF_OPTS(bpf_map_create_opts, mo, .btf_fd = b, .btf_key_type_id = 1, .btf_value_type_id = 3);
	int m = bpf_map_create(BPF_MAP_TYPE_ARRAY, "locked", 4, 8, 1, &mo);
	if (b < 0 || m < 0) {
		perror("btf/map");
		return 2;
	}
	lookup(m); lock(93); lock(94); ret(2); run("lock_unlock");
	lookup(m); lock(93); ret(2); run("exit_held");
	lookup(m); lock(93); lock(93); lock(94); ret(2); run("lock_twice");
	lookup(m); lock(94); ret(2); run("unlock_only");
	lookup(m); lock(93); prog[n++] = CALL(5); lock(94); ret(2); run("helper_held");
	/* The lock word on the stack. */
	n = 0;
	prog[n++] = I(0x62, 10, 0, -8, 0);
	prog[n++] = MOV(1, 10);
	prog[n++] = ADDI(1, -8);
	prog[n++] = CALL(93);
	prog[n++] = MOV(1, 10);
	prog[n++] = ADDI(1, -8);
	prog[n++] = CALL(94);
	ret(2);
	run("stack_lock");
	/* A fault while the lock is held (a read far past the value: the kernel refuses it
	 * at load; bpftime checks it at run time, aborts, and must give the lock back). */
	lookup(m); lock(93); prog[n++] = I(0x61, 2, 6, 4000, 0); lock(94); ret(2); run("fault_held");
	lookup(m); lock(93); lock(94); ret(2); run("lock_after");
	return 0;
}
