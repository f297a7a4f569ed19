/* XDP attach client for the supervisor tests: loads sv_prog.bpf.o (verdict_default =
 * XDP_PASS), attaches it to IFNAME with a bpf_link (BPF_LINK_CREATE), prints the link's
 * info, then obeys stdin lines: "drop" (config[0] = XDP_DROP), "pass", "count" (prints
 * the .bss packet counter), "quit". */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return 1;
	struct bpf_map *m, *rodata = NULL, *bss = NULL;
	bpf_object__for_each_map(m, obj)
	{
		const char *n = bpf_map__name(m);
		if (strstr(n, ".rodata"))
			rodata = m;
		if (strstr(n, ".bss"))
			bss = m;
	}
	size_t sz;
	*(unsigned *)bpf_map__initial_value(rodata, &sz) = 2; /* XDP_PASS */
	if (bpf_object__load(obj)) {
		printf("load failed %d\n", -errno);
		return 1;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "sv_prog");
	int ifindex = if_nametoindex(argv[2]);
	struct bpf_link *link = bpf_program__attach_xdp(prog, ifindex);
	if (!link) {
		printf("attach failed %d\n", -errno);
		return 1;
	}
	struct bpf_link_info li = {};
	struct bpf_prog_info pi = {};
	__u32 ll = sizeof(li), pl = sizeof(pi);
	bpf_obj_get_info_by_fd(bpf_link__fd(link), &li, &ll);
	bpf_obj_get_info_by_fd(bpf_program__fd(prog), &pi, &pl);
	printf("link type %u ifindex_ok %d prog_ok %d\n", li.type, li.xdp.ifindex == (unsigned)ifindex,
	       li.prog_id == pi.id);
	printf("ready\n");
	fflush(stdout);
	int config = bpf_object__find_map_fd_by_name(obj, "config");
	char line[64];
	__u32 k0 = 0;
	while (fgets(line, sizeof(line), stdin)) {
		__u32 v;
		if (!strncmp(line, "drop", 4)) {
			v = 1;
			printf("update %d\n", bpf_map_update_elem(config, &k0, &v, 0));
		} else if (!strncmp(line, "pass", 4)) {
			v = 0;
			printf("update %d\n", bpf_map_update_elem(config, &k0, &v, 0));
		} else if (!strncmp(line, "count", 5)) {
			__u64 n = 0;
			bpf_map_lookup_elem(bpf_map__fd(bss), &k0, &n);
			printf("packets %llu\n", (unsigned long long)n);
		} else if (!strncmp(line, "quit", 4)) {
			break;
		}
		fflush(stdout);
	}
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
