/* Table-driven malformed bpf() calls for the supervisor tests: prints one line per
 * case, "name: result" (a value or -errno). Run natively and under bpftime-run: the
 * outputs must be equal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

static char attr[8192];

static long sys(int cmd, void *a, unsigned size)
{
	long r = syscall(__NR_bpf, cmd, a, size);
	return r < 0 ? -errno : r;
}

#define OK_FD(x) ((x) >= 0 ? 0 : (x))

static void put32(int off, unsigned v) { memcpy(attr + off, &v, 4); }
static void put64(int off, unsigned long long v) { memcpy(attr + off, &v, 8); }
static void clr(void) { memset(attr, 0, sizeof(attr)); }

static int map_create(unsigned type, unsigned ks, unsigned vs, unsigned max, unsigned flags)
{
	clr();
	put32(0, type); put32(4, ks); put32(8, vs); put32(12, max); put32(16, flags);
	return sys(BPF_MAP_CREATE, attr, 72);
}

static void report(const char *name, long r)
{
	/* Object fds differ between kernel and bpftime: report only success. */
	printf("%s: %ld\n", name, r >= 0 ? 0 : r);
}

int main(void)
{
	int hash = map_create(BPF_MAP_TYPE_HASH, 4, 8, 4, 0);
	int arr = map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0);
	int notbpf = open("/proc/self/status", O_RDONLY);
	unsigned key = 1, k99 = 99;
	unsigned long long val = 5;
	printf("setup: %d %d\n", hash >= 0, arr >= 0);

	clr(); report("unknown cmd", sys(99, attr, 72));
	clr(); report("unknown cmd big", sys(1000, attr, 72));
	clr(); report("size > page", sys(BPF_MAP_CREATE, attr, 4097));
	clr(); attr[168] = 1; report("tail past union", sys(BPF_MAP_CREATE, attr, 4096));
	clr(); attr[4000] = 1; report("tail far", sys(BPF_MAP_CREATE, attr, 4096));
	report("bad attr ptr", sys(BPF_MAP_CREATE, (void *)8, 72));
	report("null attr size 0", sys(BPF_MAP_CREATE, NULL, 0));
	report("bad attr ptr big size", sys(BPF_MAP_CREATE, (void *)8, 200));

	/* MAP_CREATE */
	report("map type 0", map_create(0, 4, 4, 1, 0));
	report("map type 999", map_create(999, 4, 4, 1, 0));
	report("hash key 0", map_create(BPF_MAP_TYPE_HASH, 0, 4, 1, 0));
	report("hash max 0", map_create(BPF_MAP_TYPE_HASH, 4, 4, 0, 0));
	report("array value 0", map_create(BPF_MAP_TYPE_ARRAY, 4, 0, 1, 0));
	report("array key 8", map_create(BPF_MAP_TYPE_ARRAY, 8, 4, 1, 0));
	report("unknown map flag", map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 1u << 30));
	report("rdonly|wronly", map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_RDONLY | BPF_F_WRONLY));
	clr(); put32(0, BPF_MAP_TYPE_ARRAY); put32(4, 4); put32(8, 4); put32(12, 1);
	attr[100] = 1; report("map create byte after last field", sys(BPF_MAP_CREATE, attr, 128));
	clr(); put32(0, BPF_MAP_TYPE_ARRAY); put32(4, 4); put32(8, 4); put32(12, 1);
	strcpy(attr + 28, "bad-name"); report("map bad name", sys(BPF_MAP_CREATE, attr, 72));
	clr(); put32(0, BPF_MAP_TYPE_ARRAY); put32(4, 4); put32(8, 4); put32(12, 1);
	memset(attr + 28, 'a', 16); report("map name no nul", sys(BPF_MAP_CREATE, attr, 72));
	clr(); put32(0, BPF_MAP_TYPE_ARRAY); put32(4, 4); put32(8, 4); put32(12, 1);
	put32(48, 9999); put32(56, 1); report("map bad btf fd", sys(BPF_MAP_CREATE, attr, 72));

	/* element commands */
#define ELEM(cmd, fd, k, v, fl) (clr(), put32(0, fd), put64(8, (unsigned long)(k)), put64(16, (unsigned long)(v)), put64(24, fl), sys(cmd, attr, 32))
	report("update ok", ELEM(BPF_MAP_UPDATE_ELEM, hash, &key, &val, 0));
	report("lookup ok", ELEM(BPF_MAP_LOOKUP_ELEM, hash, &key, &val, 0));
	report("lookup bad fd", ELEM(BPF_MAP_LOOKUP_ELEM, 9999, &key, &val, 0));
	report("lookup negative fd", ELEM(BPF_MAP_LOOKUP_ELEM, -1, &key, &val, 0));
	report("lookup not a map", ELEM(BPF_MAP_LOOKUP_ELEM, notbpf, &key, &val, 0));
	report("lookup bad key ptr", ELEM(BPF_MAP_LOOKUP_ELEM, hash, 8, &val, 0));
	report("lookup bad value ptr", ELEM(BPF_MAP_LOOKUP_ELEM, hash, &key, 8, 0));
	report("lookup bad flags", ELEM(BPF_MAP_LOOKUP_ELEM, hash, &key, &val, 1));
	report("lookup F_LOCK no lock", ELEM(BPF_MAP_LOOKUP_ELEM, hash, &key, &val, BPF_F_LOCK));
	report("lookup missing", ELEM(BPF_MAP_LOOKUP_ELEM, hash, &k99, &val, 0));
	report("update bad flags", ELEM(BPF_MAP_UPDATE_ELEM, hash, &key, &val, 8));
	report("update noexist existing", ELEM(BPF_MAP_UPDATE_ELEM, hash, &key, &val, BPF_NOEXIST));
	report("update exist missing", ELEM(BPF_MAP_UPDATE_ELEM, hash, &k99, &val, BPF_EXIST));
	report("update bad value ptr", ELEM(BPF_MAP_UPDATE_ELEM, hash, &key, 8, 0));
	report("array update out of range", ELEM(BPF_MAP_UPDATE_ELEM, arr, &k99, &val, 0));
	report("array update noexist", ELEM(BPF_MAP_UPDATE_ELEM, arr, &key, &val, BPF_NOEXIST));
	report("array delete", ELEM(BPF_MAP_DELETE_ELEM, arr, &key, 0, 0));
	report("array lookup out of range", ELEM(BPF_MAP_LOOKUP_ELEM, arr, &k99, &val, 0));
	report("delete missing", ELEM(BPF_MAP_DELETE_ELEM, hash, &k99, 0, 0));
	report("delete bad fd", ELEM(BPF_MAP_DELETE_ELEM, 9999, &key, 0, 0));
	report("elem byte after flags", (clr(), put32(0, hash), put64(8, (unsigned long)&key), put64(16, (unsigned long)&val), attr[40] = 1, sys(BPF_MAP_LOOKUP_ELEM, attr, 48)));
	report("next key bad fd", ELEM(BPF_MAP_GET_NEXT_KEY, 9999, 0, &val, 0));
	report("next key null key", ELEM(BPF_MAP_GET_NEXT_KEY, hash, 0, &k99, 0));
	report("next key bad out ptr", ELEM(BPF_MAP_GET_NEXT_KEY, hash, 0, 8, 0));
	report("array next key last", (k99 = 3, ELEM(BPF_MAP_GET_NEXT_KEY, arr, &k99, &key, 0)));
	report("array next key invalid", (k99 = 77, ELEM(BPF_MAP_GET_NEXT_KEY, arr, &k99, &key, 0)));
	printf("array next key invalid -> %u\n", key);
	report("lookup_and_delete hash", (key = 1, ELEM(BPF_MAP_LOOKUP_AND_DELETE_ELEM, hash, &key, &val, 0)));
	report("freeze", (clr(), put32(0, arr), sys(BPF_MAP_FREEZE, attr, 4)));
	report("freeze again", (clr(), put32(0, arr), sys(BPF_MAP_FREEZE, attr, 4)));
	report("update frozen", ELEM(BPF_MAP_UPDATE_ELEM, arr, &key, &val, 0));
	report("freeze bad fd", (clr(), put32(0, 9999), sys(BPF_MAP_FREEZE, attr, 4)));

	/* PROG_LOAD */
	struct bpf_insn ok[2] = { { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0 },
				  { .code = BPF_JMP | BPF_EXIT } };
	struct bpf_insn noexit[1] = { { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0 } };
	char log[4096];
#define PROG(type, insns, cnt, lic) (clr(), put32(0, type), put32(4, cnt), put64(8, (unsigned long)(insns)), put64(16, (unsigned long)(lic)))
	PROG(BPF_PROG_TYPE_XDP, ok, 2, "GPL");
	int prog = sys(BPF_PROG_LOAD, attr, 144);
	report("prog ok", prog);
	PROG(BPF_PROG_TYPE_XDP, ok, 0, "GPL"); report("prog insn_cnt 0", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, 8, 2, "GPL"); report("prog bad insns ptr", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, ok, 2, 8); report("prog bad license ptr", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, noexit, 1, "GPL"); report("prog no exit", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, ok, 2, "GPL"); put32(44, 1u << 20); report("prog unknown flags", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, ok, 2, "GPL"); strcpy(attr + 48, "a-b"); report("prog bad name", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, ok, 2, "GPL"); put32(24, 1); report("prog log level no buf", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, ok, 2, "GPL"); put32(24, 1); put32(28, 16); put64(32, (unsigned long)log); report("prog log too small", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, ok, 2, "GPL"); put32(72, 9999); put32(76, 8); put32(88, 1); report("prog bad btf fd", sys(BPF_PROG_LOAD, attr, 144));
	PROG(BPF_PROG_TYPE_XDP, ok, 2, "GPL"); put64(136, 1); report("prog byte in core_relo_rec_size", sys(BPF_PROG_LOAD, attr, 168));
	/* ld_imm64 of a map: a closed fd is EBADF, an open one that is not a map EINVAL
	 * (bpf_map_get), directly or through fd_array. */
	struct bpf_insn ldmap[4] = { { .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = 1, .src_reg = BPF_PSEUDO_MAP_FD },
				     { 0 },
				     { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 2 },
				     { .code = BPF_JMP | BPF_EXIT } };
	int fdarr[1] = { notbpf };
	ldmap[0].imm = notbpf; PROG(BPF_PROG_TYPE_XDP, ldmap, 4, "GPL"); report("prog map fd not a map", sys(BPF_PROG_LOAD, attr, 144));
	ldmap[0].imm = 9999; PROG(BPF_PROG_TYPE_XDP, ldmap, 4, "GPL"); report("prog map fd closed", sys(BPF_PROG_LOAD, attr, 144));
	ldmap[0].imm = prog; PROG(BPF_PROG_TYPE_XDP, ldmap, 4, "GPL"); report("prog map fd a prog", sys(BPF_PROG_LOAD, attr, 144));
	ldmap[0].src_reg = 5; ldmap[0].imm = 0; PROG(BPF_PROG_TYPE_XDP, ldmap, 4, "GPL"); put64(120, (unsigned long)fdarr);
	report("prog fd_array entry not a map", sys(BPF_PROG_LOAD, attr, 144));

	/* BTF_LOAD */
	char junk[64] = { 1, 2, 3 };
	clr(); put64(0, (unsigned long)junk); put32(16, sizeof(junk)); report("btf garbage", sys(BPF_BTF_LOAD, attr, 40));
	clr(); put64(0, 8); put32(16, 64); report("btf bad ptr", sys(BPF_BTF_LOAD, attr, 40));
	clr(); put64(0, (unsigned long)junk); put32(16, 1u << 30); report("btf too big", sys(BPF_BTF_LOAD, attr, 40));
	clr(); put64(0, (unsigned long)junk); put32(16, 0); report("btf size 0", sys(BPF_BTF_LOAD, attr, 40));

	/* OBJ_GET_INFO_BY_FD */
	char info[512] = { 0 };
	clr(); put32(0, 9999); put32(4, 80); put64(8, (unsigned long)info); report("info bad fd", sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16));
	clr(); put32(0, notbpf); put32(4, 80); put64(8, (unsigned long)info); report("info not bpf", sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16));
	clr(); put32(0, hash); put32(4, 80); put64(8, 8); report("info bad ptr", sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16));
	memset(info, 0, sizeof(info)); info[300] = 1;
	clr(); put32(0, hash); put32(4, 400); put64(8, (unsigned long)info); report("info tail nonzero", sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16));
	memset(info, 0, sizeof(info));
	clr(); put32(0, hash); put32(4, 400); put64(8, (unsigned long)info); report("info long zero tail", sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16));
	unsigned il; memcpy(&il, attr + 4, 4);
	printf("info_len written back: %u\n", il);
	clr(); put32(0, hash); put32(4, 8); put64(8, (unsigned long)info); report("info short", sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16));
	memcpy(&il, attr + 4, 4); printf("short info_len: %u type %u\n", il, *(unsigned *)info);

	/* ids */
	clr(); put32(0, 0xffffffffu); report("next id at end", sys(BPF_MAP_GET_NEXT_ID, attr, 12));
	clr(); put32(0, 0xfffffff0u); report("map fd by missing id", sys(BPF_MAP_GET_FD_BY_ID, attr, 12));
	clr(); put32(0, 0xfffffff0u); put32(8, 1u << 5); report("map fd by id bad flags", sys(BPF_MAP_GET_FD_BY_ID, attr, 12));
	clr(); put32(0, 0xfffffff0u); report("prog fd by missing id", sys(BPF_PROG_GET_FD_BY_ID, attr, 12));
	clr(); put32(0, 0xfffffff0u); report("btf fd by missing id", sys(BPF_BTF_GET_FD_BY_ID, attr, 12));
	clr(); put32(0, 0xfffffff0u); report("link fd by missing id", sys(BPF_LINK_GET_FD_BY_ID, attr, 12));

	/* fd-holding maps */
	{
		int pa = map_create(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0);
		unsigned k0 = 0, k9 = 9, got = 0, pfd = prog, hfd = hash, bad = 9999;
		struct bpf_prog_info pi = { 0 };
		clr(); put32(0, prog); put32(4, sizeof(pi)); put64(8, (unsigned long)&pi);
		sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16);
		report("prog array create", pa);
		report("prog array update", ELEM(BPF_MAP_UPDATE_ELEM, pa, &k0, &pfd, 0));
		report("prog array lookup", ELEM(BPF_MAP_LOOKUP_ELEM, pa, &k0, &got, 0));
		printf("prog array holds the prog id: %d\n", got == pi.id);
		report("prog array update with a map fd", ELEM(BPF_MAP_UPDATE_ELEM, pa, &k0, &hfd, 0));
		report("prog array update bad fd", ELEM(BPF_MAP_UPDATE_ELEM, pa, &k0, &bad, 0));
		report("prog array update out of range", ELEM(BPF_MAP_UPDATE_ELEM, pa, &k9, &pfd, 0));
		report("prog array update noexist", ELEM(BPF_MAP_UPDATE_ELEM, pa, &k0, &pfd, BPF_NOEXIST));
		report("prog array delete", ELEM(BPF_MAP_DELETE_ELEM, pa, &k0, 0, 0));
		report("prog array delete again", ELEM(BPF_MAP_DELETE_ELEM, pa, &k0, 0, 0));
		int inner = map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0);
		clr(); put32(0, BPF_MAP_TYPE_ARRAY_OF_MAPS); put32(4, 4); put32(8, 4); put32(12, 2); put32(20, inner);
		int outer = sys(BPF_MAP_CREATE, attr, 72);
		report("array of maps create", outer);
		clr(); put32(0, BPF_MAP_TYPE_ARRAY_OF_MAPS); put32(4, 4); put32(8, 4); put32(12, 2); put32(20, 9999);
		report("array of maps bad inner fd", sys(BPF_MAP_CREATE, attr, 72));
		unsigned ifd = inner;
		struct bpf_map_info mi = { 0 };
		clr(); put32(0, inner); put32(4, sizeof(mi)); put64(8, (unsigned long)&mi);
		sys(BPF_OBJ_GET_INFO_BY_FD, attr, 16);
		report("array of maps update", ELEM(BPF_MAP_UPDATE_ELEM, outer, &k0, &ifd, 0));
		got = 0;
		report("array of maps lookup", ELEM(BPF_MAP_LOOKUP_ELEM, outer, &k0, &got, 0));
		printf("array of maps holds the inner id: %d\n", got == mi.id);
		report("array of maps incompatible inner", ELEM(BPF_MAP_UPDATE_ELEM, outer, &k0, &hfd, 0));
		report("array of maps update with a prog fd", ELEM(BPF_MAP_UPDATE_ELEM, outer, &k0, &pfd, 0));
	}

	/* misc */
	clr(); put32(0, 9999); report("test run bad fd", sys(BPF_PROG_TEST_RUN, attr, 80));
	clr(); put32(0, hash); report("test run on a map", sys(BPF_PROG_TEST_RUN, attr, 80));
	clr(); put32(0, 5); report("enable stats bad type", sys(BPF_ENABLE_STATS, attr, 4));
	clr(); put32(0, 9999); put32(4, hash); report("bind map bad prog", sys(BPF_PROG_BIND_MAP, attr, 12));
	clr(); put32(0, hash); put32(4, hash); report("bind map on a map", sys(BPF_PROG_BIND_MAP, attr, 12));
	clr(); put32(0, 9999); report("link detach bad fd", sys(BPF_LINK_DETACH, attr, 4));
	return 0;
}
