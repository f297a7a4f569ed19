/* Lifecycle client for the supervisor tests.
 *   sv_stress stream      : creates, updates and closes maps forever (printing "n N"
 *                           every 100 calls) until killed.
 *   sv_stress fork MS     : creates a map, forks; the child keeps the fd MS ms, checks
 *                           the map still answers, exits; the parent exits at once.
 *   sv_stress keep        : creates a map and a BTF-less hash, prints "ready", waits for
 *                           stdin EOF. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <bpf/bpf.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "stream")) {
		unsigned long n = 0;
		int keep[16];
		for (int i = 0; i < 16; i++)
			keep[i] = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 8, 4, NULL);
		for (;;) {
			int fd = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, 8, 16, NULL);
			if (fd < 0) {
				printf("create failed %d\n", -errno);
				return 1;
			}
			for (unsigned k = 0; k < 8; k++) {
				unsigned long long v = k;
				bpf_map_update_elem(fd, &k, &v, 0);
				bpf_map_update_elem(keep[k], &k, &v, 0);
			}
			close(fd);
			if (++n % 100 == 0) {
				printf("n %lu\n", n);
				fflush(stdout);
			}
		}
	}
	if (!strcmp(argv[1], "fork")) {
		int fd = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, 4, 4, NULL);
		unsigned k = 1, v = 42;
		bpf_map_update_elem(fd, &k, &v, 0);
		pid_t p = fork();
		if (p == 0) {
			usleep(atoi(argv[2]) * 1000);
			unsigned out = 0;
			int r = bpf_map_lookup_elem(fd, &k, &out);
			printf("child lookup %d %u\n", r, out);
			fflush(stdout);
			_exit(r == 0 && out == 42 ? 0 : 1);
		}
		printf("parent exits, child %d\n", p);
		fflush(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "keep")) {
		int a = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 8, 4, NULL);
		int b = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, 8, 4, NULL);
		printf("ready %d %d\n", a >= 0, b >= 0);
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0)
			;
		return 0;
	}
	return 2;
}
