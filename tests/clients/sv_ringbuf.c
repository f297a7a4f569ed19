/* Ring buffer consumer for the supervisor tests: runs the program on packets of
 * several sizes, then consumes with libbpf's ring_buffer (epoll on the map fd + mmap of
 * its pages) and prints every record. Same output under the kernel and bpftime-run. */
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static int on_record(void *ctx, void *data, size_t size)
{
	unsigned long long *e = data;
	printf("record size %zu len %llu seq %llu\n", size, e[0], e[1]);
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		printf("load failed\n");
		return 1;
	}
	int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "sv_ringbuf"));
	int map = bpf_object__find_map_fd_by_name(obj, "events");
	struct ring_buffer *rb = ring_buffer__new(map, on_record, NULL, NULL);
	if (!rb) {
		printf("ring_buffer__new failed\n");
		return 1;
	}
	printf("poll empty: %d\n", ring_buffer__poll(rb, 50));
	unsigned char pkt[100] = { 0 };
	for (int len = 20; len <= 80; len += 30) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = len, .repeat = 1);
		bpf_prog_test_run_opts(prog, &o);
	}
	printf("poll: %d\n", ring_buffer__poll(rb, 1000));
	printf("poll again: %d\n", ring_buffer__poll(rb, 50));
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = 33, .repeat = 1);
	bpf_prog_test_run_opts(prog, &o);
	printf("poll after one more: %d\n", ring_buffer__poll(rb, 1000));
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
