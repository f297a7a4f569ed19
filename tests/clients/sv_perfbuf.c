/* Perf buffers through libbpf's perf_buffer (natively and under bpftime-run, same
 * output expected): bpf_perf_event_output's return values for good and bad flags,
 * the samples a consumer reads (sorted: per-CPU rings have no global order), and a
 * full ring's lost count.
 * usage: sv_perfbuf OBJ */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

struct bss {
	unsigned long long flags_in;
	long ret_out;
	unsigned seq;
};

static int bss_fd, prog_fd;
static char lines[4096][128];
static int nlines;
static unsigned long long lost_total;

static long run(unsigned long long flags, unsigned char fill)
{
	struct bss b;
	unsigned zero = 0;
	unsigned char pkt[64];
	memset(pkt, fill, sizeof(pkt));
	if (bpf_map_lookup_elem(bss_fd, &zero, &b))
		return -1000;
	b.flags_in = flags;
	b.ret_out = 12345;
	if (bpf_map_update_elem(bss_fd, &zero, &b, 0))
		return -1001;
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt, .data_size_in = sizeof(pkt));
	if (bpf_prog_test_run_opts(prog_fd, &t))
		return -1002;
	bpf_map_lookup_elem(bss_fd, &zero, &b);
	return b.ret_out;
}

static void sample(void *ctx, int cpu, void *data, __u32 size)
{
	unsigned char *d = data;
	unsigned seq, len;
	memcpy(&seq, d, 4);
	memcpy(&len, d + 4, 4);
	if (nlines < 4096) {
		int n = snprintf(lines[nlines], 128, "sample seq %04u size %u len %u pkt", seq, size, len);
		for (unsigned i = 8; i < 8 + 4 && i < size; i++)
			n += snprintf(lines[nlines] + n, 128 - n, " %02x", d[i]);
		nlines++;
	}
}

static void lost(void *ctx, int cpu, __u64 cnt)
{
	lost_total += cnt;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void flush(const char *what)
{
	qsort(lines, nlines, 128, cmp);
	printf("%s: %d samples, %llu lost\n", what, nlines, lost_total);
	for (int i = 0; i < nlines; i++)
		printf("  %s\n", lines[i]);
	nlines = 0;
	lost_total = 0;
}

int main(int argc, char **argv)
{
	/* One CPU: the kernel runs each test on the caller's CPU, so every sample goes
	 * to the same ring and the lost count is exact. */
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	struct bpf_object *o = bpf_object__open_file(argv[1], NULL);
	if (!o || bpf_object__load(o)) {
		printf("load failed: %s\n", strerror(errno));
		return 1;
	}
	prog_fd = bpf_program__fd(bpf_object__find_program_by_name(o, "out"));
	int events = bpf_map__fd(bpf_object__find_map_by_name(o, "events"));
	bss_fd = bpf_map__fd(bpf_object__find_map_by_name(o, ".bss"));
	unsigned k = 0, v = 0;
	printf("syscall lookup: %d\n", bpf_map_lookup_elem(events, &k, &v) ? -errno : 0);
	printf("update with a non-perf fd: %d\n", bpf_map_update_elem(events, &k, &prog_fd, 0) ? -errno : 0);
	printf("output before any reader: %ld\n", run(0xffffffffULL, 1));

	LIBBPF_OPTS(perf_buffer_opts, po);
	struct perf_buffer *pb = perf_buffer__new(events, 8, sample, lost, NULL, &po);
	if (!pb) {
		printf("perf_buffer__new: %s\n", strerror(errno));
		return 1;
	}
	printf("current cpu, 4 bytes of packet: %ld\n", run(0xffffffffULL | (4ULL << 32), 0xa5));
	printf("current cpu, no packet: %ld\n", run(0xffffffffULL, 0x11));
	printf("index 0 (this cpu): %ld\n", run(0, 0x22));
	printf("index 1 (another cpu): %ld\n", run(1, 0x33));
	printf("index past the array: %ld\n", run(100000, 0x44));
	printf("unknown flag bit: %ld\n", run(1ULL << 63 | 0xffffffffULL, 0x55));
	printf("more packet than there is: %ld\n", run(0xffffffffULL | (65ULL << 32), 0x66));
	printf("the whole packet: %ld\n", run(0xffffffffULL | (64ULL << 32), 0x77));
	printf("poll: %d\n", perf_buffer__poll(pb, 1000) > 0);
	perf_buffer__consume(pb);
	flush("first");
	perf_buffer__free(pb);

	/* One page: 40-byte records (8 header + 4 size + 8 data + 16 packet, padded). */
	pb = perf_buffer__new(events, 1, sample, lost, NULL, &po);
	int fails = 0;
	for (int i = 0; i < 300; i++)
		fails += run(0xffffffffULL | (16ULL << 32), i) != 0;
	printf("outputs refused on a full ring: %d\n", fails);
	perf_buffer__consume(pb);
	printf("after reading, one more: %ld\n", run(0xffffffffULL | (16ULL << 32), 0xee));
	perf_buffer__consume(pb);
	printf("full ring: %d samples, %llu lost\n", nlines, lost_total);
	perf_buffer__free(pb);
	bpf_object__close(o);
	return 0;
}
