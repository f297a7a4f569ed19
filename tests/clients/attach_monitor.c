/* A link watcher and bpf() in one process (as a Go agent: one goroutine blocked in
 * recv on an RTNLGRP_LINK socket, others loading programs): the blocked receive must
 * not hold up the other thread's syscalls. Thread W blocks in recv; the main thread
 * then loads a program (bpf()), changes IFACE's MTU over another netlink socket, and W
 * must receive the RTM_NEWLINK notification.
 * usage: attach_monitor IFACE MTU   (prints "loaded", "notified <ifname-match>") */
#include <errno.h>
#include <stdlib.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <bpf/bpf.h>

static int ifindex, watcher;
static volatile int notified = -1;

static void *watch(void *arg)
{
	char buf[8192];
	for (;;) {
		int n = recv(watcher, buf, sizeof(buf), 0);
		if (n < 0) {
			notified = errno;
			return NULL;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n);
		     h = NLMSG_NEXT(h, n)) {
			struct ifinfomsg *ifi = NLMSG_DATA(h);
			if (h->nlmsg_type == RTM_NEWLINK && ifi->ifi_index == ifindex) {
				notified = 0;
				return NULL;
			}
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	ifindex = if_nametoindex(argv[1]);
	unsigned mtu = atoi(argv[2]);
	watcher = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	if (!ifindex || watcher < 0 || bind(watcher, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("setup");
		return 2;
	}
	pthread_t t;
	pthread_create(&t, NULL, watch, NULL);
	usleep(500 * 1000); /* W is blocked in recv now */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 2 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "monitor", "GPL", insns, 2, NULL);
	printf("loaded %d\n", prog >= 0);
	fflush(stdout);
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		struct rtattr a;
		unsigned mtu;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_SETLINK,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK, .nlmsg_seq = 1 },
		.ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex },
		.a = { .rta_len = RTA_LENGTH(4), .rta_type = IFLA_MTU },
		.mtu = mtu,
	};
	send(s, &req, sizeof(req), 0);
	char ack[1024];
	int n = recv(s, ack, sizeof(ack), 0);
	struct nlmsgerr *e = NLMSG_DATA((struct nlmsghdr *)ack);
	printf("setlink %d\n", n > 0 ? e->error : -errno);
	fflush(stdout);
	for (int i = 0; i < 50 && notified < 0; i++)
		usleep(100 * 1000);
	printf("notified %d\n", notified);
	return notified == 0 ? 0 : 1;
}
