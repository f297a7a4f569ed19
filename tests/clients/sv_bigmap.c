/* Creates an ARRAY of argv[1] MiB (4096-byte values) and fills it: prints "create
 * ENOMEM" (or another error), "update <i> <error>", or "filled". */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <bpf/bpf.h>
int main(int argc, char **argv)
{
	unsigned mib = atoi(argv[1]);
	unsigned n = mib * 256;
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "big", 4, 4096, n, NULL);
	if (fd < 0) { printf("create %s\n", errno == ENOMEM ? "ENOMEM" : strerror(errno)); return 0; }
	static char v[4096];
	memset(v, 1, sizeof v);
	for (unsigned i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, &i, v, 0)) { printf("update %u %s\n", i, strerror(errno)); return 0; }
	printf("filled\n");
	return 0;
}
