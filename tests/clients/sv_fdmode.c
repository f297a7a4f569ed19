/* Per-fd access modes of bpf object fds (kernel: FMODE_CAN_READ/WRITE from
 * BPF_F_RDONLY/WRONLY at MAP_CREATE, OBJ_GET and MAP_GET_FD_BY_ID; map_get_sys_perms).
 * Prints one line per case, "name: result" (a value or -errno). Run natively (on a fresh
 * bpffs) and under bpftime-run: the outputs must be equal.
 * usage: sv_fdmode DIR   (a bpffs directory for the pins) */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

static long sys(int cmd, union bpf_attr *a)
{
	long r = syscall(__NR_bpf, cmd, a, sizeof(*a));
	return r < 0 ? -errno : r;
}

static void report(const char *fd, const char *what, long r)
{
	printf("%s %s: %ld\n", fd, what, r >= 0 && !strstr(what, "mode") ? 0 : r);
}

static int map_create(unsigned type, unsigned max, unsigned flags)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = max;
	a.map_flags = flags;
	return sys(BPF_MAP_CREATE, &a);
}

static long elem(int cmd, int fd, unsigned key, unsigned *val, unsigned long long flags)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = fd;
	a.key = (unsigned long)&key;
	a.value = (unsigned long)val;
	a.flags = flags;
	return sys(cmd, &a);
}

static long next_key(int fd)
{
	union bpf_attr a;
	unsigned next = 0;
	memset(&a, 0, sizeof(a));
	a.map_fd = fd;
	a.next_key = (unsigned long)&next;
	return sys(BPF_MAP_GET_NEXT_KEY, &a);
}

static long batch(int cmd, int fd, unsigned n)
{
	union bpf_attr a;
	unsigned keys[8] = {40, 41}, vals[8] = {1, 2}, out = 0;
	memset(&a, 0, sizeof(a));
	a.batch.map_fd = fd;
	a.batch.keys = (unsigned long)keys;
	a.batch.values = (unsigned long)vals;
	a.batch.count = n;
	a.batch.out_batch = (unsigned long)&out;
	long r = sys(cmd, &a);
	return r == -ENOENT ? 0 : r; /* a lookup batch that reached the end */
}

static long freeze(int fd)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = fd;
	return sys(BPF_MAP_FREEZE, &a);
}

static long obj_get(const char *path, unsigned flags)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.pathname = (unsigned long)path;
	a.file_flags = flags;
	return sys(BPF_OBJ_GET, &a);
}

static long obj_pin(int fd, const char *path)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.pathname = (unsigned long)path;
	a.bpf_fd = fd;
	return sys(BPF_OBJ_PIN, &a);
}

static unsigned map_id(int fd)
{
	struct bpf_map_info info;
	union bpf_attr a;
	memset(&info, 0, sizeof(info));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = fd;
	a.info.info_len = sizeof(info);
	a.info.info = (unsigned long)&info;
	return sys(BPF_OBJ_GET_INFO_BY_FD, &a) < 0 ? 0 : info.id;
}

static long fd_by_id(int cmd, unsigned id, unsigned flags)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_id = id;
	a.open_flags = flags;
	return sys(cmd, &a);
}

/* Every map operation through fd, on the HASH map (keys 1 present). */
static void ops(const char *name, long fd)
{
	unsigned v = 7;
	if (fd < 0) {
		report(name, "open", fd);
		return;
	}
	report(name, "mode", fcntl(fd, F_GETFL) & O_ACCMODE);
	report(name, "lookup", elem(BPF_MAP_LOOKUP_ELEM, fd, 1, &v, 0));
	report(name, "update", elem(BPF_MAP_UPDATE_ELEM, fd, 2, &v, 0));
	report(name, "delete", elem(BPF_MAP_DELETE_ELEM, fd, 2, NULL, 0));
	report(name, "get_next_key", next_key(fd));
	report(name, "lookup_and_delete", elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, 3, &v, 0));
	report(name, "lookup_batch", batch(BPF_MAP_LOOKUP_BATCH, fd, 8));
	report(name, "update_batch", batch(BPF_MAP_UPDATE_BATCH, fd, 2));
	report(name, "delete_batch", batch(BPF_MAP_DELETE_BATCH, fd, 2));
}

static long load_prog(void)
{
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (unsigned long)insns;
	a.insn_cnt = 2;
	a.license = (unsigned long)"GPL";
	return sys(BPF_PROG_LOAD, &a);
}

/* One fd number over time, from two threads: each answer follows what the number
 * holds at that call (the daemon remembers fds between calls; this must not show). */
static int reuse_fd;
static void *reuse_thread(void *arg)
{
	unsigned v = 9;
	*(long *)arg = elem(BPF_MAP_UPDATE_ELEM, reuse_fd, 4, &v, 0);
	return NULL;
}

static void reuse(void)
{
	unsigned v = 7, got = 0;
	pthread_t t;
	long tr;
	int a = map_create(BPF_MAP_TYPE_HASH, 8, 0);
	report("reuse_a", "update", elem(BPF_MAP_UPDATE_ELEM, a, 1, &v, 0));
	reuse_fd = a;
	pthread_create(&t, NULL, reuse_thread, &tr);
	pthread_join(t, NULL);
	report("reuse_a", "thread_update", tr);
	close(a);
	report("reuse_closed", "update", elem(BPF_MAP_UPDATE_ELEM, a, 1, &v, 0));
	int n = open("/dev/null", O_RDONLY);
	printf("reuse null same number: %d\n", n == a);
	report("reuse_null", "update", elem(BPF_MAP_UPDATE_ELEM, n, 1, &v, 0));
	pthread_create(&t, NULL, reuse_thread, &tr);
	pthread_join(t, NULL);
	report("reuse_null", "thread_update", tr);
	close(n);
	int r = map_create(BPF_MAP_TYPE_HASH, 8, BPF_F_RDONLY);
	printf("reuse rdonly same number: %d\n", r == a);
	report("reuse_rdonly", "update", elem(BPF_MAP_UPDATE_ELEM, r, 1, &v, 0));
	report("reuse_rdonly", "lookup", elem(BPF_MAP_LOOKUP_ELEM, r, 1, &got, 0));
	int w = map_create(BPF_MAP_TYPE_HASH, 8, 0);
	dup2(w, r);
	report("reuse_dup2", "update", elem(BPF_MAP_UPDATE_ELEM, r, 2, &v, 0));
	report("reuse_dup2", "lookup_other_fd", elem(BPF_MAP_LOOKUP_ELEM, w, 2, &got, 0));
	printf("reuse_dup2 value: %u\n", got);
	pthread_create(&t, NULL, reuse_thread, &tr);
	pthread_join(t, NULL);
	report("reuse_dup2", "thread_update", tr);
	report("reuse_dup2", "thread_lookup", elem(BPF_MAP_LOOKUP_ELEM, w, 4, &got, 0));
	printf("reuse_dup2 thread value: %u\n", got);
	close(r);
	close(w);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/sys/fs/bpf";
	char mpath[512], ppath[512], apath[512];
	unsigned v = 5;
	snprintf(mpath, sizeof(mpath), "%s/sv_fdmode_map", dir);
	snprintf(ppath, sizeof(ppath), "%s/sv_fdmode_prog", dir);
	snprintf(apath, sizeof(apath), "%s/sv_fdmode_arr", dir);

	int rw = map_create(BPF_MAP_TYPE_HASH, 64, 0);
	if (rw < 0) {
		printf("map_create: %d\n", rw);
		return 1;
	}
	elem(BPF_MAP_UPDATE_ELEM, rw, 1, &v, 0);
	report("create", "pin", obj_pin(rw, mpath));
	unsigned id = map_id(rw);
	printf("have id: %d\n", id != 0);

	struct {
		const char *name;
		long fd;
	} fds[] = {
		{"created", rw},
		{"get", obj_get(mpath, 0)},
		{"get_rdonly", obj_get(mpath, BPF_F_RDONLY)},
		{"get_wronly", obj_get(mpath, BPF_F_WRONLY)},
		{"get_both", obj_get(mpath, BPF_F_RDONLY | BPF_F_WRONLY)},
		{"id", fd_by_id(BPF_MAP_GET_FD_BY_ID, id, 0)},
		{"id_rdonly", fd_by_id(BPF_MAP_GET_FD_BY_ID, id, BPF_F_RDONLY)},
		{"id_wronly", fd_by_id(BPF_MAP_GET_FD_BY_ID, id, BPF_F_WRONLY)},
		{"id_both", fd_by_id(BPF_MAP_GET_FD_BY_ID, id, BPF_F_RDONLY | BPF_F_WRONLY)},
	};
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		elem(BPF_MAP_UPDATE_ELEM, rw, 3, &v, 0);
		ops(fds[i].name, fds[i].fd);
		if (fds[i].fd >= 0) {
			/* The mode survives dup and comes back with the duplicate. */
			int d = fcntl(fds[i].fd, F_DUPFD_CLOEXEC, 100);
			report(fds[i].name, "dup_mode", fcntl(d, F_GETFL) & O_ACCMODE);
			report(fds[i].name, "dup_update", elem(BPF_MAP_UPDATE_ELEM, d, 2, &v, 0));
			report(fds[i].name, "dup_lookup", elem(BPF_MAP_LOOKUP_ELEM, d, 1, &v, 0));
			close(d);
		}
	}

	/* Maps created read-only / write-only from the syscall side. */
	ops("create_rdonly", map_create(BPF_MAP_TYPE_HASH, 8, BPF_F_RDONLY));
	ops("create_wronly", map_create(BPF_MAP_TYPE_HASH, 8, BPF_F_WRONLY));

	/* Freeze: needs a writable fd; a frozen map refuses writes (EPERM). */
	int arr = map_create(BPF_MAP_TYPE_ARRAY, 4, BPF_F_MMAPABLE);
	report("arr", "pin", obj_pin(arr, apath));
	long aro = obj_get(apath, BPF_F_RDONLY), awo = obj_get(apath, BPF_F_WRONLY);
	/* (A shared read-only mapping of a read-only fd is EINVAL in the kernel, whose
	 * do_mmap drops VM_SHARED: not modelled, bpftime's fd is a memfd.) */
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, aro, 0);
	report("arr_rdonly", "mmap_write", p == MAP_FAILED ? -errno : 0);
	if (p != MAP_FAILED)
		munmap(p, 4096);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, awo, 0);
	report("arr_wronly", "mmap_read", p == MAP_FAILED ? -errno : 0);
	if (p != MAP_FAILED)
		munmap(p, 4096);
	report("arr_rdonly", "freeze", freeze(aro));
	report("arr_wronly", "freeze", freeze(awo));
	report("arr_wronly", "freeze_again", freeze(awo));
	report("arr", "update_frozen", elem(BPF_MAP_UPDATE_ELEM, arr, 0, &v, 0));
	report("arr", "lookup_frozen", elem(BPF_MAP_LOOKUP_ELEM, arr, 0, &v, 0));
	report("arr_wronly", "lookup_frozen", elem(BPF_MAP_LOOKUP_ELEM, awo, 0, &v, 0));

	/* The access mode belongs to the fd, not the map: a map created read-only
	 * (or write-only) and reopened by id without flags gets a read-write fd. */
	static const struct { const char *name; unsigned flags; } created[] = {
		{"ro_created", BPF_F_RDONLY}, {"wo_created", BPF_F_WRONLY},
	};
	for (unsigned i = 0; i < 2; i++) {
		char n[64];
		int m = map_create(BPF_MAP_TYPE_HASH, 64, created[i].flags);
		report(created[i].name, "create", m);
		if (m < 0)
			continue;
		ops(created[i].name, m);
		snprintf(n, sizeof(n), "%s_by_id", created[i].name);
		ops(n, fd_by_id(BPF_MAP_GET_FD_BY_ID, map_id(m), 0));
		snprintf(n, sizeof(n), "%s_by_id_rdonly", created[i].name);
		ops(n, fd_by_id(BPF_MAP_GET_FD_BY_ID, map_id(m), BPF_F_RDONLY));
	}

	/* A program pin: only read-write opens. */
	long prog = load_prog();
	report("prog", "load", prog);
	report("prog", "pin", obj_pin(prog, ppath));
	long g = obj_get(ppath, 0);
	report("prog_get", "open", g);
	if (g >= 0)
		report("prog_get", "mode", fcntl(g, F_GETFL) & O_ACCMODE);
	/* bpf_prog_new_fd ignores the flags: a read-write fd. */
	g = obj_get(ppath, BPF_F_RDONLY);
	report("prog_get_rdonly", "open", g);
	if (g >= 0)
		report("prog_get_rdonly", "mode", fcntl(g, F_GETFL) & O_ACCMODE);
	g = obj_get(ppath, BPF_F_WRONLY);
	report("prog_get_wronly", "open", g);
	if (g >= 0)
		report("prog_get_wronly", "mode", fcntl(g, F_GETFL) & O_ACCMODE);
	reuse();
	unlink(mpath);
	unlink(ppath);
	unlink(apath);
	return 0;
}
