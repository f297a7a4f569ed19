/* Benchmarks for the supervisor (same binary natively and under bpftime-run):
 *   sv_bench rt N          : N bpf() calls of an unknown command (EINVAL): the round trip
 *   sv_bench map TYPE N    : N updates, N lookups (and N deletes for a hash) of single
 *                            elements on a HASH or ARRAY map (TYPE: hash|array)
 *   sv_bench batch N       : one update_batch, lookup_batch, delete_batch of N entries
 *   sv_bench load OBJ K    : K times open + load + close of a libbpf object
 *   sv_bench floor N       : natively only: the bare seccomp notification round trip, a
 *                            thread of this process answering its own filter's
 *                            notifications (RECV + SEND with SYNC_WAKE_UP)
 * Prints "name value unit" lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
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

static volatile int listener = -1;

static void *answer(void *arg)
{
	while (listener < 0)
		usleep(100);
	ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, 1UL);
	for (;;) {
		struct seccomp_notif n;
		memset(&n, 0, sizeof(n));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n))
			continue;
		struct seccomp_notif_resp r = { .id = n.id, .error = -EINVAL };
		ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
	}
	return NULL;
}

static int floor_rt(long n)
{
	pthread_t t;
	pthread_create(&t, NULL, answer, NULL);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_bpf, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = { 4, f };
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	int fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &p);
	if (fd < 0)
		return 1;
	listener = fd;
	for (int i = 0; i < 1000; i++)
		syscall(__NR_bpf, 99, NULL, 0);
	double t0 = now();
	for (long i = 0; i < n; i++)
		if (syscall(__NR_bpf, 99, NULL, 0) != -1 || errno != EINVAL)
			return 1;
	printf("floor %.0f ns\n", (now() - t0) / n * 1e9);
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
	if (!strcmp(argv[1], "floor"))
		return floor_rt(atol(argv[2]));
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
