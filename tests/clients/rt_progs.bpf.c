/* Programs of tests/tests/real_traffic.rs: pass-all, and a NAT that moves UDP sent to
 * 10.77.0.99:9999 onto 10.77.0.2:7000, updating the IPv4 and UDP checksums incrementally
 * (RFC 1624) as load balancers do. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int rt_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The checksum after a 16-bit word of the covered data changes from `from` to `to`. */
static __always_inline __u16 csum_update16(__u16 check, __u16 from, __u16 to)
{
	return ~csum_fold32((__u16)~check + (__u16)~from + (__u32)to);
}

SEC("xdp/nat")
int rt_nat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (ip->daddr != bpf_htonl(0x0a4d0063) || udp->dest != bpf_htons(9999))
		return XDP_PASS;
	__u16 *old = (__u16 *)&ip->daddr;
	__u16 o0 = old[0], o1 = old[1];
	ip->daddr = bpf_htonl(0x0a4d0002);
	__u16 n0 = old[0], n1 = old[1];
	ip->check = csum_update16(csum_update16(ip->check, o0, n0), o1, n1);
	if (udp->check) {
		__u16 c = csum_update16(csum_update16(udp->check, o0, n0), o1, n1);
		c = csum_update16(c, udp->dest, bpf_htons(7000));
		udp->check = c ? c : 0xffff;
	}
	udp->dest = bpf_htons(7000);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
