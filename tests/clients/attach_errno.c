/* The XDP attach/replace/detach errno table (tests/tests/attach_errno.rs): runs the same
 * sequence of netlink (bpf_xdp_attach/detach/query) and bpf_link (LINK_CREATE/UPDATE/
 * DETACH, link info) operations on IFACE and prints one line per step:
 *   <step> <result>
 * where result is "ok", an errno name, or what a query saw (p1/p2/none, mode). Ids are
 * never printed, so the kernel's run and bpftime's compare line by line.
 * With PINDIR, lifetimes too: a pinned link outlives its fd and goes with its pin, a
 * netlink attachment outlives its program fd (waits 3 s after each release: bpftime
 * collects released objects every 2 s).
 * usage: attach_errno IFACE [PINDIR] */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static __u32 id1, id2;

static const char *ename(int e)
{
	switch (e) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ERANGE: return "ERANGE";
	case ENOLINK: return "ENOLINK";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOTCONN: return "ENOTCONN";
	default: {
		static char b[32];
		snprintf(b, sizeof(b), "E%d", e);
		return b;
	}
	}
}

static void step(const char *name, int rc)
{
	printf("%s %s\n", name, ename(rc < 0 ? -rc : 0));
	fflush(stdout);
}

static const char *who(__u32 id)
{
	if (!id)
		return "none";
	if (id == id1)
		return "p1";
	if (id == id2)
		return "p2";
	return "other";
}

static void query(const char *name, int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int rc = bpf_xdp_query(ifindex, 0, &q);
	if (rc) {
		step(name, rc);
		return;
	}
	printf("%s prog=%s skb=%s drv=%s mode=%u\n", name, who(q.prog_id), who(q.skb_prog_id),
	       who(q.drv_prog_id), q.attach_mode);
	fflush(stdout);
}

static int load(enum bpf_prog_type type, const char *name, int ret)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = ret },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o);
	if (type == BPF_PROG_TYPE_XDP)
		o.expected_attach_type = BPF_XDP;
	return bpf_prog_load(type, name, "GPL", insns, 2, &o);
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

static int nl(int ifindex, int fd, __u32 flags, int old_fd)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = old_fd);
	return bpf_xdp_attach(ifindex, fd, flags, old_fd ? &o : NULL);
}

static int lcreate(int fd, int ifindex, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, o, .flags = flags);
	int r = bpf_link_create(fd, ifindex, BPF_XDP, &o);
	return r < 0 ? -errno : r;
}

static int lupdate(int link, int fd, __u32 flags, int old_fd)
{
	LIBBPF_OPTS(bpf_link_update_opts, o, .flags = flags, .old_prog_fd = old_fd);
	return bpf_link_update(link, fd, &o) ? -errno : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: %s IFACE [PINDIR [BRIDGE]]\n", argv[0]);
		return 2;
	}
	int ifindex = if_nametoindex(argv[1]);
	if (!ifindex) {
		perror(argv[1]);
		return 2;
	}
	int p1 = load(BPF_PROG_TYPE_XDP, "attach_p1", 2);
	int p2 = load(BPF_PROG_TYPE_XDP, "attach_p2", 2);
	int sf = load(BPF_PROG_TYPE_SOCKET_FILTER, "attach_sf", 0);
	if (p1 < 0 || p2 < 0 || sf < 0) {
		fprintf(stderr, "prog load: %d %d %d\n", p1, p2, sf);
		return 2;
	}
	id1 = prog_id(p1);
	id2 = prog_id(p2);
	const __u32 SKB = XDP_FLAGS_SKB_MODE, DRV = XDP_FLAGS_DRV_MODE;
	const __u32 NOEXIST = XDP_FLAGS_UPDATE_IF_NOEXIST, REPLACE = XDP_FLAGS_REPLACE;

	/* Netlink (IFLA_XDP). */
	query("nl.query.empty", ifindex);
	step("nl.detach.empty", bpf_xdp_detach(ifindex, SKB, NULL));
	step("nl.attach.skb", nl(ifindex, p1, SKB, 0));
	query("nl.query.skb", ifindex);
	step("nl.attach.noexist.busy", nl(ifindex, p2, SKB | NOEXIST, 0));
	step("nl.attach.replace.plain", nl(ifindex, p2, SKB, 0));
	query("nl.query.replaced", ifindex);
	step("nl.attach.replace.expected.wrong", nl(ifindex, p1, SKB | REPLACE, p1));
	step("nl.attach.replace.expected.right", nl(ifindex, p1, SKB | REPLACE, p2));
	query("nl.query.replaced.expected", ifindex);
	step("nl.attach.two.modes", nl(ifindex, p1, SKB | DRV, 0));
	step("nl.attach.other.mode", nl(ifindex, p1, DRV, 0));
	step("nl.attach.not.xdp", nl(ifindex, sf, SKB, 0));
	step("nl.attach.bad.fd", nl(ifindex, 999, SKB, 0));
	step("nl.attach.bad.flags", nl(ifindex, p1, 1u << 7, 0));
	step("nl.attach.no.dev", nl(99999, p1, SKB, 0));
	step("link.create.over.netlink", lcreate(p1, ifindex, SKB));
	step("link.create.over.netlink.nomode", lcreate(p1, ifindex, 0));
	step("nl.detach.replace.wrong", bpf_xdp_detach(ifindex, SKB | REPLACE,
			&(struct bpf_xdp_attach_opts){ .sz = sizeof(struct bpf_xdp_attach_opts), .old_prog_fd = p2 }));
	step("nl.detach.other.mode", bpf_xdp_detach(ifindex, DRV, NULL));
	query("nl.query.still", ifindex);
	step("nl.detach", bpf_xdp_detach(ifindex, SKB, NULL));
	query("nl.query.detached", ifindex);
	step("nl.detach.again", bpf_xdp_detach(ifindex, SKB, NULL));

	/* bpf_link (LINK_CREATE BPF_XDP). */
	step("link.create.two.modes", lcreate(p1, ifindex, SKB | DRV));
	step("link.create.bad.flags", lcreate(p1, ifindex, NOEXIST));
	step("link.create.not.xdp", lcreate(sf, ifindex, SKB));
	step("link.create.bad.fd", lcreate(999, ifindex, SKB));
	step("link.create.no.dev", lcreate(p1, 99999, SKB));
	int link = lcreate(p1, ifindex, SKB);
	step("link.create.skb", link < 0 ? link : 0);
	if (link < 0)
		return 1;
	query("link.query", ifindex);
	struct bpf_link_info li = {};
	__u32 len = sizeof(li);
	int rc = bpf_obj_get_info_by_fd(link, &li, &len);
	printf("link.info rc=%s type=%u prog=%s ifindex_ok=%d\n", ename(rc < 0 ? errno : 0), li.type,
	       who(li.prog_id), li.xdp.ifindex == (__u32)ifindex);
	step("link.create.again", lcreate(p2, ifindex, SKB));
	step("nl.attach.over.link", nl(ifindex, p2, SKB, 0));
	step("nl.attach.over.link.nomode", nl(ifindex, p2, 0, 0));
	step("nl.attach.over.link.drv", nl(ifindex, p2, DRV, 0));
	step("nl.detach.over.link", bpf_xdp_detach(ifindex, SKB, NULL));
	step("link.update", lupdate(link, p2, 0, 0));
	query("link.query.updated", ifindex);
	step("link.update.replace.wrong", lupdate(link, p1, BPF_F_REPLACE, p1));
	step("link.update.replace.right", lupdate(link, p1, BPF_F_REPLACE, p2));
	step("link.update.old.without.replace", lupdate(link, p1, 0, p2));
	step("link.update.bad.flags", lupdate(link, p1, 1, 0));
	step("link.update.not.xdp", lupdate(link, sf, 0, 0));
	step("link.update.bad.fd", lupdate(link, 999, 0, 0));
	step("link.update.not.link", lupdate(p1, p2, 0, 0));
	query("link.query.final", ifindex);
	step("link.detach", bpf_link_detach(link) ? -errno : 0);
	query("link.query.detached", ifindex);
	li = (struct bpf_link_info){};
	len = sizeof(li);
	rc = bpf_obj_get_info_by_fd(link, &li, &len);
	printf("link.info.detached rc=%s type=%u prog=%s ifindex=%u\n", ename(rc < 0 ? errno : 0),
	       li.type, who(li.prog_id), li.xdp.ifindex);
	step("link.update.detached", lupdate(link, p2, 0, 0));
	step("link.detach.again", bpf_link_detach(link) ? -errno : 0);
	step("link.detach.not.link", bpf_link_detach(p1) ? -errno : 0);
	step("nl.attach.after.link", nl(ifindex, p1, SKB, 0));
	step("nl.detach.final", bpf_xdp_detach(ifindex, SKB, NULL));
	close(link);

	/* Native mode (veth has ndo_bpf): no mode means DRV. */
	step("nl.attach.nomode", nl(ifindex, p1, 0, 0));
	query("nl.query.nomode", ifindex);
	step("nl.attach.skb.over.drv", nl(ifindex, p2, SKB, 0));
	step("link.create.skb.over.drv", lcreate(p2, ifindex, SKB));
	step("nl.detach.nomode", bpf_xdp_detach(ifindex, 0, NULL));
	int dl = lcreate(p2, ifindex, DRV);
	step("link.create.drv", dl < 0 ? dl : 0);
	query("link.query.drv", ifindex);
	step("nl.attach.skb.over.drv.link", nl(ifindex, p1, SKB, 0));
	step("nl.detach.drv.link", bpf_xdp_detach(ifindex, DRV, NULL));
	if (dl >= 0)
		step("link.detach.drv", bpf_link_detach(dl) ? -errno : 0);
	query("final", ifindex);

	/* A device without ndo_bpf (a bridge): where its EOPNOTSUPP falls among the other
	 * refusals differs between kernel builds (supervisor/src/netlink/probe.rs). */
	int br = argc == 4 ? if_nametoindex(argv[3]) : 0;
	if (br) {
		int bl = lcreate(p1, br, DRV);
		step("br.link.drv.empty", bl < 0 ? bl : 0);
		step("br.nl.skb", nl(br, p1, SKB, 0));
		step("br.link.drv.over.skb", lcreate(p2, br, DRV));
		step("br.link.hw.over.skb", lcreate(p2, br, XDP_FLAGS_HW_MODE));
		step("br.link.skb.over.nl", lcreate(p2, br, SKB));
		step("br.nl.drv.over.skb", nl(br, p2, DRV, 0));
		step("br.nl.drv.noexist.over.skb", nl(br, p2, DRV | NOEXIST, 0));
		step("br.nl.detach", bpf_xdp_detach(br, SKB, NULL));
		bl = lcreate(p1, br, SKB);
		step("br.link.skb", bl < 0 ? bl : 0);
		step("br.nl.drv.over.skb.link", nl(br, p2, DRV, 0));
		step("br.link.drv.over.skb.link", lcreate(p2, br, DRV));
		if (bl >= 0)
			step("br.link.detach", bpf_link_detach(bl) ? -errno : 0);
		query("br.final", br);
	}
	if (argc < 3)
		return 0;

	/* Lifetimes. */
	char path[512];
	snprintf(path, sizeof(path), "%s/attach_errno_link_%d", argv[2], (int)getpid());
	int l = lcreate(p1, ifindex, SKB);
	step("life.create", l < 0 ? l : 0);
	step("life.pin", bpf_obj_pin(l, path) ? -errno : 0);
	close(l);
	sleep(3);
	query("life.query.pinned", ifindex);
	int g = bpf_obj_get(path);
	step("life.get", g < 0 ? -errno : 0);
	li = (struct bpf_link_info){};
	len = sizeof(li);
	rc = bpf_obj_get_info_by_fd(g, &li, &len);
	printf("life.info rc=%s type=%u prog=%s ifindex_ok=%d\n", ename(rc < 0 ? errno : 0), li.type,
	       who(li.prog_id), li.xdp.ifindex == (__u32)ifindex);
	close(g);
	step("life.unlink", unlink(path) ? -errno : 0);
	sleep(3);
	query("life.query.unpinned", ifindex);
	l = lcreate(p2, ifindex, SKB);
	step("life.create.unpinned", l < 0 ? l : 0);
	close(l);
	sleep(3);
	query("life.query.closed", ifindex);
	/* Released link, then netlink at once (as a loader replacing its attachment). */
	l = lcreate(p1, ifindex, SKB);
	step("life.create.again", l < 0 ? l : 0);
	close(l);
	step("life.nl.after.close", nl(ifindex, p1, SKB, 0));
	step("life.nl.after.close.detach", bpf_xdp_detach(ifindex, SKB, NULL));
	l = lcreate(p1, ifindex, SKB);
	close(l);
	l = lcreate(p2, ifindex, SKB);
	step("life.link.after.close", l < 0 ? l : 0);
	query("life.query.link.after.close", ifindex);
	close(l);
	sleep(3);
	step("life.nl.attach", nl(ifindex, p2, SKB, 0));
	close(p2);
	sleep(3);
	query("life.query.nl.prog.closed", ifindex);
	step("life.nl.detach", bpf_xdp_detach(ifindex, SKB, NULL));
	query("life.final", ifindex);
	return 0;
}
