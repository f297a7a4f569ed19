//! rtnetlink XDP attach (`RTM_SETLINK`/`RTM_NEWLINK` with `IFLA_XDP`) and XDP queries
//! (`RTM_GETLINK`), emulated with the kernel's semantics (issue 7).
//!
//! # Wiring (for the seccomp handlers)
//!
//! Per supervised NETLINK_ROUTE socket (key: the socket's inode), keep a [`ReplyQueue`]
//! and a [`KernelSocket`] ([`FdSocket`] over `pidfd_getfd` of the target's fd: sends and
//! receives through it act with the target socket's port id, netns and credentials).
//! Implement [`XdpBackend`] once in the daemon:
//! - `resolve_prog_fd`: the target's fd -> program, through the registry (the kernel
//!   resolves IFLA_XDP_FD in the *sender's* fd table; EBADF closed, EINVAL not a prog);
//! - `resolve_target` / `device`: names and ifindexes belong to the *socket's* network
//!   namespace (`sock_net(skb->sk)` in rtnl_setlink), not the calling thread's:
//!   [`FdSocket::ifindex_of`] (SIOCGIFINDEX through the netlink socket itself) and
//!   [`FdSocket::driver_of`] (ETHTOOL_GDRVINFO) + [`DriverXdp::for_driver`] answer in
//!   that namespace; the emulated per-device [`DevXdpState`] keyed by (netns, ifindex),
//!   with `Slot::link` set for bpf_link attachments (so netlink gets EBUSY);
//! - `commit`: hand the change to the data plane; a driver refusal it sees without a
//!   message (bpf() has no extack) can take one from [`driver_extack`];
//! - `attachment_of`: what RTM_GETLINK shows (`Some(DevXdpState::attach_info())` for
//!   every device where bpftime runs a program or has a stub attached, so the stub never
//!   shows; `None` leaves the kernel's report).
//!
//! * `sendto`/`sendmsg` to the kernel (no address, or `nl_pid == 0 && nl_groups == 0`):
//!   copy the payload once, then
//!   ```ignore
//!   match netlink::handle_send(&buf, &mut queue, &mut sock, &mut backend) {
//!       SendOutcome::Continue => /* CONTINUE the syscall */,
//!       SendOutcome::Return(n) => /* answer n (bytes) or -errno */,
//!   }
//!   ```
//!   `Continue` means no message of the send changes XDP: CONTINUE the syscall (any
//!   replies already queued are older than what the kernel will answer, and are served
//!   first, so the order holds).
//!   Cheap pre-check without side effects: [`classify_send`].
//!   Before answering, the supervisor should check what `netlink_sendmsg` checks first:
//!   `MSG_OOB` -> EOPNOTSUPP, `len > SO_SNDBUF - 32` -> EMSGSIZE.
//! * `recvfrom`/`recvmsg`: [`handle_recv`] with the buffer size and flags (MSG_PEEK,
//!   MSG_TRUNC honoured; `wait` = !(MSG_DONTWAIT or O_NONBLOCK)). It serves the queue
//!   first, else reads one datagram from the kernel and rewrites its link messages (so
//!   RTM_GETLINK dumps, single replies and RTM_NEWLINK notifications show the emulated
//!   XDP state, and the data plane's kernel stub never shows). Write `Received::data`
//!   into the target's buffer, `Received::addr` into msg_name (sockaddr_nl, 12 bytes),
//!   `Received::msg_flags` into msg_flags, and return `Received::ret`.
//!   A blocking receive with nothing anywhere waits `FdSocket::timeout_ms` and then
//!   answers EAGAIN; the supervisor should retry it (or poll the duplicated fd) until a
//!   datagram comes or the target is interrupted, without holding other work.
//!
//! # Which messages are answered here, which go to the kernel
//!
//! Only a message that would reach `dev_change_xdp_fd` (NLM_F_REQUEST, RTM_SETLINK or
//! RTM_NEWLINK, a whole ifinfomsg, an IFLA_XDP that passes the policy, no
//! IFLA_XDP_ATTACHED/PROG_ID, valid flags, IFLA_XDP_FD present, EXPECTED_FD present with
//! REPLACE) is answered by the daemon. Everything else — RTM_GETLINK, address/route
//! work, iproute2's empty RTM_NEWLINK probe (`iplink_have_newlink`: no IFLA_XDP, the
//! kernel answers it), an IFLA_XDP the kernel refuses before touching XDP, or one
//! without IFLA_XDP_FD — changes no XDP state and goes to the kernel untouched.
//!
//! A message with IFLA_XDP and other attributes is split: the request without
//! IFLA_XDP is forwarded first (do_setlink applies IFLA_XDP last, after every other
//! attribute), then, if the kernel accepted it, the XDP part is decided here; the first
//! error wins (the kernel's, with the target's request echoed and extack offsets mapped
//! back to it, or ours), and a single reply goes back as the kernel would send it. In a
//! send with several messages, the others are forwarded one by one around it, in order.
//!
//! # Modules
//! - [`msg`]: wire format, kernel-like parsing (garbage gives the kernel's answer).
//! - [`xdp`]: the attach state machine (errnos and extack messages of dev.c).
//! - [`reply`]: NLMSG_ERROR acks/errors, the reply queue with PEEK/TRUNC.
//! - [`getlink`]: the IFLA_XDP rewrite of link messages.
//! - [`session`]: send/recv orchestration over [`KernelSocket`] and [`XdpBackend`].
//! - [`sock`]: [`FdSocket`], the real-socket `KernelSocket`.
//! - [`probe`]: the running kernel's order of `dev_xdp_attach` checks, asked once.
//!
//! # Known gaps
//! - "Cannot attach when an upper device already has a program" (bond/team uppers) is
//!   not modelled; device-bound/offloaded programs are not modelled (no offload).
//! - Driver refusals on a native attach (veth: peer MTU too large -> ERANGE, peer
//!   detached -> ENOTCONN, rx/tx queue counts -> ENOSPC) must come from
//!   [`XdpBackend::commit`] (e.g. the data plane's real stub attach), messages from
//!   [`driver_extack`].
//! - After an emulated change the kernel would also multicast an RTM_NEWLINK to
//!   RTNLGRP_LINK listeners (`ip monitor link`); none is sent.
//! - Attributes carrying fds (IFLA_NET_NS_FD) in messages the daemon forwards are
//!   resolved in the daemon's fd table; IFLA_TARGET_NETNSID and RTM_NEWLINK on a device
//!   group (IFLA_GROUP without a device) with IFLA_XDP are not special-cased.
//! - RTM_NEWLINK|NLM_F_CREATE creating a device ignores IFLA_XDP, as the kernel does
//!   (checked by tests/tests/netlink_xdp.rs).

pub mod getlink;
pub mod msg;
pub mod probe;
pub mod reply;
pub mod session;
pub mod sock;
pub mod xdp;

pub use getlink::{encode_xdp_nest, rewrite_getlink};
pub use reply::{build_ack, AckOptions, Datagram, Received, ReplyQueue};
pub use session::{
    classify_send, drain_kernel, handle_recv, handle_send, KernelSocket, Part, SendAction,
    SendOutcome, XdpBackend, XdpMessage,
};
pub use sock::FdSocket;
pub use xdp::{
    change_xdp_fd, driver_extack, DevXdpState, DriverXdp, NativeCheck, ProgHandle, Slot,
    XdpAttachInfo, XdpChange, XdpError, XdpMode, XdpRequest,
};
