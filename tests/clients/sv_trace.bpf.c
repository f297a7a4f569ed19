/* XDP program for the trace-pipe test: prints the length of every IPv4 ICMP echo
 * request with bpf_printk and passes every packet. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* linux/icmp.h pulls in libc headers; the echo header is all we need. */
struct echo {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u16 id;
	__u16 seq;
};

SEC("xdp")
int sv_trace(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct echo *icmp = data + sizeof(*eth) + sizeof(*ip);

	if ((void *)(icmp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->protocol != 1 || ip->ihl != 5 || icmp->type != 8)
		return XDP_PASS;
	bpf_printk("icmp echo len %d seq %d", (int)(end - data), bpf_ntohs(icmp->seq));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
