/* One target, two threads: a long call on one must not hold up the other (the kernel
 * serves each thread's bpf() on its own). Thread A test-runs a program with a large
 * repeat count; thread B waits until A is inside that call, then does map updates and
 * notes whether A was still running when B finished.
 * Prints "a_ok", "b_updates <errors>", "b_done_while_a_runs <0|1>". */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>

static volatile int a_started, a_done;
static int prog_fd;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *thread_a(void *arg)
{
	unsigned char pkt[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt, .data_size_in = sizeof(pkt),
		    .repeat = 10000000);
	a_started = 1;
	double t0 = now();
	int r = bpf_prog_test_run_opts(prog_fd, &t);
	a_done = 1;
	printf("a_ok %d\n", r == 0 && t.retval == XDP_PASS);
	fprintf(stderr, "a took %.2f s\n", now() - t0);
	return NULL;
}

int main(void)
{
	struct bpf_insn prog[] = {
		{ .code = 0xb7, .dst_reg = 0, .imm = XDP_PASS },
		{ .code = 0x95 },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_XDP);
	prog_fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "par", "GPL", prog, 2, &o);
	int map = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, 8, 64, NULL);
	if (prog_fd < 0 || map < 0) {
		printf("setup failed: %s\n", strerror(errno));
		return 1;
	}
	pthread_t a;
	pthread_create(&a, NULL, thread_a, NULL);
	while (!a_started)
		usleep(1000);
	usleep(20000); /* A is inside its test run by now */
	int errors = 0;
	double t0 = now();
	for (unsigned i = 0; i < 200; i++) {
		unsigned long long v = i;
		unsigned k = i % 64;
		errors += bpf_map_update_elem(map, &k, &v, 0) != 0;
	}
	int overlapped = !a_done;
	fprintf(stderr, "b took %.4f s\n", now() - t0);
	printf("b_updates %d\n", errors);
	printf("b_done_while_a_runs %d\n", overlapped);
	fflush(stdout);
	pthread_join(a, NULL);
	return 0;
}
