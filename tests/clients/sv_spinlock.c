/* Maps whose value type (from BTF) holds a struct bpf_spin_lock: which map types and
 * layouts MAP_CREATE accepts, and BPF_F_LOCK lookups/updates on them. Prints one line
 * per case; run natively and under bpftime-run: the outputs must be equal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/btf.h>

static char attr[256];
static unsigned char btf[4096];
static unsigned types_len;
static char strs[1024];
static unsigned strs_len = 1;

static long sys(int cmd, void *a, unsigned size)
{
	long r = syscall(__NR_bpf, cmd, a, size);
	return r < 0 ? -errno : r;
}

static void put32(int off, unsigned v) { memcpy(attr + off, &v, 4); }
static void put64(int off, unsigned long long v) { memcpy(attr + off, &v, 8); }
static void clr(void) { memset(attr, 0, sizeof(attr)); }

static unsigned str(const char *s)
{
	unsigned off = strs_len;
	strcpy(strs + strs_len, s);
	strs_len += strlen(s) + 1;
	return off;
}

static void t32(unsigned v) { memcpy(btf + 24 + types_len, &v, 4); types_len += 4; }

static void type(const char *name, unsigned kind, unsigned vlen, unsigned size_type)
{
	t32(name ? str(name) : 0);
	t32(kind << 24 | vlen);
	t32(size_type);
}

static void member(const char *name, unsigned type_id, unsigned bit_off)
{
	t32(str(name));
	t32(type_id);
	t32(bit_off);
}

enum { T_INT = 1, T_LOCK, T_VAL, T_TWO, T_LOCKT, T_TDV, T_NOLOCK, T_NESTED, T_BIG };

static int load_btf(int with_two_locks)
{
	types_len = 0;
	strs_len = 1;
	type("int", BTF_KIND_INT, 0, 4);
	t32(BTF_INT_SIGNED << 24 | 32);
	type("bpf_spin_lock", BTF_KIND_STRUCT, 1, 4);
	member("val", T_INT, 0);
	type("val", BTF_KIND_STRUCT, 2, 8);
	member("cnt", T_INT, 0);
	member("lock", T_LOCK, 32);
	type("two", BTF_KIND_STRUCT, 2, 8);
	member("lock", T_LOCK, 0);
	/* Two locks in one struct: the kernel refuses the whole BTF. */
	member("lock2", with_two_locks ? T_LOCK : T_INT, 32);
	type("lock_t", BTF_KIND_TYPEDEF, 0, T_LOCK);
	type("tdv", BTF_KIND_STRUCT, 2, 8);
	member("cnt", T_INT, 0);
	member("lock", T_LOCKT, 32);
	type("nolock", BTF_KIND_STRUCT, 2, 8);
	member("a", T_INT, 0);
	member("b", T_INT, 32);
	type("nested", BTF_KIND_STRUCT, 2, 12);
	member("cnt", T_INT, 0);
	member("inner", T_VAL, 32);
	/* 16 bytes: lock at offset 8, cnt at 0. */
	type("big", BTF_KIND_STRUCT, 3, 16);
	member("cnt", T_INT, 0);
	member("pad", T_INT, 32);
	member("lock", T_LOCK, 64);

	struct btf_header h = {
		.magic = BTF_MAGIC, .version = BTF_VERSION, .hdr_len = sizeof(h),
		.type_off = 0, .type_len = types_len, .str_off = types_len, .str_len = strs_len,
	};
	memcpy(btf, &h, sizeof(h));
	memcpy(btf + 24 + types_len, strs, strs_len);
	static char log[4096];
	clr();
	put64(0, (unsigned long)btf);
	put32(16, 24 + types_len + strs_len);
	put64(8, (unsigned long)log); put32(20, sizeof(log)); put32(24, 1);
	long r = sys(BPF_BTF_LOAD, attr, 40);
	if (r < 0)
		fprintf(stderr, "btf load %ld: %s\n", r, log);
	return r;
}

static int create(int btf_fd, unsigned map_type, unsigned vs, unsigned value_type, unsigned flags)
{
	clr();
	put32(0, map_type); put32(4, 4); put32(8, vs); put32(12, 4); put32(16, flags);
	put32(48, btf_fd); put32(52, T_INT); put32(56, value_type);
	return sys(BPF_MAP_CREATE, attr, 72);
}

static long elem(int cmd, int fd, unsigned key, void *val, unsigned long long flags)
{
	clr();
	put32(0, fd); put64(8, (unsigned long)&key); put64(16, (unsigned long)val); put64(24, flags);
	return sys(cmd, attr, 32);
}

static void report(const char *name, long r) { printf("%s: %ld\n", name, r >= 0 ? 0 : r); }

/* F_LOCK traffic on a map whose value is `vs` bytes with the lock at `lock_off`. */
static void traffic(const char *name, int fd, unsigned vs, unsigned lock_off, int is_hash)
{
	unsigned v[4] = {0}, out[4];
	char n[128];
	v[0] = 7; v[lock_off / 4] = 0x55;
	snprintf(n, sizeof(n), "%s update F_LOCK", name);
	report(n, elem(BPF_MAP_UPDATE_ELEM, fd, 1, v, BPF_F_LOCK));
	memset(out, 0xee, sizeof(out));
	snprintf(n, sizeof(n), "%s lookup F_LOCK", name);
	long r = elem(BPF_MAP_LOOKUP_ELEM, fd, 1, out, BPF_F_LOCK);
	printf("%s: %ld cnt %u lock %#x\n", n, r, out[0], out[lock_off / 4]);
	memset(out, 0xee, sizeof(out));
	snprintf(n, sizeof(n), "%s lookup", name);
	r = elem(BPF_MAP_LOOKUP_ELEM, fd, 1, out, 0);
	printf("%s: %ld cnt %u lock %#x\n", n, r, out[0], out[lock_off / 4]);
	v[0] = 9; v[lock_off / 4] = 0x66;
	snprintf(n, sizeof(n), "%s update", name);
	report(n, elem(BPF_MAP_UPDATE_ELEM, fd, 1, v, 0));
	memset(out, 0xee, sizeof(out));
	r = elem(BPF_MAP_LOOKUP_ELEM, fd, 1, out, 0);
	printf("%s after update: %ld cnt %u lock %#x\n", name, r, out[0], out[lock_off / 4]);
	snprintf(n, sizeof(n), "%s update F_LOCK|NOEXIST", name);
	report(n, elem(BPF_MAP_UPDATE_ELEM, fd, 1, v, BPF_F_LOCK | BPF_NOEXIST));
	snprintf(n, sizeof(n), "%s update F_LOCK|EXIST", name);
	report(n, elem(BPF_MAP_UPDATE_ELEM, fd, 1, v, BPF_F_LOCK | BPF_EXIST));
	snprintf(n, sizeof(n), "%s update F_LOCK new key", name);
	report(n, elem(BPF_MAP_UPDATE_ELEM, fd, 2, v, BPF_F_LOCK));
	snprintf(n, sizeof(n), "%s lookup bad flag", name);
	report(n, elem(BPF_MAP_LOOKUP_ELEM, fd, 1, out, BPF_F_LOCK << 1));
	if (is_hash) {
		memset(out, 0xee, sizeof(out));
		snprintf(n, sizeof(n), "%s lookup_and_delete F_LOCK", name);
		r = elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, 1, out, BPF_F_LOCK);
		printf("%s: %ld cnt %u lock %#x\n", n, r, out[0], out[lock_off / 4]);
	}
	(void)vs;
}

int main(void)
{
	report("btf with two locks in a struct", load_btf(1));
	int b = load_btf(0);
	printf("btf: %d\n", b >= 0);
	if (b < 0)
		return 1;
	static const struct { const char *name; unsigned type; } types[] = {
		{"hash", BPF_MAP_TYPE_HASH}, {"array", BPF_MAP_TYPE_ARRAY},
		{"percpu_hash", BPF_MAP_TYPE_PERCPU_HASH}, {"percpu_array", BPF_MAP_TYPE_PERCPU_ARRAY},
		{"lru_hash", BPF_MAP_TYPE_LRU_HASH}, {"lru_percpu_hash", BPF_MAP_TYPE_LRU_PERCPU_HASH},
	};
	char n[128];
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = create(b, types[i].type, 8, T_VAL, 0);
		snprintf(n, sizeof(n), "create %s with lock", types[i].name);
		report(n, fd);
		if (fd >= 0)
			close(fd);
	}
	report("create hash lock and int", create(b, BPF_MAP_TYPE_HASH, 8, T_TWO, 0));
	report("create hash typedef lock", create(b, BPF_MAP_TYPE_HASH, 8, T_TDV, 0));
	report("create hash nested lock", create(b, BPF_MAP_TYPE_HASH, 12, T_NESTED, 0));
	report("create hash lock as value", create(b, BPF_MAP_TYPE_HASH, 4, T_LOCK, 0));
	report("create mmapable array with lock", create(b, BPF_MAP_TYPE_ARRAY, 8, T_VAL, BPF_F_MMAPABLE));
	report("create hash no_prealloc with lock", create(b, BPF_MAP_TYPE_HASH, 8, T_VAL, BPF_F_NO_PREALLOC));

	int h = create(b, BPF_MAP_TYPE_HASH, 8, T_VAL, 0);
	int a = create(b, BPF_MAP_TYPE_ARRAY, 8, T_VAL, 0);
	int big = create(b, BPF_MAP_TYPE_HASH, 16, T_BIG, 0);
	int td = create(b, BPF_MAP_TYPE_HASH, 8, T_TDV, 0);
	int nl = create(b, BPF_MAP_TYPE_HASH, 8, T_NOLOCK, 0);
	int nest = create(b, BPF_MAP_TYPE_HASH, 12, T_NESTED, 0);
	int lv = create(b, BPF_MAP_TYPE_HASH, 4, T_LOCK, 0);
	int mm = create(b, BPF_MAP_TYPE_ARRAY, 8, T_VAL, BPF_F_MMAPABLE);
	int np = create(b, BPF_MAP_TYPE_HASH, 8, T_VAL, BPF_F_NO_PREALLOC);
	int first = create(b, BPF_MAP_TYPE_HASH, 8, T_TWO, 0);
	clr(); put32(0, BPF_MAP_TYPE_HASH); put32(4, 4); put32(8, 8); put32(12, 4);
	int plain = sys(BPF_MAP_CREATE, attr, 72);
	printf("setup: %d %d %d %d %d %d\n", h >= 0, a >= 0, big >= 0, td >= 0, nl >= 0, plain >= 0);
	traffic("hash", h, 8, 4, 1);
	traffic("array", a, 8, 4, 0);
	traffic("big", big, 16, 8, 1);
	traffic("typedef", td, 8, 4, 1);
	traffic("nested", nest, 12, 8, 1);
	traffic("lock value", lv, 4, 0, 1);
	traffic("mmapable", mm, 8, 4, 0);
	traffic("no_prealloc", np, 8, 4, 1);
	traffic("lock first", first, 8, 0, 1);
	unsigned v[2] = {1, 2};
	report("nolock update F_LOCK", elem(BPF_MAP_UPDATE_ELEM, nl, 1, v, BPF_F_LOCK));
	report("nolock update", elem(BPF_MAP_UPDATE_ELEM, nl, 1, v, 0));
	report("nolock lookup F_LOCK", elem(BPF_MAP_LOOKUP_ELEM, nl, 1, v, BPF_F_LOCK));
	report("plain update F_LOCK", elem(BPF_MAP_UPDATE_ELEM, plain, 1, v, BPF_F_LOCK));
	/* A map with a spin lock cannot be frozen (special fields in the value). */
	clr(); put32(0, h); report("hash freeze", sys(BPF_MAP_FREEZE, attr, 4));
	clr(); put32(0, a); report("array freeze", sys(BPF_MAP_FREEZE, attr, 4));
	clr(); put32(0, nl); report("nolock freeze", sys(BPF_MAP_FREEZE, attr, 4));
	return 0;
}
