//! Running a target's send / recv on a NETLINK_ROUTE socket through the daemon: the
//! parts of a message the kernel must do go to the kernel on the target's own socket,
//! the XDP part is decided here, and every reply lands, in the kernel's order, in the
//! socket's [`ReplyQueue`]. The kernel and the daemon's registry are reached through the
//! two traits below, so all of this is tested without seccomp.

use tracing::{debug, warn};

use super::getlink::rewrite_getlink;
use super::msg::{
    messages, parse_link_request, parse_xdp_nest, strip_ranges, LinkRequest, LinkTarget, NlMsg,
    NlMsgHdr, Stripped, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST, RTM_NEWLINK,
};
use super::reply::{
    build_ack, build_error, parse_error, remap_tlv_offsets, AckOptions, Datagram, Received,
    ReplyQueue,
};
use super::xdp::{
    change_xdp_fd, validate_nest, DevXdpState, DriverXdp, NestOutcome, ProgHandle, XdpAttachInfo,
    XdpChange, XdpError, XdpRequest,
};

/// The target's netlink socket, as the daemon reaches it (a duplicate of the target's fd,
/// e.g. from pidfd_getfd): what goes through it acts with the socket's port id and
/// network namespace, exactly as if the target had sent it.
pub trait KernelSocket {
    /// Sends one datagram to the kernel (nl_pid 0). Errors are positive errnos.
    fn send(&mut self, data: &[u8]) -> Result<(), i32>;
    /// Receives one datagram. With `wait`, waits a bounded time for one; `Ok(None)` when
    /// none came.
    fn recv(&mut self, wait: bool) -> Result<Option<Datagram>, i32>;
    /// The socket's port id (binding it first if the target never did, as
    /// netlink_sendmsg autobinds).
    fn portid(&mut self) -> Result<u32, i32>;
    /// NETLINK_EXT_ACK / NETLINK_CAP_ACK as set on the socket.
    fn ack_options(&mut self) -> AckOptions;
}

/// The daemon's side: the target's fds, the emulated XDP state of devices (of the
/// socket's network namespace), and the data plane.
pub trait XdpBackend {
    /// The program a fd of the target refers to: Err(EBADF) if the fd is not open,
    /// Err(EINVAL) if it is not a BPF program.
    fn resolve_prog_fd(&mut self, fd: i32) -> Result<ProgHandle, i32>;
    /// The ifindex of the device a request names (names resolve in the socket's netns).
    fn resolve_target(&mut self, target: &LinkTarget) -> Option<u32>;
    /// The emulated XDP state of a device and what its driver offers; `None` if no such
    /// device.
    fn device(&mut self, ifindex: u32) -> Option<(DevXdpState, DriverXdp)>;
    /// Commits a decided change (hand the program to the data plane, record it). An
    /// error is reported to the target as the kernel's driver error would be.
    fn commit(&mut self, ifindex: u32, change: &XdpChange) -> Result<(), XdpError>;
    /// What RTM_GETLINK must report for a device, `None` to leave the kernel's nest.
    fn attachment_of(&mut self, ifindex: u32) -> Option<XdpAttachInfo>;
    /// `netlink_net_capable(skb, CAP_NET_ADMIN)`: whether the sender may change links
    /// of the socket's network namespace (else every non-GET message is EPERM).
    fn net_admin(&mut self) -> bool;
}

/// A message that reaches `dev_change_xdp_fd`: the daemon answers it.
#[derive(Debug, Clone)]
pub struct XdpMessage<'a> {
    /// The request as the target sent it.
    pub request: LinkRequest<'a>,
    /// The validated XDP arguments.
    pub xdp: XdpRequest,
    /// The request without IFLA_XDP, NLM_F_ACK forced: forwarded first (the kernel
    /// applies every other attribute before IFLA_XDP in do_setlink).
    pub rest: Stripped,
}

/// One message of a send, in order.
#[derive(Debug, Clone)]
pub enum Part<'a> {
    /// Goes to the kernel as it is.
    Kernel(NlMsg<'a>),
    /// Carries an XDP change.
    Xdp(XdpMessage<'a>),
}

/// What to do with a send on a NETLINK_ROUTE socket.
#[derive(Debug, Clone)]
pub enum SendAction<'a> {
    /// No message changes XDP: let the syscall continue into the kernel.
    Forward,
    /// Some message changes XDP: the daemon runs the whole send ([`handle_send`]).
    Handle(Vec<Part<'a>>),
}

/// The XDP request of a message, if the kernel would call `dev_change_xdp_fd` for it.
/// Anything the kernel refuses earlier (bad ifinfomsg, IFLA_XDP failing the policy,
/// IFLA_XDP_ATTACHED in a request, bad flags, REPLACE without EXPECTED_FD) or that has
/// no IFLA_XDP_FD changes no XDP state, so it is the kernel's to answer.
pub fn xdp_part<'a>(m: &NlMsg<'a>) -> Option<XdpMessage<'a>> {
    let request = parse_link_request(m)?;
    let nest = request.xdp?;
    if !nest.is_empty() && nest.len() < super::msg::NLA_HDRLEN {
        return None; // top-level policy (NLA_NESTED) refuses it: the kernel's answer
    }
    let parsed = parse_xdp_nest(nest).ok()?;
    let NestOutcome::Change(xdp) = validate_nest(&parsed).ok()? else {
        return None;
    };
    let rest = strip_ranges(request.msg.bytes, &request.xdp_ranges, NLM_F_ACK);
    Some(XdpMessage { request, xdp, rest })
}

/// Classifies a send (the whole buffer the target passed to sendto/sendmsg, addressed
/// to the kernel).
pub fn classify_send(buf: &[u8]) -> SendAction<'_> {
    let parts: Vec<Part<'_>> = messages(buf)
        .map(|m| xdp_part(&m).map_or(Part::Kernel(m), Part::Xdp))
        .collect();
    if parts.iter().any(|p| matches!(p, Part::Xdp(_))) {
        SendAction::Handle(parts)
    } else {
        SendAction::Forward
    }
}

/// Queues a datagram from the kernel, its link messages rewritten for the emulation.
pub fn queue_from_kernel(queue: &mut ReplyQueue, mut d: Datagram, backend: &mut dyn XdpBackend) {
    rewrite_getlink(&mut d.data, &mut |i| backend.attachment_of(i));
    queue.push(d);
}

/// Moves everything the kernel holds for the socket into the queue (to keep the order
/// of replies when the daemon is about to add its own).
pub fn drain_kernel(
    queue: &mut ReplyQueue,
    sock: &mut dyn KernelSocket,
    backend: &mut dyn XdpBackend,
) {
    loop {
        match sock.recv(false) {
            Ok(Some(d)) => queue_from_kernel(queue, d, backend),
            Ok(None) => break,
            Err(e) => {
                warn!(errno = e, "netlink: draining the kernel socket failed");
                break;
            }
        }
    }
}

/// What a send came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Not ours: continue the syscall.
    Continue,
    /// Done: the syscall returns this (bytes sent, or -errno).
    Return(isize),
}

fn kind_is_get(ty: u16) -> bool {
    ty >= 16 && ty % 4 == 2
}

/// Sends `msg` (one message) to the kernel and queues its replies. Non-dump requests are
/// sent with NLM_F_ACK so the end of their replies is known; an ACK the target did not
/// ask for is dropped, and an error's echoed header gets the target's flags back.
/// Returns the kernel's NLMSG_ERROR for it (bytes), if any, instead of queueing it when
/// `keep_error` is set.
fn forward_one(
    msg: &[u8],
    keep_error: bool,
    queue: &mut ReplyQueue,
    sock: &mut dyn KernelSocket,
    backend: &mut dyn XdpBackend,
) -> Result<Option<Vec<u8>>, i32> {
    let Some(hdr) = NlMsgHdr::parse(msg) else {
        return Ok(None);
    };
    let dump = kind_is_get(hdr.ty) && hdr.flags & NLM_F_DUMP != 0 && hdr.flags & NLM_F_REQUEST != 0;
    let mut sent = msg.to_vec();
    if !dump {
        let f = hdr.flags | NLM_F_ACK;
        sent[6..8].copy_from_slice(&f.to_ne_bytes());
    }
    let sent_hdr = NlMsgHdr::parse(&sent).unwrap_or(hdr);
    sock.send(&sent)?;
    loop {
        let Some(mut d) = sock.recv(true)? else {
            warn!(
                seq = hdr.seq,
                ty = hdr.ty,
                "netlink: no answer from the kernel for a forwarded message"
            );
            return Ok(None);
        };
        let mut ours = None;
        let mut done = false;
        for m in messages(&d.data) {
            if m.hdr.seq != hdr.seq {
                continue;
            }
            if m.hdr.ty == NLMSG_ERROR {
                if let Some(e) = parse_error(m.bytes) {
                    if e.request.ty == sent_hdr.ty && e.request.flags == sent_hdr.flags {
                        ours = Some((m.offset, m.bytes.len(), e.errno));
                        done = true;
                    }
                }
            } else if dump && m.hdr.ty == NLMSG_DONE {
                done = true;
            }
        }
        if let Some((off, len, errno)) = ours {
            let mut e = d.data[off..off + len].to_vec();
            // Give the echoed header the target's flags back.
            e[NLMSG_HDRLEN + 4 + 6..NLMSG_HDRLEN + 4 + 8].copy_from_slice(&hdr.flags.to_ne_bytes());
            if keep_error {
                return Ok(Some(e));
            }
            if errno != 0 || hdr.flags & NLM_F_ACK != 0 {
                d.data.splice(off..off + len, e);
            } else {
                d.data
                    .drain(off..(off + super::msg::align4(len)).min(d.data.len()));
            }
            if !d.data.is_empty() {
                queue_from_kernel(queue, d, backend);
            }
            return Ok(None);
        }
        queue_from_kernel(queue, d, backend);
        if done {
            return Ok(None);
        }
    }
}

/// Answers the XDP part of a message whose other attributes the kernel accepted.
fn answer_xdp(x: &XdpMessage<'_>, backend: &mut dyn XdpBackend) -> Result<(), XdpError> {
    let enodev = XdpError::bare(libc::ENODEV);
    let ifindex = backend.resolve_target(&x.request.target).ok_or(enodev)?;
    let (state, driver) = backend.device(ifindex).ok_or(enodev)?;
    let order = super::probe::native_check();
    let change = change_xdp_fd(&state, driver, order, &x.xdp, &mut |fd| {
        backend.resolve_prog_fd(fd)
    })?;
    if change.changed {
        backend.commit(ifindex, &change)?;
    }
    debug!(ifindex, ?change, "netlink: XDP change");
    Ok(())
}

/// Runs one send of a target on a NETLINK_ROUTE socket whose destination is the kernel.
/// `buf` is the daemon's copy of the whole payload. Messages are handled in order as
/// `netlink_rcv_skb` would; replies go to `queue`.
pub fn handle_send(
    buf: &[u8],
    queue: &mut ReplyQueue,
    sock: &mut dyn KernelSocket,
    backend: &mut dyn XdpBackend,
) -> SendOutcome {
    let SendAction::Handle(parts) = classify_send(buf) else {
        return SendOutcome::Continue;
    };
    let portid = match sock.portid() {
        Ok(p) => p,
        Err(e) => return SendOutcome::Return(-(e as isize)),
    };
    let opts = sock.ack_options();
    drain_kernel(queue, sock, backend);
    for part in parts {
        match part {
            Part::Kernel(m) => {
                if let Err(e) = forward_one(m.bytes, false, queue, sock, backend) {
                    warn!(errno = e, "netlink: forwarding a message failed");
                }
            }
            Part::Xdp(x) => {
                let original = x.request.msg.bytes;
                // rtnetlink_rcv_msg refuses before anything else is looked at.
                if !backend.net_admin() {
                    queue.push_kernel(build_ack(original, portid, libc::EPERM, None, opts));
                    continue;
                }
                // RTM_NEWLINK|NLM_F_CREATE for a device that does not exist creates it,
                // and the kernel does not apply IFLA_XDP then (seen on 6.18).
                let created = x.request.msg.hdr.ty == RTM_NEWLINK
                    && x.request.msg.hdr.flags & NLM_F_CREATE != 0
                    && backend.resolve_target(&x.request.target).is_none();
                let kernel_err = match forward_one(&x.rest.bytes, true, queue, sock, backend) {
                    Ok(e) => e,
                    Err(e) => {
                        queue.push_kernel(build_ack(original, portid, e, None, opts));
                        continue;
                    }
                };
                if let Some(e) = kernel_err.as_deref().and_then(parse_error) {
                    if e.errno != 0 {
                        // The kernel refused the rest: nothing of IFLA_XDP is applied.
                        let tlvs = remap_tlv_offsets(e.tlvs, &|o| x.rest.original_offset(o));
                        queue.push_kernel(build_error(original, portid, e.errno, &tlvs, opts));
                        continue;
                    }
                }
                let result = if created {
                    Ok(())
                } else {
                    answer_xdp(&x, backend)
                };
                match result {
                    Ok(()) if x.request.msg.hdr.flags & NLM_F_ACK != 0 => {
                        queue.push_kernel(build_ack(original, portid, 0, None, opts))
                    }
                    Ok(()) => {}
                    Err(e) => queue.push_kernel(build_ack(original, portid, e.errno, e.msg, opts)),
                }
            }
        }
    }
    SendOutcome::Return(buf.len() as isize)
}

/// Serves one recv of the target: from the queue, else one datagram from the kernel
/// (rewritten). `Err(EAGAIN)` when nothing came (a non-blocking recv's answer; a
/// blocking one should be retried or handed back to the kernel by the caller).
pub fn handle_recv(
    buf_len: usize,
    flags: i32,
    wait: bool,
    queue: &mut ReplyQueue,
    sock: &mut dyn KernelSocket,
    backend: &mut dyn XdpBackend,
) -> Result<Received, i32> {
    if queue.is_empty() {
        if let Some(d) = sock.recv(wait)? {
            queue_from_kernel(queue, d, backend);
        }
    }
    queue.recv(buf_len, flags).ok_or(libc::EAGAIN)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};

    use super::*;
    use crate::netlink::msg::{
        put_attr, IfInfoMsg, IFLA_XDP, IFLA_XDP_FD, IFLA_XDP_FLAGS, RTM_GETLINK, RTM_SETLINK,
    };
    use crate::netlink::xdp::{XdpMode, BPF_PROG_TYPE_XDP};

    /// A fake kernel: answers every request with an ACK (if asked) or a scripted error.
    #[derive(Default)]
    struct FakeKernel {
        sent: Vec<Vec<u8>>,
        inbox: VecDeque<Datagram>,
        fail_with: Option<i32>,
    }

    impl KernelSocket for FakeKernel {
        fn send(&mut self, data: &[u8]) -> Result<(), i32> {
            self.sent.push(data.to_vec());
            for m in messages(data) {
                let err = self.fail_with.unwrap_or(0);
                if m.hdr.flags & NLM_F_ACK != 0 || err != 0 {
                    let opts = AckOptions {
                        ext_ack: true,
                        cap_ack: false,
                    };
                    let tlvs = if err != 0 {
                        let mut t = Vec::new();
                        put_attr(
                            &mut t,
                            crate::netlink::msg::NLMSGERR_ATTR_OFFS,
                            &32u32.to_ne_bytes(),
                        );
                        t
                    } else {
                        Vec::new()
                    };
                    self.inbox.push_back(Datagram::from_kernel(build_error(
                        m.bytes, 99, err, &tlvs, opts,
                    )));
                }
            }
            Ok(())
        }
        fn recv(&mut self, _wait: bool) -> Result<Option<Datagram>, i32> {
            Ok(self.inbox.pop_front())
        }
        fn portid(&mut self) -> Result<u32, i32> {
            Ok(99)
        }
        fn ack_options(&mut self) -> AckOptions {
            AckOptions {
                ext_ack: true,
                cap_ack: false,
            }
        }
    }

    #[derive(Default)]
    struct Model {
        devs: HashMap<u32, DevXdpState>,
        progs: HashMap<i32, ProgHandle>,
    }

    impl XdpBackend for Model {
        fn net_admin(&mut self) -> bool {
            true
        }
        fn resolve_prog_fd(&mut self, fd: i32) -> Result<ProgHandle, i32> {
            self.progs.get(&fd).copied().ok_or(libc::EBADF)
        }
        fn resolve_target(&mut self, t: &LinkTarget) -> Option<u32> {
            match t {
                LinkTarget::Index(i) => self.devs.contains_key(i).then_some(*i),
                LinkTarget::Name(n) if n == b"veth0" => Some(2),
                _ => None,
            }
        }
        fn device(&mut self, i: u32) -> Option<(DevXdpState, DriverXdp)> {
            self.devs.get(&i).map(|d| (*d, DriverXdp::VETH))
        }
        fn commit(&mut self, i: u32, c: &XdpChange) -> Result<(), XdpError> {
            self.devs.entry(i).or_default().apply(c);
            Ok(())
        }
        fn attachment_of(&mut self, i: u32) -> Option<XdpAttachInfo> {
            self.devs.get(&i).map(|d| d.attach_info())
        }
    }

    fn setlink(index: i32, fd: i32, flags: u32, seq: u32, ack: bool, mtu: bool) -> Vec<u8> {
        let mut p = IfInfoMsg {
            index,
            ..Default::default()
        }
        .to_bytes()
        .to_vec();
        if mtu {
            put_attr(&mut p, 4, &1400u32.to_ne_bytes());
        }
        let mut nest = Vec::new();
        put_attr(&mut nest, IFLA_XDP_FD, &fd.to_ne_bytes());
        put_attr(&mut nest, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
        put_attr(&mut p, IFLA_XDP, &nest); // no NLA_F_NESTED, as iproute2
        let f = NLM_F_REQUEST | if ack { NLM_F_ACK } else { 0 };
        let hdr = NlMsgHdr {
            len: (16 + p.len()) as u32,
            ty: RTM_SETLINK,
            flags: f,
            seq,
            pid: 0,
        };
        let mut v = hdr.to_bytes().to_vec();
        v.extend(p);
        v
    }

    fn model() -> Model {
        let mut m = Model::default();
        m.devs.insert(2, DevXdpState::default());
        m.progs.insert(
            5,
            ProgHandle {
                id: 50,
                prog_type: BPF_PROG_TYPE_XDP,
                expected_attach_type: 37,
            },
        );
        m
    }

    #[test]
    fn attach_then_noexist_busy() {
        let (mut q, mut k, mut m) = (ReplyQueue::new(), FakeKernel::default(), model());
        let req = setlink(2, 5, 1, 7, true, false);
        assert_eq!(
            handle_send(&req, &mut q, &mut k, &mut m),
            SendOutcome::Return(req.len() as isize)
        );
        // The kernel saw the request without IFLA_XDP.
        assert_eq!(k.sent.len(), 1);
        assert_eq!(k.sent[0].len(), 32);
        let r = q.recv(4096, 0).unwrap();
        let e = parse_error(&r.data).unwrap();
        assert_eq!((e.errno, e.hdr.seq, e.hdr.pid), (0, 7, 99));
        assert!(q.is_empty());
        assert_eq!(m.devs[&2].get(XdpMode::Drv).unwrap().prog_id, 50);
        // Again with NOEXIST: EBUSY + message, request echoed.
        let req2 = setlink(2, 5, 1, 8, true, false);
        handle_send(&req2, &mut q, &mut k, &mut m);
        let r = q.recv(4096, 0).unwrap();
        let e = parse_error(&r.data).unwrap();
        assert_eq!((e.errno, e.hdr.seq), (libc::EBUSY, 8));
        assert_eq!(e.message().as_deref(), Some("XDP program already attached"));
        assert_eq!(&r.data[20..20 + req2.len()], &req2[..]);
    }

    #[test]
    fn no_ack_requested_success_is_silent() {
        let (mut q, mut k, mut m) = (ReplyQueue::new(), FakeKernel::default(), model());
        handle_send(&setlink(2, 5, 0, 1, false, false), &mut q, &mut k, &mut m);
        assert!(q.is_empty());
        // But an error is always reported.
        handle_send(&setlink(2, 9, 0, 2, false, false), &mut q, &mut k, &mut m);
        assert_eq!(
            parse_error(&q.recv(4096, 0).unwrap().data).unwrap().errno,
            libc::EBADF
        );
    }

    #[test]
    fn kernel_error_on_rest_wins_and_offsets_map_back() {
        let (mut q, mut k, mut m) = (ReplyQueue::new(), FakeKernel::default(), model());
        k.fail_with = Some(libc::ERANGE);
        let req = setlink(2, 5, 0, 3, true, true);
        handle_send(&req, &mut q, &mut k, &mut m);
        let r = q.recv(4096, 0).unwrap();
        let e = parse_error(&r.data).unwrap();
        assert_eq!(e.errno, libc::ERANGE);
        assert_eq!(e.request.len as usize, req.len());
        assert_eq!(e.request.flags, NLM_F_REQUEST | NLM_F_ACK);
        // offset 32 (the MTU attr) is the same in both, it precedes IFLA_XDP.
        let offs = crate::netlink::msg::attrs(e.tlvs)
            .find(|a| a.ty() == 2)
            .unwrap()
            .u32();
        assert_eq!(offs, Some(32));
        assert!(m.devs[&2].drv.is_none());
    }

    #[test]
    fn plain_messages_continue_and_mixed_batches_keep_order() {
        let get = {
            let p = IfInfoMsg::default().to_bytes();
            let hdr = NlMsgHdr {
                len: 32,
                ty: RTM_GETLINK,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                seq: 1,
                pid: 0,
            };
            let mut v = hdr.to_bytes().to_vec();
            v.extend(p);
            v
        };
        assert!(matches!(classify_send(&get), SendAction::Forward));
        let (mut q, mut k, mut m) = (ReplyQueue::new(), FakeKernel::default(), model());
        let mut batch = get.clone();
        batch.extend(setlink(2, 5, 0, 2, true, false));
        handle_send(&batch, &mut q, &mut k, &mut m);
        let seqs: Vec<u32> = (0..2)
            .map(|_| NlMsgHdr::parse(&q.recv(4096, 0).unwrap().data).unwrap().seq)
            .collect();
        assert_eq!(seqs, [1, 2]);
        // IFLA_XDP without FD, bad flags: the kernel's.
        let mut p = IfInfoMsg {
            index: 2,
            ..Default::default()
        }
        .to_bytes()
        .to_vec();
        let mut nest = Vec::new();
        put_attr(&mut nest, IFLA_XDP_FLAGS, &6u32.to_ne_bytes());
        put_attr(&mut nest, IFLA_XDP_FD, &5i32.to_ne_bytes());
        put_attr(&mut p, IFLA_XDP, &nest);
        let hdr = NlMsgHdr {
            len: (16 + p.len()) as u32,
            ty: RTM_SETLINK,
            flags: NLM_F_REQUEST,
            seq: 1,
            pid: 0,
        };
        let mut v = hdr.to_bytes().to_vec();
        v.extend(p);
        assert!(matches!(classify_send(&v), SendAction::Forward));
    }

    #[test]
    fn newlink_create_does_not_attach() {
        let (mut q, mut k, mut m) = (ReplyQueue::new(), FakeKernel::default(), model());
        let mut req = setlink(0, 5, 0, 4, true, false);
        req[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE).to_ne_bytes());
        // ifindex 0 and no name: a device to create.
        handle_send(&req, &mut q, &mut k, &mut m);
        assert_eq!(
            parse_error(&q.recv(4096, 0).unwrap().data).unwrap().errno,
            0
        );
        assert_eq!(m.devs[&2], DevXdpState::default());
        assert!(k.sent[0].len() < req.len());
    }

    #[test]
    fn classify_random_bytes_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let base = setlink(2, 5, 1, 7, true, true);
        for i in 0..20000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut buf = if i % 2 == 0 {
                let mut b = base.clone();
                for k in 0..3 {
                    let pos = ((seed >> (k * 8)) as usize) % b.len();
                    b[pos] = (seed >> (k * 16 + 3)) as u8;
                }
                b
            } else {
                (0..(seed % 96) as usize)
                    .map(|j| (seed >> (j % 56)) as u8)
                    .collect()
            };
            buf.truncate((seed >> 48) as usize % (buf.len() + 1));
            if let SendAction::Handle(parts) = classify_send(&buf) {
                let (mut q, mut k, mut m) = (ReplyQueue::new(), FakeKernel::default(), model());
                assert!(!parts.is_empty());
                handle_send(&buf, &mut q, &mut k, &mut m);
            }
        }
    }
}
