/* bpf() from a task whose capabilities are those of its own user namespace only
 * (run under `unshare -U -r` as nobody): the kernel checks CAP_BPF/CAP_SYS_ADMIN in the
 * initial user namespace, so every call below is refused.
 * usage: sv_userns MAP_ID */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

static void step(const char *name, int r)
{
	printf("%s %s\n", name, r >= 0 ? "ok" : errno == EPERM ? "EPERM" : strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	printf("euid %d\n", (int)geteuid());
	step("map_create", bpf_map_create(BPF_MAP_TYPE_ARRAY, "userns", 4, 4, 1, NULL));
	struct bpf_insn insns[] = { { .code = 0xb7, .imm = 2 }, { .code = 0x95 } };
	LIBBPF_OPTS(bpf_prog_load_opts, po, .expected_attach_type = BPF_XDP);
	step("prog_load", bpf_prog_load(BPF_PROG_TYPE_XDP, "userns", "GPL", insns, 2, &po));
	__u32 next = 0;
	step("prog_get_next_id", bpf_prog_get_next_id(0, &next));
	step("map_get_next_id", bpf_map_get_next_id(0, &next));
	step("map_get_fd_by_id", bpf_map_get_fd_by_id(atoi(argv[1])));
	return 0;
}
