/* Benchmarks for the supervisor tests (same binary natively and under bpftime-run):
 *   sv_bench rt N        : N bpf() calls of an unknown command (EINVAL): the round trip
 *   sv_bench map N       : N map_update_elem then N map_lookup_elem on a hash map
 *   sv_bench load OBJ K  : K times open + load + close of a libbpf object
 * Prints "name value unit" lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int quiet(enum libbpf_print_level l, const char *f, va_list a) { return 0; }

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
	if (!strcmp(argv[1], "map")) {
		long n = atol(argv[2]);
		int fd = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, 8, 1024, NULL);
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
		printf("update %.0f calls/s\nlookup %.0f calls/s\n", n / (t1 - t0), n / (t2 - t1));
		return 0;
	}
	if (!strcmp(argv[1], "load") && argc > 3) {
		int k = atoi(argv[3]);
		double t0 = now();
		for (int i = 0; i < k; i++) {
			struct bpf_object *o = bpf_object__open_file(argv[2], NULL);
			if (!o || bpf_object__load(o))
				return 1;
			bpf_object__close(o);
		}
		printf("objload %.3f ms\n", (now() - t0) / k * 1e3);
		return 0;
	}
	return 2;
}
