// SPDX-License-Identifier: MIT
// xdp-counter loader: a plain libbpf loader, as a user would write it. It knows
// nothing of bpftime: run it natively (kernel XDP) or under `bpftime-run`.
//
//   xdp-counter OBJ IFACE [--attach link|netlink] [--pin DIR] [--seconds N]
//
// Loads OBJ, attaches its program to IFACE, pins the counters map under DIR
// (default /sys/fs/bpf/xdp_counter), and prints the counts every second.
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static const char *slot_names[] = {"other", "arp", "icmp", "tcp", "udp", "icmpv6"};
static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s OBJ IFACE [--attach link|netlink] [--pin DIR] [--seconds N]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *attach = "link", *pin_dir = "/sys/fs/bpf/xdp_counter";
	int seconds = -1;
	if (argc < 3)
		usage(argv[0]);
	const char *obj_path = argv[1], *ifname = argv[2];
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--attach") && i + 1 < argc)
			attach = argv[++i];
		else if (!strcmp(argv[i], "--pin") && i + 1 < argc)
			pin_dir = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else
			usage(argv[0]);
	}
	int ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		fprintf(stderr, "unknown interface %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
	if (!obj) {
		fprintf(stderr, "open %s: %s\n", obj_path, strerror(errno));
		return 1;
	}
	int err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "load %s: %s\n", obj_path, strerror(-err));
		return 1;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "xdp_counter");
	struct bpf_map *counters = bpf_object__find_map_by_name(obj, "counters");
	struct bpf_map *bss = bpf_object__find_map_by_name(obj, ".bss");
	if (!prog || !counters || !bss) {
		fprintf(stderr, "object lacks xdp_counter, counters or .bss\n");
		return 1;
	}
	/* The .bss as a skeleton sees it: the map's memory, mmapped. */
	volatile __u64 *total = mmap(NULL, 4096, PROT_READ, MAP_SHARED, bpf_map__fd(bss), 0);
	if (total == MAP_FAILED) {
		fprintf(stderr, "mmap .bss: %s\n", strerror(errno));
		return 1;
	}
	char pin_path[512];
	snprintf(pin_path, sizeof(pin_path), "%s", pin_dir);
	unlink(pin_path);
	if (bpf_map__pin(counters, pin_path)) {
		fprintf(stderr, "pin counters at %s: %s\n", pin_path, strerror(errno));
		return 1;
	}
	struct bpf_link *link = NULL;
	int prog_fd = bpf_program__fd(prog);
	if (!strcmp(attach, "link")) {
		link = bpf_program__attach_xdp(prog, ifindex);
		if (!link) {
			fprintf(stderr, "attach (bpf_link) to %s: %s\n", ifname, strerror(errno));
			return 1;
		}
	} else if (!strcmp(attach, "netlink")) {
		err = bpf_xdp_attach(ifindex, prog_fd, 0, NULL);
		if (err) {
			fprintf(stderr, "attach (netlink) to %s: %s\n", ifname, strerror(-err));
			return 1;
		}
	} else {
		usage(argv[0]);
	}
	printf("xdp-counter: attached to %s (ifindex %d) with %s; counters pinned at %s\n",
	       ifname, ifindex, attach, pin_path);
	fflush(stdout);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int map_fd = bpf_map__fd(counters);
	for (int t = 0; !stop && (seconds < 0 || t < seconds); t++) {
		sleep(1);
		printf("t=%ds total=%llu", t + 1, (unsigned long long)*total);
		for (__u32 k = 0; k < sizeof(slot_names) / sizeof(slot_names[0]); k++) {
			__u64 v = 0;
			bpf_map_lookup_elem(map_fd, &k, &v);
			printf(" %s=%llu", slot_names[k], (unsigned long long)v);
		}
		printf("\n");
		fflush(stdout);
	}
	if (link)
		bpf_link__destroy(link);
	else
		bpf_xdp_detach(ifindex, 0, NULL);
	bpf_map__unpin(counters, pin_path);
	bpf_object__close(obj);
	return 0;
}
