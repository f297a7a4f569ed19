/* Benchmarks for the supervisor (same binary natively and under bpftime-run):
 *   sv_bench rt N          : N bpf() calls of an unknown command (EINVAL): the round trip
 *   sv_bench map TYPE N    : N updates, N lookups (and N deletes for a hash) of single
 *                            elements on a HASH or ARRAY map (TYPE: hash|array)
 *   sv_bench batch N       : one update_batch, lookup_batch, delete_batch of N entries
 *   sv_bench load OBJ K    : K times open + load + close of a libbpf object
 *   sv_bench floor N       : natively only: the bare seccomp notification round trip, a
 *                            child process answering this one's filter (RECV + SEND with
 *                            SYNC_WAKE_UP), then the same with the other syscalls a map
 *                            element call needs (floor_map_op)
 * Prints "name value unit" lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int quiet(enum libbpf_print_level l, const char *f, va_list a) { return 0; }

/* The supervisor side of the floor: another process (as the daemon is) answering the
 * listener of `parent`'s fd `fdn`; with `work`, doing per call the syscalls a map element
 * call costs bpftime besides the round trip (one process_vm_readv of three regions, one
 * kcmp, one NOTIF_ID_VALID). */
static void serve(pid_t parent, int fdn, int work)
{
	int pf = syscall(SYS_pidfd_open, parent, 0);
	int lfd = syscall(SYS_pidfd_getfd, pf, fdn, 0);
	pid_t me = getpid();
	if (lfd < 0)
		_exit(1);
	ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, 1UL);
	for (;;) {
		struct seccomp_notif n;
		memset(&n, 0, sizeof(n));
		if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &n)) {
			if (errno == EINTR)
				continue;
			_exit(0);
		}
		if (work) {
			char a[32], k[4], v[8];
			void *p = (void *)n.data.args[1];
			struct iovec l[3] = { { a, 32 }, { k, 4 }, { v, 8 } };
			struct iovec r[3] = { { p, 32 }, { p, 4 }, { p, 8 } };
			__u64 id = n.id;
			process_vm_readv(n.pid, l, 3, r, 3, 0);
			syscall(SYS_kcmp, n.pid, me, 0, 0, 0);
			ioctl(lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id);
		}
		struct seccomp_notif_resp r = { .id = n.id, .error = -EINVAL };
		ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &r);
	}
}

static int floor_rt(long n, int work)
{
	int p[2];
	if (pipe(p))
		return 1;
	pid_t parent = getpid(), c = fork();
	if (c == 0) {
		int fdn;
		if (read(p[0], &fdn, sizeof(fdn)) != sizeof(fdn))
			_exit(1);
		serve(parent, fdn, work);
	}
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_bpf, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { 4, f };
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	int fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0 || write(p[1], &fd, sizeof(fd)) != sizeof(fd))
		return 1;
	char attr[32] = { 0 };
	for (int i = 0; i < 1000; i++)
		syscall(__NR_bpf, 99, attr, sizeof(attr));
	double t0 = now();
	for (long i = 0; i < n; i++)
		if (syscall(__NR_bpf, 99, attr, sizeof(attr)) != -1 || errno != EINVAL)
			return 1;
	printf("%s %.0f ns\n", work ? "floor_map_op" : "floor", (now() - t0) / n * 1e9);
	fflush(stdout);
	kill(c, SIGKILL);
	return 0;
}

static int map_ops(const char *type, long n)
{
	int hash = !strcmp(type, "hash");
	int fd = bpf_map_create(hash ? BPF_MAP_TYPE_HASH : BPF_MAP_TYPE_ARRAY, NULL, 4, 8, 1024, NULL);
	if (fd < 0)
		return 1;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		unsigned k = i & 1023;
		unsigned long long v = i;
		if (bpf_map_update_elem(fd, &k, &v, 0))
			return 1;
	}
	double t1 = now();
	for (long i = 0; i < n; i++) {
		unsigned k = i & 1023;
		unsigned long long v;
		if (bpf_map_lookup_elem(fd, &k, &v))
			return 1;
	}
	double t2 = now();
	printf("%s_update %.0f calls/s\n%s_lookup %.0f calls/s\n", type, n / (t1 - t0), type,
	       n / (t2 - t1));
	if (hash) {
		/* Delete what is there, re-adding between rounds (the re-adds are not timed). */
		double spent = 0;
		for (long done = 0; done < n;) {
			double t = now();
			for (unsigned k = 0; k < 1024 && done < n; k++, done++)
				if (bpf_map_delete_elem(fd, &k))
					return 1;
			spent += now() - t;
			for (unsigned k = 0; k < 1024; k++) {
				unsigned long long v = k;
				bpf_map_update_elem(fd, &k, &v, 0);
			}
		}
		printf("%s_delete %.0f calls/s\n", type, n / spent);
	}
	return 0;
}

static int batch(long n)
{
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, 8, n, NULL);
	unsigned *keys = calloc(n, 4), *okeys = calloc(n, 4);
	unsigned long long *vals = calloc(n, 8), *ovals = calloc(n, 8);
	if (fd < 0 || !keys || !okeys || !vals || !ovals)
		return 1;
	for (long i = 0; i < n; i++)
		keys[i] = i, vals[i] = i * 3;
	__u32 count = n;
	double t0 = now();
	if (bpf_map_update_batch(fd, keys, vals, &count, NULL) || count != n)
		return 1;
	double t1 = now();
	__u32 out = 0, got = 0;
	int more = 1;
	void *in = NULL;
	while (more) {
		__u32 c = n - got;
		int r = bpf_map_lookup_batch(fd, in, &out, okeys + got, ovals + got, &c, NULL);
		if (r && errno != ENOENT)
			return 1;
		got += c;
		more = !r && got < n;
		in = &out;
	}
	double t2 = now();
	count = n;
	if (got != n || bpf_map_delete_batch(fd, keys, &count, NULL) || count != n)
		return 1;
	double t3 = now();
	printf("batch_update %.0f entries/s\nbatch_lookup %.0f entries/s\nbatch_delete %.0f entries/s\n",
	       n / (t1 - t0), n / (t2 - t1), n / (t3 - t2));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	libbpf_set_print(quiet);
	if (!strcmp(argv[1], "rt")) {
		long n = atol(argv[2]);
		double t0 = now();
		for (long i = 0; i < n; i++)
			if (syscall(__NR_bpf, 99, NULL, 0) != -1 || errno != EINVAL)
				return 1;
		printf("roundtrip %.0f ns\n", (now() - t0) / n * 1e9);
		return 0;
	}
	if (!strcmp(argv[1], "floor")) {
		/* Each in a fresh process: a filter stays installed for good. */
		for (int work = 0; work < 2; work++) {
			fflush(stdout);
			pid_t c = fork();
			if (c == 0)
				_exit(floor_rt(atol(argv[2]), work));
			int st;
			if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
				return 1;
		}
		return 0;
	}
	if (!strcmp(argv[1], "map") && argc > 3)
		return map_ops(argv[2], atol(argv[3]));
	if (!strcmp(argv[1], "batch"))
		return batch(atol(argv[2]));
	if (!strcmp(argv[1], "load") && argc > 3) {
		int k = atoi(argv[3]);
		const char *base = strrchr(argv[2], '/');
		base = base ? base + 1 : argv[2];
		double t0 = now();
		for (int i = 0; i < k; i++) {
			struct bpf_object *o = bpf_object__open_file(argv[2], NULL);
			if (!o || bpf_object__load(o))
				return 1;
			bpf_object__close(o);
		}
		printf("load:%.*s %.3f ms\n", (int)(strcspn(base, ".")), base, (now() - t0) / k * 1e3);
		return 0;
	}
	return 2;
}
