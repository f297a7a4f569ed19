/* A skeleton loader (bpftool gen skeleton of sv_prog.bpf.o, generated at test time):
 * sets .rodata through the skeleton, loads, runs the program, reads .bss/.data through
 * the skeleton's mmap of the map fds, writes .bss through it and reads it back with
 * the syscall. Same output under the kernel and bpftime-run. */
#include <stdio.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "sv_prog.skel.h"

int main(void)
{
	struct sv_prog *s = sv_prog__open();
	if (!s)
		return 1;
	s->rodata->verdict_default = 2;
	if (sv_prog__load(s)) {
		printf("load failed\n");
		return 1;
	}
	unsigned char pkt[60] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = 1);
	for (int i = 0; i < 3; i++)
		bpf_prog_test_run_opts(bpf_program__fd(s->progs.sv_prog), &o);
	printf("retval %u packets %llu bytes_total %llu\n", o.retval,
	       (unsigned long long)s->bss->packets, (unsigned long long)s->data->bytes_total);
	s->bss->packets = 1000;
	bpf_prog_test_run_opts(bpf_program__fd(s->progs.sv_prog), &o);
	unsigned k = 0;
	unsigned long long v = 0;
	bpf_map_lookup_elem(bpf_map__fd(s->maps.bss), &k, &v);
	printf("after write through skeleton: skel %llu lookup %llu\n",
	       (unsigned long long)s->bss->packets, v);
	sv_prog__destroy(s);
	return 0;
}
