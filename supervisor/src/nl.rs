//! rtnetlink interception: sendto/sendmsg/recvfrom/recvmsg on the targets'
//! NETLINK_ROUTE sockets, answered with the netlink helper's session code
//! (`crate::netlink`): IFLA_XDP attach/detach go to the data plane, RTM_GETLINK
//! replies show the emulated attachments. Other sockets: CONTINUE (no policy).

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use bpftime_netdev::{AttachSpec, AttachmentId};

use crate::call::{Call, Reply};
use crate::netlink::msg::LinkTarget;
use crate::netlink::{
    self, DevXdpState, DriverXdp, FdSocket, ProgHandle, ReplyQueue, SendOutcome, XdpAttachInfo,
    XdpChange, XdpError, XdpMode,
};
use crate::registry::{Key, Kind, Object};
use crate::sys::pidfd;

/// One target socket: its reply queue and the daemon's duplicates of it.
struct SockState {
    queue: ReplyQueue,
    sock: FdSocket,
    aux: FdSocket,
    /// The socket's network namespace (its requests act there, not in the thread's).
    netns: crate::sys::netns::NetnsRef,
}

/// Emulated XDP state of one device (of one netns).
#[derive(Default)]
pub struct DevState {
    pub xdp: DevXdpState,
    /// Netlink attachments per mode: the data plane's handle and the program held.
    pub atts: HashMap<XdpMode, (AttachmentId, Arc<Object>)>,
}

/// The daemon's netlink state.
#[derive(Default)]
pub struct NlState {
    socks: Mutex<HashMap<Key, Arc<Mutex<SockState>>>>,
    /// Sockets seen that are not NETLINK_ROUTE.
    others: Mutex<HashSet<Key>>,
    /// (netns inode, ifindex) -> state.
    pub devs: Mutex<HashMap<(u64, u32), DevState>>,
}

/// The netns inode of the calling thread.
pub fn netns_ino(call: &Call<'_>) -> Result<u64, i32> {
    nix::sys::stat::stat(&call.proc_path("ns/net"))
        .map(|s| s.st_ino)
        .map_err(|_| libc::ESRCH)
}

fn socket_of(call: &Call<'_>, fd: i32) -> Option<Arc<Mutex<SockState>>> {
    let key = call.fd_key(fd).ok()?;
    let nl = &call.daemon.nl;
    if let Some(s) = nl.socks.lock().unwrap().get(&key) {
        return Some(s.clone());
    }
    if nl.others.lock().unwrap().contains(&key) {
        return None;
    }
    let pfd = pidfd::open_thread(call.tid()).ok()?;
    let dup: OwnedFd = pidfd::getfd(&pfd, fd).ok()?;
    if !call.valid() {
        return None;
    }
    if pidfd::socket_kind(&dup) != Some((libc::AF_NETLINK, libc::NETLINK_ROUTE)) {
        nl.others.lock().unwrap().insert(key);
        return None;
    }
    let aux = dup.try_clone().ok()?;
    let netns = crate::sys::netns::of_socket(&dup).ok()?;
    let mut sock = FdSocket::new(dup);
    sock.timeout_ms = 200;
    let st = Arc::new(Mutex::new(SockState {
        queue: ReplyQueue::default(),
        sock,
        aux: FdSocket::new(aux),
        netns,
    }));
    nl.socks.lock().unwrap().insert(key, st.clone());
    Some(st)
}

/// The XDP side the session code calls back.
struct Backend<'c, 'a> {
    call: &'c Call<'a>,
    aux: &'c FdSocket,
    /// The socket's netns: identity and a path to enter it.
    ns: u64,
    nspath: std::path::PathBuf,
}

impl netlink::XdpBackend for Backend<'_, '_> {
    fn net_admin(&mut self) -> bool {
        // The kernel asks of the socket's opener (file_ns_capable) and of the sender;
        // here the sending thread stands for both (sockets are rarely passed between
        // credentials).
        let Ok(creds) = self.call.creds() else {
            return false;
        };
        std::fs::File::open(&self.nspath)
            .is_ok_and(|ns| creds.capable_over(&ns, crate::call::cap::NET_ADMIN))
    }
    fn resolve_prog_fd(&mut self, fd: i32) -> Result<ProgHandle, i32> {
        let o = self.call.object(fd, Kind::Prog, libc::EINVAL)?;
        let p = &o.as_prog().unwrap().prog;
        Ok(ProgHandle {
            id: o.id,
            prog_type: p.prog_type,
            expected_attach_type: p.expected_attach_type,
        })
    }

    fn resolve_target(&mut self, target: &LinkTarget) -> Option<u32> {
        match target {
            LinkTarget::Index(i) => self.aux.ifname_of(*i).ok().map(|_| *i),
            LinkTarget::Name(n) => self.aux.ifindex_of(n).ok(),
            _ => None,
        }
    }

    fn device(&mut self, ifindex: u32) -> Option<(DevXdpState, DriverXdp)> {
        self.aux.ifname_of(ifindex).ok()?;
        let drv = self.aux.driver_of(ifindex).unwrap_or_default();
        let state = || {
            self.call
                .daemon
                .nl
                .devs
                .lock()
                .unwrap()
                .get(&(self.ns, ifindex))
                .map(|d| d.xdp)
                .unwrap_or_default()
        };
        let mut st = state();
        // A bpf_link whose last fd was closed a moment ago stays on record until the
        // next collection (close() is not intercepted), where the kernel would have
        // released it already: collect before answering EBUSY for it. (Netlink
        // handlers do not hold the GC lock, so this cannot deadlock.)
        if [st.skb, st.drv, st.hw].iter().flatten().any(|s| s.link) {
            self.call.daemon.gc();
            st = state();
        }
        Some((st, DriverXdp::for_driver(&drv)))
    }

    fn commit(&mut self, ifindex: u32, change: &XdpChange) -> Result<(), XdpError> {
        let d = self.call.daemon;
        let mut devs = d.nl.devs.lock().unwrap();
        let dev = devs.entry((self.ns, ifindex)).or_default();
        let old = dev.atts.remove(&change.mode);
        match change.new {
            Some(p) => {
                let obj = d
                    .registry
                    .lock()
                    .unwrap()
                    .by_id(Kind::Prog, p.id)
                    .ok_or(XdpError::bare(libc::EINVAL))?;
                let program = d.dataplane_program(obj.as_prog().unwrap().prog.vm.clone());
                let id = match &old {
                    Some((id, _)) => {
                        d.dataplane
                            .replace(*id, program)
                            .map_err(|e| XdpError::bare(e.errno()))?;
                        *id
                    }
                    None => {
                        let mode = match change.mode {
                            XdpMode::Skb => bpftime_netdev::XdpMode::Skb,
                            XdpMode::Drv => bpftime_netdev::XdpMode::Drv,
                            XdpMode::Hw => return Err(XdpError::bare(libc::EOPNOTSUPP)),
                        };
                        let spec = AttachSpec {
                            netns: Some(self.nspath.clone()),
                            ifindex,
                            mode,
                            program,
                            queues: None,
                            cpu_pinning: false,
                        };
                        d.dataplane
                            .attach(spec)
                            .map_err(|e| XdpError::bare(e.errno()))?
                    }
                };
                d.registry.lock().unwrap().hold(&obj);
                dev.atts.insert(change.mode, (id, obj));
            }
            None => {
                if let Some((id, _)) = &old {
                    let _ = d.dataplane.detach(*id);
                }
            }
        }
        if let Some((_, o)) = old {
            d.registry.lock().unwrap().release(&o);
        }
        dev.xdp.apply(change);
        self.call
            .trace(|| format!("  netlink XDP on ifindex {ifindex}: {change:?}"));
        Ok(())
    }

    fn attachment_of(&mut self, ifindex: u32) -> Option<XdpAttachInfo> {
        let state = || {
            let devs = self.call.daemon.nl.devs.lock().unwrap();
            devs.get(&(self.ns, ifindex)).map(|d| d.xdp)
        };
        let mut st = state();
        // As in `device`: a bpf_link closed a moment ago is gone in the kernel (its
        // release runs before close() returns), so collect before reporting it
        // (cilium/ebpf's link.Close() then a RTM_GETLINK query). The devs lock is not
        // held across the collection, which takes it to detach. The kernel made this
        // reply before that detach, so it may still show our data-plane stub: report
        // what is left (nothing: IFLA_XDP_ATTACHED 0) instead of the kernel's nest.
        if st.is_some_and(|x| [x.skb, x.drv, x.hw].iter().flatten().any(|s| s.link)) {
            self.call.daemon.gc();
            let before = st;
            st = state();
            if st != before {
                return Some(st.unwrap_or_default().attach_info());
            }
        }
        st.filter(|x| x.count() > 0).map(|x| x.attach_info())
    }
}

/// Reads `sockaddr_nl` at `addr`: true when it names the kernel (or is absent).
fn to_kernel(call: &Call<'_>, addr: u64, len: u32) -> Option<bool> {
    if addr == 0 {
        return Some(true);
    }
    if len < 12 {
        return None;
    }
    let b = call.read(addr, 12).ok()?;
    let pid = u32::from_ne_bytes(b[4..8].try_into().unwrap());
    let groups = u32::from_ne_bytes(b[8..12].try_into().unwrap());
    Some(pid == 0 && groups == 0)
}

fn send(call: &Call<'_>, fd: i32, payload: impl FnOnce() -> Option<Vec<u8>>, flags: i32) -> Reply {
    let Some(st) = socket_of(call, fd) else {
        return Reply::Continue;
    };
    if flags & libc::MSG_OOB != 0 {
        return Reply::Continue;
    }
    let Some(buf) = payload() else {
        return Reply::Continue;
    };
    if !matches!(netlink::classify_send(&buf), netlink::SendAction::Handle(_)) {
        return Reply::Continue;
    }
    let mut st = st.lock().unwrap();
    let SockState {
        queue,
        sock,
        aux,
        netns,
    } = &mut *st;
    let (ns, nspath) = (netns.ino, netns.path());
    let mut be = Backend {
        call,
        aux,
        ns,
        nspath,
    };
    match netlink::handle_send(&buf, queue, sock, &mut be) {
        SendOutcome::Continue => Reply::Continue,
        SendOutcome::Return(n) if n >= 0 => Reply::Value(n as i64),
        SendOutcome::Return(n) => Reply::Errno(-n as i32),
    }
}

/// sendto(fd, buf, len, flags, dest_addr, addrlen).
pub fn sendto(call: &Call<'_>) -> Reply {
    let (fd, buf, len, flags) = (
        call.arg(0) as i32,
        call.arg(1),
        call.arg(2) as usize,
        call.arg(3) as i32,
    );
    if to_kernel(call, call.arg(4), call.arg(5) as u32) != Some(true) {
        return Reply::Continue;
    }
    send(call, fd, || call.read(buf, len.min(1 << 20)).ok(), flags)
}

/// (base, len) of each iovec.
type Iovecs = Vec<(u64, usize)>;

/// The iovecs of a msghdr: (msghdr bytes, iovecs).
fn msghdr(call: &Call<'_>, addr: u64) -> Option<(Vec<u8>, Iovecs)> {
    let h = call.read(addr, 56).ok()?;
    let iov = u64::from_ne_bytes(h[16..24].try_into().unwrap());
    let n = u64::from_ne_bytes(h[24..32].try_into().unwrap()) as usize;
    if n > 1024 {
        return None;
    }
    let raw = call.read(iov, n * 16).ok()?;
    let v = raw
        .chunks(16)
        .map(|c| {
            (
                u64::from_ne_bytes(c[..8].try_into().unwrap()),
                u64::from_ne_bytes(c[8..].try_into().unwrap()) as usize,
            )
        })
        .collect();
    Some((h, v))
}

/// sendmsg(fd, msg, flags).
pub fn sendmsg(call: &Call<'_>) -> Reply {
    let (fd, msg, flags) = (call.arg(0) as i32, call.arg(1), call.arg(2) as i32);
    let Some((h, iovs)) = msghdr(call, msg) else {
        return Reply::Continue;
    };
    let name = u64::from_ne_bytes(h[0..8].try_into().unwrap());
    let namelen = u32::from_ne_bytes(h[8..12].try_into().unwrap());
    if to_kernel(call, name, namelen) != Some(true) {
        return Reply::Continue;
    }
    send(
        call,
        fd,
        || {
            let mut buf = Vec::new();
            for (b, l) in iovs {
                buf.extend(call.read(b, l.min(1 << 20)).ok()?);
            }
            Some(buf)
        },
        flags,
    )
}

fn recv(
    call: &Call<'_>,
    fd: i32,
    len: usize,
    flags: i32,
) -> Result<Option<netlink::Received>, i32> {
    let Some(st) = socket_of(call, fd) else {
        return Ok(None);
    };
    let mut st = st.lock().unwrap();
    // The file's O_NONBLOCK, from the target's fdinfo (flags in octal).
    let nonblock = std::fs::read_to_string(call.proc_path(&format!("fdinfo/{fd}")))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("flags:").map(|v| v.trim().to_string()))
        })
        .and_then(|v| i32::from_str_radix(&v, 8).ok())
        .is_some_and(|f| f & libc::O_NONBLOCK != 0);
    let wait = flags & libc::MSG_DONTWAIT == 0 && !nonblock;
    let SockState {
        queue,
        sock,
        aux,
        netns,
    } = &mut *st;
    let (ns, nspath) = (netns.ino, netns.path());
    let mut be = Backend {
        call,
        aux,
        ns,
        nspath,
    };
    match netlink::handle_recv(len, flags, wait, queue, sock, &mut be) {
        Ok(r) => Ok(Some(r)),
        // Nothing queued here and nothing from the kernel within the socket's wait
        // (FdSocket::timeout_ms): not the answer to a request (rtnetlink answers, and
        // queues the next dump part, synchronously), so the target waits for multicast
        // news. Let the kernel block it (CONTINUE: our queue is empty, so the order
        // holds) rather than this target's notification thread, which would stall its
        // other threads' syscalls (a Go agent's link watcher vs its bpf() calls).
        // Such notifications then come unrewritten (a stub would show in RTM_NEWLINK).
        Err(libc::EAGAIN) if wait => {
            if call.valid() {
                Ok(None)
            } else {
                Err(libc::EINTR)
            }
        }
        Err(e) => Err(e),
    }
}

/// recvfrom(fd, buf, len, flags, src_addr, addrlen).
pub fn recvfrom(call: &Call<'_>) -> Reply {
    let (fd, buf, len, flags) = (
        call.arg(0) as i32,
        call.arg(1),
        call.arg(2) as usize,
        call.arg(3) as i32,
    );
    match recv(call, fd, len, flags) {
        Ok(None) => Reply::Continue,
        Err(e) => Reply::Errno(e),
        Ok(Some(r)) => {
            let w = (|| -> Result<(), i32> {
                call.write(buf, &r.data)?;
                let (addr, alen) = (call.arg(4), call.arg(5));
                if addr != 0 && alen != 0 {
                    let have = u32::from_ne_bytes(call.read(alen, 4)?.try_into().unwrap()) as usize;
                    call.write(addr, &r.addr[..have.min(12)])?;
                    call.write(alen, &12u32.to_ne_bytes())?;
                }
                Ok(())
            })();
            match w {
                Ok(()) => Reply::Value(r.ret as i64),
                Err(e) => Reply::Errno(e),
            }
        }
    }
}

/// recvmsg(fd, msg, flags).
pub fn recvmsg(call: &Call<'_>) -> Reply {
    let (fd, msg, flags) = (call.arg(0) as i32, call.arg(1), call.arg(2) as i32);
    let Some((h, iovs)) = msghdr(call, msg) else {
        return Reply::Continue;
    };
    let total: usize = iovs.iter().map(|(_, l)| *l).sum();
    match recv(call, fd, total, flags) {
        Ok(None) => Reply::Continue,
        Err(e) => Reply::Errno(e),
        Ok(Some(r)) => {
            let w = (|| -> Result<(), i32> {
                let mut off = 0;
                for (b, l) in iovs {
                    if off >= r.data.len() {
                        break;
                    }
                    let n = l.min(r.data.len() - off);
                    call.write(b, &r.data[off..off + n])?;
                    off += n;
                }
                let name = u64::from_ne_bytes(h[0..8].try_into().unwrap());
                let namelen = u32::from_ne_bytes(h[8..12].try_into().unwrap()) as usize;
                if name != 0 {
                    call.write(name, &r.addr[..namelen.min(12)])?;
                    call.write(msg + 8, &12u32.to_ne_bytes())?;
                }
                call.write(msg + 40, &0u64.to_ne_bytes())?;
                call.write(msg + 48, &r.msg_flags.to_ne_bytes())?;
                Ok(())
            })();
            match w {
                Ok(()) => Reply::Value(r.ret as i64),
                Err(e) => Reply::Errno(e),
            }
        }
    }
}

/// A bpf_link attached `prog_id` to a device: netlink sees it (EBUSY, GETLINK).
pub fn link_attached(call: &Call<'_>, ns: u64, ifindex: u32, drv: bool, prog_id: u32) {
    let mut devs = call.daemon.nl.devs.lock().unwrap();
    let dev = devs.entry((ns, ifindex)).or_default();
    let slot = if drv {
        &mut dev.xdp.drv
    } else {
        &mut dev.xdp.skb
    };
    *slot = Some(netlink::Slot {
        prog_id,
        link: true,
    });
}

/// The link's attachment went away.
pub fn link_detached(nl: &NlState, ns: u64, ifindex: u32, drv: bool) {
    if let Some(dev) = nl.devs.lock().unwrap().get_mut(&(ns, ifindex)) {
        let slot = if drv {
            &mut dev.xdp.drv
        } else {
            &mut dev.xdp.skb
        };
        *slot = None;
    }
}
