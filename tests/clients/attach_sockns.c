/* A netlink socket made in another network namespace (as Go's netlink.NewHandleAt
 * does: setns, socket, setns back): IFLA_XDP sent through it attaches to the device of
 * the SOCKET's namespace (rtnl_setlink uses sock_net), whatever the thread's namespace.
 * usage: attach_sockns NETNS_PATH IFACE   (run from another namespace)
 * Prints the ack's errno for attach and detach, and the query seen in NETNS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static int xdp(int sock, int ifindex, int fd, __u32 flags)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		char attrs[64];
	} req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_type = RTM_SETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.nh.nlmsg_seq = 7;
	req.ifi.ifi_family = AF_UNSPEC;
	req.ifi.ifi_index = ifindex;
	struct rtattr *nest = (struct rtattr *)req.attrs;
	nest->rta_type = IFLA_XDP | NLA_F_NESTED;
	struct rtattr *a = (struct rtattr *)((char *)nest + RTA_LENGTH(0));
	a->rta_type = IFLA_XDP_FD;
	a->rta_len = RTA_LENGTH(4);
	memcpy(RTA_DATA(a), &fd, 4);
	struct rtattr *b = (struct rtattr *)((char *)a + RTA_ALIGN(a->rta_len));
	b->rta_type = IFLA_XDP_FLAGS;
	b->rta_len = RTA_LENGTH(4);
	memcpy(RTA_DATA(b), &flags, 4);
	nest->rta_len = RTA_LENGTH(0) + RTA_ALIGN(a->rta_len) + RTA_ALIGN(b->rta_len);
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi)) + nest->rta_len;
	if (send(sock, &req, req.nh.nlmsg_len, 0) < 0)
		return -errno;
	char buf[4096];
	int n = recv(sock, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (h->nlmsg_type != NLMSG_ERROR)
		return -1000;
	return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s NETNS_PATH IFACE\n", argv[0]);
		return 2;
	}
	int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int there = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (home < 0 || there < 0 || setns(there, CLONE_NEWNET)) {
		perror("netns");
		return 2;
	}
	int ifindex = if_nametoindex(argv[2]);
	int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (!ifindex || sock < 0 || setns(home, CLONE_NEWNET)) {
		perror("setup");
		return 2;
	}
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	bind(sock, (struct sockaddr *)&sa, sizeof(sa));
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 2 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_XDP);
	int prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "sockns", "GPL", insns, 2, &o);
	if (prog < 0) {
		perror("prog load");
		return 2;
	}
	printf("home has %s: %d\n", argv[2], if_nametoindex(argv[2]) != 0);
	printf("attach %d\n", xdp(sock, ifindex, prog, XDP_FLAGS_SKB_MODE));
	setns(there, CLONE_NEWNET);
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int rc = bpf_xdp_query(ifindex, 0, &q);
	printf("query there %d attached=%d mode=%u\n", rc, q.prog_id != 0, q.attach_mode);
	setns(home, CLONE_NEWNET);
	printf("detach %d\n", xdp(sock, ifindex, -1, XDP_FLAGS_SKB_MODE));
	setns(there, CLONE_NEWNET);
	memset(&q, 0, sizeof(q));
	q.sz = sizeof(q);
	rc = bpf_xdp_query(ifindex, 0, &q);
	printf("query after %d attached=%d\n", rc, q.prog_id != 0);
	return 0;
}
