/* A libbpf loader for the supervisor tests: loads sv_prog.bpf.o, sets .rodata before
 * load, updates and reads maps, reads and writes .bss/.data through libbpf's mmap
 * (skeleton style), runs the program with bpf_prog_test_run_opts, and prints
 * everything it saw. The output must be the same under the kernel and bpftime-run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static int silent(enum libbpf_print_level l, const char *f, va_list a)
{
	if (getenv("SV_VERBOSE"))
		return vfprintf(stderr, f, a);
	return 0;
}

static int run(int prog_fd, int len, const char *what)
{
	unsigned char pkt[128] = { 0 }, out[256];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = len, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = 1);
	memset(pkt, 0xab, 6);
	pkt[12] = 0x08;
	int err = bpf_prog_test_run_opts(prog_fd, &o);
	printf("run %s len %d: err %d retval %u size_out %u same %d\n", what, len, err ? -errno : 0,
	       o.retval, o.data_size_out, memcmp(pkt, out, len) == 0);
	return err;
}

static struct bpf_map *find_map(struct bpf_object *obj, const char *suffix)
{
	struct bpf_map *m;
	bpf_object__for_each_map(m, obj)
	{
		const char *n = bpf_map__name(m);
		size_t ln = strlen(n), ls = strlen(suffix);
		if (ln >= ls && strcmp(n + ln - ls, suffix) == 0)
			return m;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s OBJ\n", argv[0]);
		return 2;
	}
	libbpf_set_print(silent);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		printf("open failed: %d\n", -errno);
		return 1;
	}
	struct bpf_map *rodata = find_map(obj, ".rodata"), *bss = find_map(obj, ".bss"),
		       *data = find_map(obj, ".data");
	size_t sz = 0;
	unsigned *ro = (void *)bpf_map__initial_value(rodata, &sz);
	*ro = 2; /* verdict_default = XDP_PASS */
	int err = bpf_object__load(obj);
	printf("load: %d\n", err);
	if (err)
		return 1;
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "sv_prog");
	int prog_fd = bpf_program__fd(prog);
	int counts = bpf_object__find_map_fd_by_name(obj, "counts");
	int config = bpf_object__find_map_fd_by_name(obj, "config");
	struct bpf_map *m;
	bpf_object__for_each_map(m, obj)
	{
		struct bpf_map_info info = {};
		__u32 il = sizeof(info);
		bpf_obj_get_info_by_fd(bpf_map__fd(m), &info, &il);
		printf("map %s type %u key %u value %u max %u flags %#x\n", bpf_map__name(m), info.type,
		       info.key_size, info.value_size, info.max_entries, info.map_flags);
	}
	struct bpf_prog_info pinfo = {};
	__u32 pl = sizeof(pinfo);
	bpf_obj_get_info_by_fd(prog_fd, &pinfo, &pl);
	printf("prog %s type %u nr_map_ids %u gpl %u\n", pinfo.name, pinfo.type, pinfo.nr_map_ids,
	       pinfo.gpl_compatible);
	if (argc > 2 && strcmp(argv[2], "hold") == 0) {
		/* Keep the objects alive for other tools: print the ids, wait for stdin EOF. */
		struct bpf_map_info ci = {}, gi = {};
		__u32 cl = sizeof(ci), gl = sizeof(gi);
		bpf_obj_get_info_by_fd(counts, &ci, &cl);
		bpf_obj_get_info_by_fd(config, &gi, &gl);
		__u32 one = 1, seven = 7;
		bpf_map_update_elem(config, &one, &seven, BPF_ANY);
		printf("ids %u %u %u %u\n", pinfo.id, ci.id, gi.id, pinfo.btf_id);
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0)
			;
		return 0;
	}

	__u32 k0 = 0, v = 0;
	printf("config update: %d\n", bpf_map_update_elem(config, &k0, &v, BPF_ANY));
	run(prog_fd, 60, "pass");
	v = 1; /* XDP_DROP */
	bpf_map_update_elem(config, &k0, &v, BPF_ANY);
	run(prog_fd, 60, "drop");
	run(prog_fd, 14, "short");
	err = run(prog_fd, 13, "too-short");

	__u64 *bssp = (void *)bpf_map__initial_value(bss, &sz);
	__u64 *datap = (void *)bpf_map__initial_value(data, &sz);
	printf(".bss packets (mmap) %llu\n", (unsigned long long)bssp[0]);
	printf(".data bytes_total (mmap) %llu\n", (unsigned long long)datap[0]);
	bssp[0] = 100; /* write through the mapping, read back with the syscall */
	__u64 val = 0;
	bpf_map_lookup_elem(bpf_map__fd(bss), &k0, &val);
	printf(".bss packets (lookup after mmap write) %llu\n", (unsigned long long)val);
	run(prog_fd, 20, "after-write");
	printf(".bss packets (mmap) %llu\n", (unsigned long long)bssp[0]);

	__u32 key, next;
	__u64 cnt;
	int first = 1;
	while (bpf_map_get_next_key(counts, first ? NULL : &key, &next) == 0) {
		first = 0;
		key = next;
		bpf_map_lookup_elem(counts, &key, &cnt);
		printf("counts[%u] = %llu\n", key, (unsigned long long)cnt);
	}
	key = 63;
	printf("lookup missing: %d\n", bpf_map_lookup_elem(counts, &key, &cnt) ? -errno : 0);
	cnt = 5;
	printf("update NOEXIST existing: %d\n", bpf_map_update_elem(counts, &(__u32){ 60 }, &cnt, BPF_NOEXIST) ? -errno : 0);
	printf("update rodata (frozen): %d\n", bpf_map_update_elem(bpf_map__fd(rodata), &k0, ro, BPF_ANY) ? -errno : 0);
	printf("delete: %d\n", bpf_map_delete_elem(counts, &(__u32){ 60 }) ? -errno : 0);
	printf("delete again: %d\n", bpf_map_delete_elem(counts, &(__u32){ 60 }) ? -errno : 0);
	bpf_object__close(obj);
	return 0;
}
