//! Kernel oracle for the rtnetlink XDP emulation (supervisor/src/netlink): every attach /
//! replace / detach case is sent to the real kernel on a veth in a private network
//! namespace, and the same request goes through the emulation (the non-XDP remainder to
//! the kernel on a second socket, the XDP part to a model of the device); the replies must
//! be byte-identical (port id aside), and RTM_GETLINK rewritten from the model must show
//! the same IFLA_XDP nest as the kernel shows for its own attachment.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use bpftime_supervisor::netlink::getlink::find_xdp_nest;
use bpftime_supervisor::netlink::msg::{
    messages, parse_link_request, parse_xdp_nest, put_attr, IfInfoMsg, NlMsgHdr, IFLA_XDP,
    IFLA_XDP_EXPECTED_FD, IFLA_XDP_FD, IFLA_XDP_FLAGS, NLA_F_NESTED, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, RTM_GETLINK, RTM_NEWLINK, RTM_SETLINK,
};
use bpftime_supervisor::netlink::reply::parse_error;
use bpftime_supervisor::netlink::session::{
    handle_recv, handle_send, KernelSocket, SendOutcome, XdpBackend,
};
use bpftime_supervisor::netlink::sock::{FdSocket, NETLINK_CAP_ACK, NETLINK_EXT_ACK};
use bpftime_supervisor::netlink::xdp::{
    decide, driver_extack, DevXdpState, DriverXdp, ProgHandle, Slot, XdpAttachInfo, XdpChange,
    XdpError, XdpMode, BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP,
};
use bpftime_supervisor::netlink::ReplyQueue;
use bpftime_tests::privilege::{require, Need};

// ---------------------------------------------------------------- fixtures

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A uniquely named network namespace, deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> Self {
        let name = format!(
            "bpftime-nl-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        NetNs { name }
    }

    /// Runs `f` on a thread that entered this namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("open netns");
            // SAFETY: ns is an open netns fd; setns affects only this thread.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    }

    fn socket(&self, cap_ack: bool) -> FdSocket {
        let s = self.run(move || {
            let s = FdSocket::open_route().expect("netlink socket");
            s.set_flag(NETLINK_EXT_ACK, true).unwrap();
            s.set_flag(NETLINK_CAP_ACK, cap_ack).unwrap();
            s
        });
        let mut s = s;
        s.portid().unwrap();
        s
    }

    fn veth(&self) -> (String, u32) {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (format!("nla{n}"), format!("nlb{n}"));
        ip(&[
            "-n", &self.name, "link", "add", &a, "type", "veth", "peer", "name", &b,
        ]);
        let an = a.clone();
        let idx = self.run(move || {
            let c = std::ffi::CString::new(an).unwrap();
            // SAFETY: c is a valid NUL-terminated string.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        });
        assert_ne!(idx, 0);
        (a, idx)
    }

    /// A bridge device (no ndo_bpf: generic XDP only): its name and ifindex.
    fn bridge(&self) -> (String, u32) {
        let n = format!("nld{}", COUNTER.fetch_add(1, Ordering::Relaxed));
        ip(&["-n", &self.name, "link", "add", &n, "type", "bridge"]);
        let n2 = n.clone();
        let idx = self.run(move || {
            let c = std::ffi::CString::new(n2).unwrap();
            // SAFETY: c is a valid NUL-terminated string.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        });
        assert_ne!(idx, 0);
        (n, idx)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn bpf(cmd: i32, attr: &mut [u8]) -> i64 {
    bpftime_tests::sysbpf::raw(cmd as u32, attr)
}

/// Loads `r0 = XDP_PASS; exit` as `prog_type`.
fn load_prog(prog_type: u32, expected_attach_type: u32) -> OwnedFd {
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = b"GPL\0";
    let mut attr = [0u8; 144];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[68..72].copy_from_slice(&expected_attach_type.to_ne_bytes());
    let fd = bpf(5, &mut attr);
    assert!(fd >= 0, "PROG_LOAD: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just returned by bpf() and is owned here.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn prog_info(fd: RawFd) -> Option<(u32, u32)> {
    let mut info = [0u8; 232];
    let mut attr = [0u8; 16];
    attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&232u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    if bpf(15, &mut attr) < 0 {
        return None;
    }
    let ty = u32::from_ne_bytes(info[0..4].try_into().unwrap());
    let id = u32::from_ne_bytes(info[4..8].try_into().unwrap());
    Some((ty, id))
}

fn link_create(ns: &NetNs, prog: RawFd, ifindex: u32, flags: u32) -> OwnedFd {
    let fd = ns.run(move || {
        let mut attr = [0u8; 64];
        attr[0..4].copy_from_slice(&(prog as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        attr[8..12].copy_from_slice(&37u32.to_ne_bytes());
        attr[12..16].copy_from_slice(&flags.to_ne_bytes());
        bpf(28, &mut attr)
    });
    assert!(fd >= 0, "LINK_CREATE: {}", std::io::Error::last_os_error());
    // SAFETY: fd was returned by bpf() (fds are per process) and is owned here.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

// ---------------------------------------------------------------- the model backend

/// The daemon's side for the test: fds resolved with the real bpf(), one modelled device.
struct Model {
    ifindex: u32,
    /// The device's name, for requests naming it with IFLA_IFNAME.
    name: Vec<u8>,
    /// Resolve any other name in the namespace through this socket (as the supervisor).
    names_via: Option<FdSocket>,
    dev: DevXdpState,
    driver: DriverXdp,
    attach_types: HashMap<u32, u32>,
}

impl Model {
    fn new(ifindex: u32, driver: DriverXdp) -> Self {
        Model {
            ifindex,
            name: Vec::new(),
            names_via: None,
            driver,
            dev: DevXdpState::default(),
            attach_types: HashMap::new(),
        }
    }
}

impl XdpBackend for Model {
    fn net_admin(&mut self) -> bool {
        true
    }
    fn resolve_prog_fd(&mut self, fd: i32) -> Result<ProgHandle, i32> {
        // SAFETY: F_GETFD on any integer is harmless.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(libc::EBADF);
        }
        let (prog_type, id) = prog_info(fd).ok_or(libc::EINVAL)?;
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
        if !link.to_string_lossy().contains("bpf-prog") {
            return Err(libc::EINVAL);
        }
        let expected_attach_type = self.attach_types.get(&id).copied().unwrap_or(0);
        Ok(ProgHandle {
            id,
            prog_type,
            expected_attach_type,
        })
    }
    fn resolve_target(&mut self, t: &bpftime_supervisor::netlink::msg::LinkTarget) -> Option<u32> {
        match t {
            bpftime_supervisor::netlink::msg::LinkTarget::Index(i) if *i == self.ifindex => {
                Some(*i)
            }
            bpftime_supervisor::netlink::msg::LinkTarget::Name(n) if *n == self.name => {
                Some(self.ifindex)
            }
            bpftime_supervisor::netlink::msg::LinkTarget::Name(n) => {
                self.names_via.as_ref()?.ifindex_of(n).ok()
            }
            _ => None,
        }
    }
    fn device(&mut self, i: u32) -> Option<(DevXdpState, DriverXdp)> {
        (i == self.ifindex).then_some((self.dev, self.driver))
    }
    fn commit(&mut self, _i: u32, c: &XdpChange) -> Result<(), XdpError> {
        self.dev.apply(c);
        Ok(())
    }
    fn attachment_of(&mut self, i: u32) -> Option<XdpAttachInfo> {
        (i == self.ifindex).then_some(self.dev.attach_info())
    }
}

// ---------------------------------------------------------------- requests

#[derive(Clone, Copy, Debug)]
enum Fd {
    P1,
    P2,
    Sock,
    Devmap,
    NotProg,
    Closed,
    Detach,
}

struct Fds {
    p1: OwnedFd,
    p2: OwnedFd,
    sock: OwnedFd,
    devmap: OwnedFd,
    null: File,
}

impl Fds {
    fn raw(&self, f: Fd) -> i32 {
        match f {
            Fd::P1 => self.p1.as_raw_fd(),
            Fd::P2 => self.p2.as_raw_fd(),
            Fd::Sock => self.sock.as_raw_fd(),
            Fd::Devmap => self.devmap.as_raw_fd(),
            Fd::NotProg => self.null.as_raw_fd(),
            Fd::Closed => 9999,
            Fd::Detach => -1,
        }
    }
}

const N: u32 = 1;
const S: u32 = 2;
const D: u32 = 4;
const H: u32 = 8;
const R: u32 = 16;

#[derive(Clone, Copy, Debug)]
struct Req {
    fd: Fd,
    flags: u32,
    expected: Option<Fd>,
    /// IFLA_XDP with NLA_F_NESTED (libbpf) or without (iproute2).
    nested: bool,
    /// IFLA_MTU placed after IFLA_XDP (a mixed message).
    mtu: Option<u32>,
    /// An IFLA_MTU of 2 bytes after IFLA_XDP: the top-level policy refuses it, with the
    /// offending attribute's offset in the extack.
    short_mtu: bool,
    /// The IFLA_XDP payload as raw bytes (garbage cases) instead of fd/flags/expected.
    raw_nest: Option<&'static [u8]>,
    /// RTM_NEWLINK (iproute2's `ip link set`) instead of RTM_SETLINK.
    newlink: bool,
    /// Name the device with IFLA_IFNAME (ifi_index 0) instead of its ifindex.
    by_name: bool,
}

const fn rq(fd: Fd, flags: u32) -> Req {
    Req {
        fd,
        flags,
        expected: None,
        nested: true,
        mtu: None,
        short_mtu: false,
        raw_nest: None,
        newlink: false,
        by_name: false,
    }
}

/// As iproute2 sends it: RTM_NEWLINK, IFLA_XDP without NLA_F_NESTED.
const fn ip2(fd: Fd, flags: u32) -> Req {
    Req {
        newlink: true,
        nested: false,
        ..rq(fd, flags)
    }
}

const fn raw(nest: &'static [u8]) -> Req {
    Req {
        raw_nest: Some(nest),
        ..rq(Fd::Detach, 0)
    }
}

const fn rx(fd: Fd, flags: u32, expected: Fd) -> Req {
    Req {
        expected: Some(expected),
        nested: false,
        ..rq(fd, flags)
    }
}

fn encode(req: &Req, fds: &Fds, ifindex: u32, seq: u32) -> Vec<u8> {
    encode_for(req, fds, ifindex, "", seq)
}

/// `encode` for a device also known by `name` (used when `req.by_name`).
fn encode_for(req: &Req, fds: &Fds, ifindex: u32, name: &str, seq: u32) -> Vec<u8> {
    let mut p = IfInfoMsg {
        index: if req.by_name { 0 } else { ifindex as i32 },
        ..Default::default()
    }
    .to_bytes()
    .to_vec();
    if req.by_name {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        put_attr(&mut p, 3 /* IFLA_IFNAME */, &n);
    }
    let mut nest = Vec::new();
    put_attr(&mut nest, IFLA_XDP_FD, &fds.raw(req.fd).to_ne_bytes());
    if req.flags != 0 {
        put_attr(&mut nest, IFLA_XDP_FLAGS, &req.flags.to_ne_bytes());
    }
    if let Some(e) = req.expected {
        put_attr(&mut nest, IFLA_XDP_EXPECTED_FD, &fds.raw(e).to_ne_bytes());
    }
    if let Some(r) = req.raw_nest {
        nest = r.to_vec();
    }
    put_attr(
        &mut p,
        IFLA_XDP | if req.nested { NLA_F_NESTED } else { 0 },
        &nest,
    );
    if let Some(mtu) = req.mtu {
        put_attr(&mut p, 4, &mtu.to_ne_bytes());
    }
    if req.short_mtu {
        put_attr(&mut p, 4, &[0xdc, 0x05]);
    }
    let hdr = NlMsgHdr {
        len: (16 + p.len()) as u32,
        ty: if req.newlink {
            RTM_NEWLINK
        } else {
            RTM_SETLINK
        },
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq,
        pid: 0,
    };
    let mut v = hdr.to_bytes().to_vec();
    v.extend(p);
    v
}

fn getlink(ifindex: u32, seq: u32, dump: bool) -> Vec<u8> {
    let p = IfInfoMsg {
        index: if dump { 0 } else { ifindex as i32 },
        ..Default::default()
    }
    .to_bytes();
    let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
    let hdr = NlMsgHdr {
        len: 32,
        ty: RTM_GETLINK,
        flags,
        seq,
        pid: 0,
    };
    let mut v = hdr.to_bytes().to_vec();
    v.extend(p);
    v
}

/// Native: send to the kernel, return the NLMSG_ERROR bytes.
fn native(sock: &mut FdSocket, msg: &[u8]) -> Vec<u8> {
    sock.send(msg).unwrap();
    let d = sock.recv(true).unwrap().expect("kernel reply");
    d.data
}

/// Emulated: through handle_send (or straight to the kernel when it says Continue).
fn emulated(sock: &mut FdSocket, q: &mut ReplyQueue, m: &mut Model, msg: &[u8]) -> Vec<u8> {
    match handle_send(msg, q, sock, m) {
        SendOutcome::Continue => sock.send(msg).unwrap(),
        SendOutcome::Return(n) => assert_eq!(n, msg.len() as isize),
    }
    handle_recv(1 << 16, 0, true, q, sock, m)
        .expect("emulated reply")
        .data
}

/// Reads every datagram of a GETLINK exchange until its reply (or DONE) and returns the
/// IFLA_XDP nest of `ifindex`'s message.
fn xdp_nest_of(recv: &mut dyn FnMut() -> Vec<u8>, ifindex: u32, dump: bool) -> Vec<u8> {
    let mut found = None;
    loop {
        let d = recv();
        let mut done = !dump;
        for m in messages(&d) {
            if m.hdr.ty == NLMSG_DONE || m.hdr.ty == NLMSG_ERROR {
                done = true;
            }
            if let Some(ifi) = IfInfoMsg::parse(m.payload()) {
                if m.hdr.ty == 16 && ifi.index == ifindex as i32 {
                    found = find_xdp_nest(m.bytes).map(<[u8]>::to_vec);
                }
            }
        }
        if done {
            return found.expect("link message of the device");
        }
    }
}

/// errno and extack of the pure functions for request `m` on state `dev`.
fn pure_answer(m: &[u8], dev: &DevXdpState, model: &mut Model) -> (i32, Option<String>) {
    let msg = messages(m).next().unwrap();
    let req = parse_link_request(&msg).unwrap();
    let nest = match parse_xdp_nest(req.xdp.unwrap()) {
        Ok(n) => n,
        Err(e) => return (e, None),
    };
    let driver = model.driver;
    let order = bpftime_supervisor::netlink::probe::native_check();
    match decide(&nest, dev, driver, order, &mut |fd| {
        model.resolve_prog_fd(fd)
    }) {
        Ok(_) => (0, None),
        Err(e) => (e.errno, e.msg.map(str::to_string)),
    }
}

fn normalize_pid(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 16 {
        b[12..16].fill(0);
    }
    b
}

fn describe(b: &[u8]) -> String {
    match parse_error(b) {
        Some(e) => format!("errno {} {:?}", e.errno, e.message()),
        None => format!("{b:?}"),
    }
}

enum Setup {
    Attach(Req),
    Link(Fd, u32),
}

struct Case {
    name: &'static str,
    setup: &'static [Setup],
    req: Req,
    /// On a bridge (no ndo_bpf) instead of a veth.
    generic_only: bool,
}

const fn case(name: &'static str, setup: &'static [Setup], req: Req) -> Case {
    Case {
        name,
        setup,
        req,
        generic_only: false,
    }
}

const fn generic_only(name: &'static str, setup: &'static [Setup], req: Req) -> Case {
    Case {
        generic_only: true,
        ..case(name, setup, req)
    }
}

const DRV1: &[Setup] = &[Setup::Attach(rq(Fd::P1, D))];
const SKB1: &[Setup] = &[Setup::Attach(rq(Fd::P1, S))];
const LINK_DRV1: &[Setup] = &[Setup::Link(Fd::P1, D)];
const LINK_SKB1: &[Setup] = &[Setup::Link(Fd::P1, S)];

fn cases() -> Vec<Case> {
    vec![
        case("attach default mode (veth: DRV)", &[], rq(Fd::P1, 0)),
        case("attach SKB", &[], rq(Fd::P1, S)),
        case("attach DRV", &[], rq(Fd::P1, D)),
        case("attach HW on veth", &[], rq(Fd::P1, H)),
        case("attach NOEXIST on empty", &[], rq(Fd::P1, N)),
        case(
            "attach NOEXIST|SKB on empty (iproute2 xdpgeneric)",
            &[],
            Req {
                nested: false,
                ..rq(Fd::P1, N | S)
            },
        ),
        case("two mode bits", &[], rq(Fd::P1, S | D)),
        case("unknown flag", &[], rq(Fd::P1, 32)),
        case("detach on empty", &[], rq(Fd::Detach, 0)),
        case("detach SKB on empty", &[], rq(Fd::Detach, S)),
        case("detach HW on empty", &[], rq(Fd::Detach, H)),
        case("socket filter prog", &[], rq(Fd::Sock, 0)),
        case("closed fd", &[], rq(Fd::Closed, 0)),
        case("fd not a prog", &[], rq(Fd::NotProg, 0)),
        case("devmap prog", &[], rq(Fd::Devmap, 0)),
        case("REPLACE without EXPECTED_FD", &[], rq(Fd::P1, R)),
        case(
            "REPLACE expected -1 on empty",
            &[],
            rx(Fd::P1, R, Fd::Detach),
        ),
        case("REPLACE expected P1 on empty", &[], rx(Fd::P1, R, Fd::P1)),
        case(
            "EXPECTED_FD without REPLACE is ignored",
            DRV1,
            rx(Fd::P2, 0, Fd::P2),
        ),
        case("NOEXIST, other prog attached", DRV1, rq(Fd::P2, N)),
        case("NOEXIST, same prog attached", DRV1, rq(Fd::P1, N)),
        case("replace without flags", DRV1, rq(Fd::P2, 0)),
        case("same prog again", DRV1, rq(Fd::P1, 0)),
        case("SKB while DRV attached", DRV1, rq(Fd::P2, S)),
        case("REPLACE expected current", DRV1, rx(Fd::P2, R, Fd::P1)),
        case("REPLACE expected other", DRV1, rx(Fd::P2, R, Fd::P2)),
        case(
            "REPLACE expected -1 while attached",
            DRV1,
            rx(Fd::P2, R, Fd::Detach),
        ),
        case(
            "REPLACE expected closed fd",
            DRV1,
            rx(Fd::P2, R, Fd::Closed),
        ),
        case(
            "REPLACE expected socket filter",
            DRV1,
            rx(Fd::P2, R, Fd::Sock),
        ),
        case(
            "REPLACE|DRV expected current",
            DRV1,
            rx(Fd::P2, R | D, Fd::P1),
        ),
        case("detach", DRV1, rq(Fd::Detach, 0)),
        case("detach NOEXIST", DRV1, rq(Fd::Detach, N)),
        case("detach SKB while DRV attached", DRV1, rq(Fd::Detach, S)),
        case(
            "detach REPLACE expected current",
            DRV1,
            rx(Fd::Detach, R, Fd::P1),
        ),
        case(
            "detach REPLACE expected other",
            DRV1,
            rx(Fd::Detach, R, Fd::P2),
        ),
        case("HW while DRV attached", DRV1, rq(Fd::P2, H)),
        case("default mode while SKB attached", SKB1, rq(Fd::P2, 0)),
        case("SKB replace", SKB1, rq(Fd::P2, S)),
        case(
            "detach default mode while SKB attached",
            SKB1,
            rq(Fd::Detach, 0),
        ),
        case("detach SKB", SKB1, rq(Fd::Detach, S)),
        case("DRV link: attach", LINK_DRV1, rq(Fd::P2, 0)),
        case("DRV link: detach", LINK_DRV1, rq(Fd::Detach, 0)),
        case("DRV link: SKB attach", LINK_DRV1, rq(Fd::P2, S)),
        case("DRV link: SKB detach", LINK_DRV1, rq(Fd::Detach, S)),
        case(
            "DRV link: REPLACE expected current",
            LINK_DRV1,
            rx(Fd::P2, R, Fd::P1),
        ),
        case("DRV link: NOEXIST", LINK_DRV1, rq(Fd::P2, N)),
        case("SKB link: SKB attach", LINK_SKB1, rq(Fd::P2, S)),
        case("SKB link: default attach", LINK_SKB1, rq(Fd::P2, 0)),
        case(
            "mixed: MTU ok + attach",
            &[],
            Req {
                mtu: Some(1400),
                ..rq(Fd::P1, 0)
            },
        ),
        case(
            "mixed: MTU too big + attach",
            &[],
            Req {
                mtu: Some(1 << 20),
                ..rq(Fd::P1, 0)
            },
        ),
        case(
            "mixed: MTU ok + NOEXIST busy",
            DRV1,
            Req {
                mtu: Some(1300),
                ..rq(Fd::P2, N)
            },
        ),
        case(
            "mixed: MTU of 2 bytes (policy, extack offset)",
            &[],
            Req {
                short_mtu: true,
                ..rq(Fd::P1, 0)
            },
        ),
        case("nest: empty", &[], raw(&[])),
        case(
            "nest: FD of 2 bytes",
            &[],
            raw(&[6, 0, 1, 0, 0xff, 0xff, 0, 0]),
        ),
        case(
            "nest: FD of 8 bytes (detach)",
            &[],
            raw(&[12, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]),
        ),
        case(
            "nest: FLAGS only, no FD",
            &[],
            raw(&[8, 0, 3, 0, 2, 0, 0, 0]),
        ),
        case(
            "nest: ATTACHED in a request",
            &[],
            raw(&[5, 0, 2, 0, 0, 0, 0, 0, 8, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]),
        ),
        case(
            "nest: PROG_ID in a request",
            &[],
            raw(&[8, 0, 4, 0, 1, 0, 0, 0, 8, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]),
        ),
        case(
            "nest: EXPECTED_FD of 8 bytes",
            &[],
            raw(&[12, 0, 8, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        ),
        case(
            "nest: unknown attribute 99 + detach",
            &[],
            raw(&[8, 0, 99, 0, 1, 0, 0, 0, 8, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]),
        ),
        case("nest: 3 garbage bytes", &[], raw(&[1, 2, 3])),
        case(
            "nest: truncated attribute",
            &[],
            raw(&[8, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 40, 0, 3, 0]),
        ),
        case(
            "iproute2: xdpgeneric (RTM_NEWLINK, NOEXIST|SKB)",
            &[],
            ip2(Fd::P1, N | S),
        ),
        case(
            "iproute2: xdp while DRV attached (NOEXIST)",
            DRV1,
            ip2(Fd::P2, N),
        ),
        case("iproute2: xdp -force replaces", DRV1, ip2(Fd::P2, 0)),
        case("iproute2: xdp off", DRV1, ip2(Fd::Detach, 0)),
        case(
            "iproute2: xdpdrv off while SKB attached",
            SKB1,
            ip2(Fd::Detach, D),
        ),
        case(
            "by IFLA_IFNAME: attach",
            &[],
            Req {
                by_name: true,
                ..rq(Fd::P1, 0)
            },
        ),
        case(
            "by IFLA_IFNAME: NOEXIST busy",
            DRV1,
            Req {
                by_name: true,
                ..ip2(Fd::P2, N)
            },
        ),
        case(
            "by IFLA_IFNAME: detach",
            DRV1,
            Req {
                by_name: true,
                ..rq(Fd::Detach, 0)
            },
        ),
        case(
            "REPLACE by IFLA_IFNAME + MTU",
            DRV1,
            Req {
                by_name: true,
                mtu: Some(1280),
                ..rx(Fd::P2, R, Fd::P1)
            },
        ),
        generic_only("bridge: attach default mode (SKB)", &[], rq(Fd::P1, 0)),
        generic_only("bridge: attach DRV", &[], rq(Fd::P1, D)),
        generic_only("bridge: attach HW", &[], rq(Fd::P1, H)),
        generic_only("bridge: detach DRV on empty", &[], rq(Fd::Detach, D)),
        generic_only("bridge: replace SKB with default mode", SKB1, rq(Fd::P2, 0)),
        generic_only("bridge: NOEXIST with SKB attached", SKB1, rq(Fd::P2, N)),
        generic_only("bridge: DRV with SKB attached", SKB1, rq(Fd::P2, D)),
        // Where kernel builds differ (netlink::probe): the missing ndo_bpf against the
        // checks of the new program, and against REPLACE.
        generic_only(
            "bridge: DRV NOEXIST with SKB attached",
            SKB1,
            rq(Fd::P2, D | N),
        ),
        generic_only("bridge: DRV devmap prog", &[], rq(Fd::Devmap, D)),
        generic_only(
            "bridge: DRV devmap prog with SKB attached",
            SKB1,
            rq(Fd::Devmap, D),
        ),
        generic_only("bridge: HW with SKB attached", SKB1, rq(Fd::P2, H)),
        generic_only(
            "bridge: DRV REPLACE mismatch with SKB attached",
            SKB1,
            rx(Fd::P2, D | R, Fd::P1),
        ),
        generic_only(
            "bridge: DRV detach with SKB attached",
            SKB1,
            rq(Fd::Detach, D),
        ),
    ]
}

#[test]
fn xdp_attach_errno_table_matches_kernel() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf]) {
        return;
    }
    let ns = NetNs::new();
    let fds = Fds {
        p1: load_prog(BPF_PROG_TYPE_XDP, 37),
        p2: load_prog(BPF_PROG_TYPE_XDP, 37),
        sock: load_prog(1, 0),
        devmap: load_prog(BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP),
        null: File::open("/dev/null").unwrap(),
    };
    let devmap_id = prog_info(fds.devmap.as_raw_fd()).unwrap().1;
    let mut table = Vec::new();
    let mut mismatches = Vec::new();
    for cap_ack in [false, true] {
        let mut ksock = ns.socket(cap_ack);
        let mut esock = ns.socket(cap_ack);
        for (i, c) in cases().iter().enumerate() {
            if cap_ack && i % 4 != 0 {
                continue;
            }
            let (devname, ifindex) = if c.generic_only {
                ns.bridge()
            } else {
                ns.veth()
            };
            // The driver as the supervisor would learn it, through the target's socket.
            let driver = DriverXdp::for_driver(&esock.driver_of(ifindex).unwrap());
            assert_eq!(
                driver,
                if c.generic_only {
                    DriverXdp::GENERIC_ONLY
                } else {
                    DriverXdp::VETH
                }
            );
            let mut model = Model::new(ifindex, driver);
            model.name = devname.as_bytes().to_vec();
            model.attach_types.insert(devmap_id, BPF_XDP_DEVMAP);
            let mut q = ReplyQueue::new();
            let mut links = Vec::new();
            let mut seq = 100;
            for s in c.setup {
                seq += 1;
                match s {
                    Setup::Attach(r) => {
                        let m = encode_for(r, &fds, ifindex, &devname, seq);
                        let k = native(&mut ksock, &m);
                        assert_eq!(
                            parse_error(&k).unwrap().errno,
                            0,
                            "{}: setup: {}",
                            c.name,
                            describe(&k)
                        );
                        let e = emulated(&mut esock, &mut q, &mut model, &m);
                        assert_eq!(
                            parse_error(&e).unwrap().errno,
                            0,
                            "{}: emulated setup",
                            c.name
                        );
                    }
                    Setup::Link(f, flags) => {
                        links.push(link_create(&ns, fds.raw(*f), ifindex, *flags));
                        let id = prog_info(fds.raw(*f)).unwrap().1;
                        let mode = if flags & S != 0 {
                            XdpMode::Skb
                        } else {
                            XdpMode::Drv
                        };
                        *model.dev.get_mut(mode) = Some(Slot {
                            prog_id: id,
                            link: true,
                        });
                    }
                }
            }
            seq += 1;
            let m = encode_for(&c.req, &fds, ifindex, &devname, seq);
            let model_before = model.dev;
            let k = native(&mut ksock, &m);
            let e = emulated(&mut esock, &mut q, &mut model, &m);
            assert!(q.is_empty(), "{}: extra replies queued", c.name);
            // The pure state machine (do_setlink's nest checks + dev_change_xdp_fd) on its own.
            let pure = pure_answer(&m, &model_before, &mut model);
            let kp = parse_error(&k).unwrap();
            // (Other attributes and the top-level policy are the kernel's business.)
            let top_level_policy =
                matches!(c.req.raw_nest, Some(n) if !n.is_empty() && n.len() < 4);
            let pure_applies = c.req.mtu.is_none() && !c.req.short_mtu && !top_level_policy;
            if pure_applies && (kp.errno, kp.message()) != pure {
                mismatches.push(format!(
                    "{}: pure model {pure:?}, kernel {} {:?}",
                    c.name,
                    kp.errno,
                    kp.message()
                ));
            }
            table.push(format!(
                "{:<52} kernel: {:<60} bpftime: {}",
                c.name,
                describe(&k),
                describe(&e)
            ));
            if normalize_pid(k.clone()) != normalize_pid(e.clone()) {
                mismatches.push(format!(
                    "{} (cap_ack {cap_ack}):\n  kernel  {k:?}\n  bpftime {e:?}",
                    c.name
                ));
            }
            // What queries show: the kernel's nest for its own attachment vs our rewrite
            // (which hides whatever the kernel has on the device, here the native program).
            for dump in [false, true] {
                seq += 1;
                let g = getlink(ifindex, seq, dump);
                ksock.send(&g).unwrap();
                let kn = xdp_nest_of(
                    &mut || ksock.recv(true).unwrap().expect("getlink reply").data,
                    ifindex,
                    dump,
                );
                esock.send(&g).unwrap();
                let en = xdp_nest_of(
                    &mut || {
                        handle_recv(1 << 16, 0, true, &mut q, &mut esock, &mut model)
                            .expect("reply")
                            .data
                    },
                    ifindex,
                    dump,
                );
                if kn != en {
                    mismatches.push(format!(
                        "{} GETLINK dump={dump}: kernel {kn:?} bpftime {en:?}",
                        c.name
                    ));
                }
            }
            drop(links);
        }
    }
    println!("{}", table.join("\n"));
    assert!(
        mismatches.is_empty(),
        "differences from the kernel:\n{}",
        mismatches.join("\n")
    );
}

fn attr_types(msg: &[u8]) -> Vec<u16> {
    bpftime_supervisor::netlink::msg::attrs(&msg[32..])
        .map(|a| a.ty())
        .collect()
}

/// The kernel stub of the data plane must not show: a device where the kernel runs one
/// program (the "stub") but bpftime runs another reports bpftime's, exactly as the kernel
/// reports that program attached natively in that mode on another device.
#[test]
fn getlink_rewrite_hides_the_kernel_stub() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf]) {
        return;
    }
    let ns = NetNs::new();
    let fds = Fds {
        p1: load_prog(BPF_PROG_TYPE_XDP, 37),
        p2: load_prog(BPF_PROG_TYPE_XDP, 37),
        sock: load_prog(1, 0),
        devmap: load_prog(BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP),
        null: File::open("/dev/null").unwrap(),
    };
    let p1 = prog_info(fds.p1.as_raw_fd()).unwrap().1;
    let mut sock = ns.socket(false);
    let (_, stubbed) = ns.veth();
    let (_, native_dev) = ns.veth();
    let (_, plain) = ns.veth();
    // The stub (P2) in DRV mode on `stubbed`; P1 natively in SKB mode on `native_dev`.
    let e = native(&mut sock, &encode(&rq(Fd::P2, D), &fds, stubbed, 1));
    assert_eq!(parse_error(&e).unwrap().errno, 0);
    let e = native(&mut sock, &encode(&rq(Fd::P1, S), &fds, native_dev, 2));
    assert_eq!(parse_error(&e).unwrap().errno, 0);
    let ours = XdpAttachInfo {
        skb: Some(p1),
        ..Default::default()
    };
    for (seq, dump) in [(3, false), (4, true)] {
        // The kernel's view of all three devices.
        let mut kernel_msgs: HashMap<i32, Vec<u8>> = HashMap::new();
        let mut rewritten: HashMap<i32, Vec<u8>> = HashMap::new();
        let devs: Vec<u32> = if dump {
            vec![0]
        } else {
            vec![stubbed, native_dev, plain]
        };
        for (k, dev) in devs.iter().enumerate() {
            sock.send(&getlink(*dev, seq * 10 + k as u32, dump))
                .unwrap();
            loop {
                let d = sock.recv(true).unwrap().expect("reply").data;
                let mut r = d.clone();
                let mut lookup = |i: u32| (i == stubbed).then_some(ours);
                bpftime_supervisor::netlink::rewrite_getlink(&mut r, &mut lookup);
                let mut done = !dump;
                for (orig, new) in messages(&d).zip(messages(&r)) {
                    if orig.hdr.ty == NLMSG_DONE {
                        done = true;
                    }
                    if orig.hdr.ty == 16 {
                        let i = IfInfoMsg::parse(orig.payload()).unwrap().index;
                        kernel_msgs.insert(i, orig.bytes.to_vec());
                        rewritten.insert(i, new.bytes.to_vec());
                    }
                }
                if done {
                    break;
                }
            }
        }
        let nest = |m: &Vec<u8>| find_xdp_nest(m).unwrap().to_vec();
        let s = stubbed as i32;
        // Ours, as the kernel reports P1 in SKB mode.
        assert_eq!(
            nest(&rewritten[&s]),
            nest(&kernel_msgs[&(native_dev as i32)]),
            "dump={dump}"
        );
        assert_ne!(
            nest(&kernel_msgs[&s]),
            nest(&rewritten[&s]),
            "the stub shows"
        );
        // Nothing else in the message moved.
        assert_eq!(attr_types(&rewritten[&s]), attr_types(&kernel_msgs[&s]));
        assert_eq!(
            rewritten[&s].len(),
            kernel_msgs[&s].len() - 12 + 12,
            "same nest size (one prog)"
        );
        // Devices bpftime does not run are untouched.
        assert_eq!(
            rewritten[&(native_dev as i32)],
            kernel_msgs[&(native_dev as i32)]
        );
        assert_eq!(rewritten[&(plain as i32)], kernel_msgs[&(plain as i32)]);
        // The kernel's nest with nothing attached is ATTACHED=0 only; ours for "nothing" too.
        let none = bpftime_supervisor::netlink::encode_xdp_nest(&XdpAttachInfo::default());
        assert_eq!(nest(&kernel_msgs[&(plain as i32)]), none[4..].to_vec());
    }
}

/// Several messages in one send, XDP and not, with and without NLM_F_ACK: the emulation
/// produces the kernel's replies in the kernel's order.
#[test]
fn batched_messages_reply_in_kernel_order() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf]) {
        return;
    }
    let ns = NetNs::new();
    let fds = Fds {
        p1: load_prog(BPF_PROG_TYPE_XDP, 37),
        p2: load_prog(BPF_PROG_TYPE_XDP, 37),
        sock: load_prog(1, 0),
        devmap: load_prog(BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP),
        null: File::open("/dev/null").unwrap(),
    };
    let mtu_only = |ifindex: u32, mtu: u32, seq: u32, ack: bool| {
        let mut p = IfInfoMsg {
            index: ifindex as i32,
            ..Default::default()
        }
        .to_bytes()
        .to_vec();
        put_attr(&mut p, 4, &mtu.to_ne_bytes());
        let flags = NLM_F_REQUEST | if ack { NLM_F_ACK } else { 0 };
        let hdr = NlMsgHdr {
            len: (16 + p.len()) as u32,
            ty: RTM_SETLINK,
            flags,
            seq,
            pid: 0,
        };
        let mut v = hdr.to_bytes().to_vec();
        v.extend(p);
        v
    };
    let no_ack = |mut m: Vec<u8>| {
        let f = u16::from_ne_bytes([m[6], m[7]]) & !NLM_F_ACK;
        m[6..8].copy_from_slice(&f.to_ne_bytes());
        m
    };
    let batch = |ifindex: u32| {
        let mut b = Vec::new();
        // iproute2's probe (iplink_have_newlink): an empty RTM_NEWLINK, answered ENODEV.
        let probe = NlMsgHdr {
            len: 32,
            ty: 16,
            flags: NLM_F_REQUEST | NLM_F_ACK,
            seq: 0,
            pid: 0,
        };
        b.extend(probe.to_bytes());
        b.extend(IfInfoMsg::default().to_bytes());
        b.extend(mtu_only(ifindex, 1400, 1, true));
        b.extend(encode(&rq(Fd::P1, N), &fds, ifindex, 2));
        b.extend(encode(&rq(Fd::P2, N), &fds, ifindex, 3)); // EBUSY
        b.extend(mtu_only(ifindex, 1300, 4, false)); // silent
        b.extend(mtu_only(ifindex, 1 << 20, 5, false)); // error without ACK
        b.extend(no_ack(encode(&rq(Fd::P2, S), &fds, ifindex, 6))); // EEXIST without ACK
        b.extend(no_ack(encode(&rq(Fd::Detach, 0), &fds, ifindex, 7))); // silent
        b.extend(encode(&rq(Fd::Detach, 0), &fds, ifindex, 8));
        b
    };
    let mut ksock = ns.socket(false);
    let mut esock = ns.socket(false);
    let (_, kdev) = ns.veth();
    let (_, edev) = ns.veth();
    // Native.
    ksock.send(&batch(kdev)).unwrap();
    let mut kernel = Vec::new();
    while let Some(d) = ksock.recv(true).unwrap() {
        let last = messages(&d.data).any(|m| m.hdr.seq == 8);
        kernel.push(d.data);
        if last {
            break;
        }
    }
    // Emulated (kernel state of edev never gets a program).
    let mut model = Model::new(edev, DriverXdp::VETH);
    let mut q = ReplyQueue::new();
    let b = batch(edev);
    assert_eq!(
        handle_send(&b, &mut q, &mut esock, &mut model),
        SendOutcome::Return(b.len() as isize)
    );
    let mut ours = Vec::new();
    while let Some(r) = q.recv(1 << 16, 0) {
        ours.push(r.data);
    }
    // Same replies but for the port id and the ifindex echoed in errors.
    let norm = |mut d: Vec<u8>, ifindex: u32| {
        d[12..16].fill(0);
        if d.len() >= 44
            && parse_error(&d).is_some_and(|e| e.hdr.flags & 0x100 == 0 && e.errno != 0)
            && u32::from_ne_bytes(d[40..44].try_into().unwrap()) == ifindex
        {
            d[40..44].fill(0);
        }
        d
    };
    let kernel: Vec<Vec<u8>> = kernel.into_iter().map(|d| norm(d, kdev)).collect();
    let ours: Vec<Vec<u8>> = ours.into_iter().map(|d| norm(d, edev)).collect();
    let summary = |v: &Vec<Vec<u8>>| v.iter().map(|d| describe(d)).collect::<Vec<_>>();
    assert_eq!(
        kernel,
        ours,
        "kernel {:?}\nbpftime {:?}",
        summary(&kernel),
        summary(&ours)
    );
    assert_eq!(kernel.len(), 7);
    assert_eq!(parse_error(&kernel[0]).unwrap().errno, libc::ENODEV);
    // And the non-XDP parts were applied by the kernel on the emulated device too.
    assert!(model.dev.drv.is_none() && model.dev.skb.is_none());
    for dev in [kdev, edev] {
        let out = Command::new("ip")
            .args(["-n", &ns.name, "-o", "link", "show"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{dev}: ")))
            .expect("device listed");
        assert!(line.contains("mtu 1300"), "{line}");
    }
}

/// recvmsg on the kernel's socket: (return value or -errno, msg_flags, bytes).
fn kernel_recvmsg(sock: &FdSocket, len: usize, flags: i32) -> (isize, i32, Vec<u8>) {
    let mut buf = vec![0u8; len.max(1)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    // SAFETY: msghdr is plain old data; all-zero is valid before filling it.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    // SAFETY: mh points at iov and buf, alive and sized as declared.
    let n = unsafe { libc::recvmsg(sock.raw(), &mut mh, flags | libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap();
        return (-(e as isize), 0, Vec::new());
    }
    let copied = (n as usize).min(len);
    buf.truncate(copied);
    (n as isize, mh.msg_flags, buf)
}

/// libbpf's receive pattern (MSG_PEEK|MSG_TRUNC with no room to learn the size, then a
/// real read) and short buffers: the queue answers as `netlink_recvmsg`.
#[test]
fn recv_peek_trunc_match_kernel() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf]) {
        return;
    }
    let ns = NetNs::new();
    let fds = Fds {
        p1: load_prog(BPF_PROG_TYPE_XDP, 37),
        p2: load_prog(BPF_PROG_TYPE_XDP, 37),
        sock: load_prog(1, 0),
        devmap: load_prog(BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP),
        null: File::open("/dev/null").unwrap(),
    };
    let mut ksock = ns.socket(false);
    let mut esock = ns.socket(false);
    let (_, ifindex) = ns.veth();
    let mut model = Model::new(ifindex, DriverXdp::VETH);
    let mut q = ReplyQueue::new();
    // Two replies: an error (EBADF, request echoed) and an ACK.
    let mut batch = encode(&rq(Fd::Closed, 0), &fds, ifindex, 1);
    batch.extend(encode(&rq(Fd::Detach, 0), &fds, ifindex, 2));
    ksock.send(&batch).unwrap();
    assert!(matches!(
        handle_send(&batch, &mut q, &mut esock, &mut model),
        SendOutcome::Return(_)
    ));
    std::thread::sleep(std::time::Duration::from_millis(50));
    let steps: &[(usize, i32)] = &[
        (0, libc::MSG_PEEK | libc::MSG_TRUNC),
        (8, libc::MSG_PEEK),
        (8, libc::MSG_PEEK | libc::MSG_TRUNC),
        (4096, libc::MSG_PEEK),
        (20, 0),
        (0, libc::MSG_PEEK | libc::MSG_TRUNC),
        (4096, libc::MSG_TRUNC),
        (4096, 0),
    ];
    for &(len, flags) in steps {
        let (kn, kf, kd) = kernel_recvmsg(&ksock, len, flags);
        let (en, ef, ed) = match handle_recv(len, flags, false, &mut q, &mut esock, &mut model) {
            Ok(r) => (r.ret as isize, r.msg_flags, r.data),
            Err(e) => (-(e as isize), 0, Vec::new()),
        };
        assert_eq!((kn, kf), (en, ef), "recv({len}, {flags:#x})");
        assert_eq!(
            normalize_pid(kd),
            normalize_pid(ed),
            "recv({len}, {flags:#x})"
        );
    }
}

/// A refusal from the driver when the data plane takes the program (veth: peer MTU too
/// large for native XDP) reaches the target as the kernel's own refusal does.
#[test]
fn driver_refusal_on_commit_matches_kernel() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf]) {
        return;
    }
    let ns = NetNs::new();
    let fds = Fds {
        p1: load_prog(BPF_PROG_TYPE_XDP, 37),
        p2: load_prog(BPF_PROG_TYPE_XDP, 37),
        sock: load_prog(1, 0),
        devmap: load_prog(BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP),
        null: File::open("/dev/null").unwrap(),
    };
    let mut ksock = ns.socket(false);
    let mut esock = ns.socket(false);
    let (a, ifindex) = ns.veth();
    let peer = a.replace("nla", "nlb");
    ip(&["-n", &ns.name, "link", "set", &peer, "mtu", "9000"]);
    let req = encode(&rq(Fd::P1, D), &fds, ifindex, 1);
    let k = native(&mut ksock, &req);
    // The supervisor's commit: the data plane's stub attach failed with ERANGE (bpf()
    // carries no extack, so the message comes from the driver table).
    struct Refusing(Model);
    impl XdpBackend for Refusing {
        fn net_admin(&mut self) -> bool {
            true
        }
        fn resolve_prog_fd(&mut self, fd: i32) -> Result<ProgHandle, i32> {
            self.0.resolve_prog_fd(fd)
        }
        fn resolve_target(
            &mut self,
            t: &bpftime_supervisor::netlink::msg::LinkTarget,
        ) -> Option<u32> {
            self.0.resolve_target(t)
        }
        fn device(&mut self, i: u32) -> Option<(DevXdpState, DriverXdp)> {
            self.0.device(i)
        }
        fn commit(&mut self, _i: u32, c: &XdpChange) -> Result<(), XdpError> {
            assert_eq!(c.mode, XdpMode::Drv);
            Err(XdpError {
                errno: libc::ERANGE,
                msg: driver_extack("veth", libc::ERANGE),
            })
        }
        fn attachment_of(&mut self, i: u32) -> Option<XdpAttachInfo> {
            self.0.attachment_of(i)
        }
    }
    let mut b = Refusing(Model::new(ifindex, DriverXdp::VETH));
    let mut q = ReplyQueue::new();
    assert!(matches!(
        handle_send(&req, &mut q, &mut esock, &mut b),
        SendOutcome::Return(_)
    ));
    let e = q.recv(4096, 0).unwrap().data;
    assert_eq!(
        normalize_pid(k.clone()),
        normalize_pid(e),
        "kernel: {}",
        describe(&k)
    );
    assert_eq!(b.0.dev, DevXdpState::default());
}

/// RTM_NEWLINK|NLM_F_CREATE creating a device ignores IFLA_XDP in the kernel; so does the
/// emulation (the device is created by the kernel, nothing is attached).
#[test]
fn newlink_create_ignores_xdp_as_kernel() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf]) {
        return;
    }
    let ns = NetNs::new();
    let p1 = load_prog(BPF_PROG_TYPE_XDP, 37);
    let mut ksock = ns.socket(false);
    let mut esock = ns.socket(false);
    let create = |name: &str, seq: u32| {
        let mut p = IfInfoMsg::default().to_bytes().to_vec();
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        put_attr(&mut p, 3 /* IFLA_IFNAME */, &n);
        let mut li = Vec::new();
        put_attr(&mut li, 1 /* IFLA_INFO_KIND */, b"veth\0");
        put_attr(&mut p, 18 /* IFLA_LINKINFO */ | NLA_F_NESTED, &li);
        let mut nest = Vec::new();
        put_attr(&mut nest, IFLA_XDP_FD, &p1.as_raw_fd().to_ne_bytes());
        put_attr(&mut p, IFLA_XDP | NLA_F_NESTED, &nest);
        let flags = NLM_F_REQUEST | NLM_F_ACK | 0x400 /* CREATE */ | 0x200 /* EXCL */;
        let hdr = NlMsgHdr {
            len: (16 + p.len()) as u32,
            ty: RTM_NEWLINK,
            flags,
            seq,
            pid: 0,
        };
        let mut v = hdr.to_bytes().to_vec();
        v.extend(p);
        v
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (kname, ename) = (format!("nlck{n}"), format!("nlce{n}"));
    let k = native(&mut ksock, &create(&kname, 1));
    let kidx = ksock.ifindex_of(kname.as_bytes()).unwrap();
    // The model resolves names in the namespace, as the supervisor does.
    let mut model = Model::new(0, DriverXdp::VETH);
    model.names_via = Some(ns.socket(false));
    let mut q = ReplyQueue::new();
    let req = create(&ename, 1);
    assert!(matches!(
        handle_send(&req, &mut q, &mut esock, &mut model),
        SendOutcome::Return(_)
    ));
    let e = q.recv(4096, 0).unwrap().data;
    assert_eq!(
        normalize_pid(k.clone()),
        normalize_pid(e),
        "kernel: {}",
        describe(&k)
    );
    let eidx = esock.ifindex_of(ename.as_bytes()).unwrap();
    assert_eq!(model.dev, DevXdpState::default());
    // Neither device has a program in the kernel.
    for (s, idx) in [(&mut ksock, kidx), (&mut esock, eidx)] {
        s.send(&getlink(idx, 9, false)).unwrap();
        let nest = xdp_nest_of(&mut || s.recv(true).unwrap().unwrap().data, idx, false);
        assert_eq!(nest, [5, 0, 2, 0, 0, 0, 0, 0]);
    }
}
