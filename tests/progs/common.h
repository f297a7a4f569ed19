/* Shared parsing code for the bpftime test corpus (vmlinux-free).
 *
 * Parsing rules (mirrored independently by tests/src/packets.rs `parse`):
 *  - Ethernet, then up to two VLAN tags (0x8100 / 0x88a8);
 *  - IPv4: 20 bytes needed, IHL >= 5 and IHL*4 bytes present, L4 follows the options;
 *  - IPv6: 40 bytes, then up to 4 extension headers (hop-by-hop, routing, dest opts: (len+1)*8
 *    bytes; fragment: 8 bytes);
 *  - TCP: 20 bytes and doff >= 5 with doff*4 bytes present; UDP, ICMP, ICMPv6: 8 bytes.
 *  Anything truncated or bogus sets `malformed`.
 */
#pragma once
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* Packet classes, used as array indices by several programs. */
enum pkt_class {
	C_NON_IP = 0,
	C_IPV4 = 1,
	C_IPV6 = 2,
	C_TCP = 3,
	C_UDP = 4,
	C_ICMP = 5,
	C_ICMPV6 = 6,
	C_VLAN = 7,
	C_MALFORMED = 8,
	C_OTHER_L4 = 9,
	C_MAX = 10,
};

struct pkt_info {
	__u16 eth_proto;  /* host order, after VLAN tags */
	__u16 vlan_id;    /* outermost VLAN id, 0 if none */
	__u8 vlans;       /* number of VLAN tags */
	__u8 l4_proto;    /* IPPROTO_*, 0 when not IP */
	__u8 malformed;
	__u8 pad;
	__u32 l3_off;
	__u32 l4_off;
	__u32 saddr;      /* IPv4 source, network order */
	__u32 daddr;
	__u16 sport;      /* host order */
	__u16 dport;
	__u8 tcp_flags;
	__u8 icmp_type;
};

static __always_inline int parse_pkt(struct xdp_md *ctx, struct pkt_info *pi)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;

	__builtin_memset(pi, 0, sizeof(*pi));
	if ((void *)(eth + 1) > data_end) {
		pi->malformed = 1;
		return -1;
	}
	proto = bpf_ntohs(eth->h_proto);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q_ && proto != ETH_P_8021AD_)
			break;
		struct vlan_hdr *vh = data + off;
		if ((void *)(vh + 1) > data_end) {
			pi->malformed = 1;
			return -1;
		}
		if (pi->vlans == 0)
			pi->vlan_id = bpf_ntohs(vh->tci) & 0x0fff;
		pi->vlans++;
		proto = bpf_ntohs(vh->encap_proto);
		off += sizeof(*vh);
	}
	pi->eth_proto = proto;
	pi->l3_off = off;

	if (proto == ETH_P_IP) {
		struct iphdr *iph = data + off;
		if ((void *)(iph + 1) > data_end) {
			pi->malformed = 1;
			return -1;
		}
		__u32 ihl = iph->ihl;
		if (ihl < 5) {
			pi->malformed = 1;
			return -1;
		}
		if (data + off + ihl * 4 > data_end) {
			pi->malformed = 1;
			return -1;
		}
		pi->l4_proto = iph->protocol;
		pi->saddr = iph->saddr;
		pi->daddr = iph->daddr;
		off += ihl * 4;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end) {
			pi->malformed = 1;
			return -1;
		}
		__u8 nh = ip6->nexthdr;
		off += sizeof(*ip6);
		for (int i = 0; i < 4; i++) {
			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
			    nh != IPPROTO_FRAGMENT)
				break;
			__u8 *eh = data + (off & 0xffff);
			if ((void *)(eh + 2) > data_end) {
				pi->malformed = 1;
				return -1;
			}
			__u32 len = nh == IPPROTO_FRAGMENT ? 8 : ((__u32)eh[1] + 1) * 8;
			nh = eh[0];
			off += len;
		}
		pi->l4_proto = nh;
	} else {
		return 0;
	}
	off &= 0xffff;
	pi->l4_off = off;

	if (pi->l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = data + off;
		if ((void *)(th + 1) > data_end) {
			pi->malformed = 1;
			return -1;
		}
		pi->sport = bpf_ntohs(th->source);
		pi->dport = bpf_ntohs(th->dest);
		pi->tcp_flags = ((__u8 *)th)[13];
		__u32 doff = th->doff;
		if (doff < 5 || data + off + doff * 4 > data_end) {
			pi->malformed = 1;
			return -1;
		}
	} else if (pi->l4_proto == IPPROTO_UDP) {
		struct udphdr *uh = data + off;
		if ((void *)(uh + 1) > data_end) {
			pi->malformed = 1;
			return -1;
		}
		pi->sport = bpf_ntohs(uh->source);
		pi->dport = bpf_ntohs(uh->dest);
	} else if (pi->l4_proto == IPPROTO_ICMP || pi->l4_proto == IPPROTO_ICMPV6) {
		__u8 *ih = data + off;
		if ((void *)(ih + 8) > data_end) {
			pi->malformed = 1;
			return -1;
		}
		pi->icmp_type = ih[0];
	}
	return 0;
}

/* The class of a parsed packet (most specific first). */
static __always_inline __u32 pkt_class(const struct pkt_info *pi)
{
	if (pi->malformed)
		return C_MALFORMED;
	switch (pi->l4_proto) {
	case IPPROTO_TCP:
		return C_TCP;
	case IPPROTO_UDP:
		return C_UDP;
	case IPPROTO_ICMP:
		return pi->eth_proto == ETH_P_IP ? C_ICMP : C_OTHER_L4;
	case IPPROTO_ICMPV6:
		return pi->eth_proto == ETH_P_IPV6 ? C_ICMPV6 : C_OTHER_L4;
	}
	if (pi->eth_proto == ETH_P_IP || pi->eth_proto == ETH_P_IPV6)
		return C_OTHER_L4;
	return C_NON_IP;
}

char LICENSE[] SEC("license") = "GPL";
