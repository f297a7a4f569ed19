//! The AF_XDP data plane with real traffic: namespaces joined by veth pairs, a
//! program attached (native mode unless said) in one, traffic from the other,
//! every verdict checked by what arrives on the far side.
//!
//! Run: `cargo test -p bpftime-tests --test netdev_dataplane` as root.
//! The benchmark: `cargo test --release -p bpftime-tests --test netdev_dataplane -- --ignored --nocapture bench_`.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bpftime_netdev::{AttachSpec, Dataplane, RedirectInfo, XdpCtx, XdpMode, XdpProgram};
use bpftime_tests::privilege::{require, Need};
use bpftime_vm::run::{XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX};

// ---------------------------------------------------------------- fixture

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace, deleted on drop.
struct Ns {
    name: String,
}

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "btnd{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Ns { name };
        sh(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }
    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
    fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }
    fn ifindex(&self, dev: &str) -> u32 {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", dev])
            .output()
            .expect("ip link");
        let s = String::from_utf8_lossy(&out.stdout);
        s.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ifindex for {dev}: {s}"))
    }
    fn mac(&self, dev: &str) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", dev])
            .output()
            .expect("ip link");
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let i = s.find("link/ether ").expect("link/ether") + 11;
        let mut m = [0u8; 6];
        for (k, p) in s[i..i + 17].split(':').enumerate() {
            m[k] = u8::from_str_radix(p, 16).expect("mac");
        }
        m
    }
    /// `ping` from this namespace; true if at least `min` replies came back.
    fn ping(&self, dst: &str, count: u32, min: u32) -> bool {
        replies(self, dst, count, "0.2") >= min
    }
    /// Runs `f` on a thread inside this namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let p = self.path();
        std::thread::spawn(move || {
            enter(&p);
            f()
        })
        .join()
        .expect("thread in netns")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn enter(p: &Path) {
    bpftime_netdev::netns::enter(p).expect("setns");
}

/// Replies counted from `ping -c count -i interval`.
fn replies(ns: &Ns, dst: &str, count: u32, interval: &str) -> u32 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            dst,
        ])
        .output()
        .expect("ping");
    let s = String::from_utf8_lossy(&out.stdout);
    // "N packets transmitted, M received"
    s.split(',')
        .find(|p| p.contains("received"))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Namespaces `a` and `b` joined by veth `va` (10.77.0.1/24) <-> `vb` (10.77.0.2/24).
struct Pair {
    a: Ns,
    b: Ns,
    ifa: u32,
}

fn pair() -> Pair {
    let a = Ns::new();
    let b = Ns::new();
    sh(&[
        "ip", "link", "add", "va", "netns", &a.name, "type", "veth", "peer", "name", "vb", "netns",
        &b.name,
    ]);
    a.ip(&["addr", "add", "10.77.0.1/24", "dev", "va"]);
    b.ip(&["addr", "add", "10.77.0.2/24", "dev", "vb"]);
    a.ip(&["link", "set", "va", "up"]);
    b.ip(&["link", "set", "vb", "up"]);
    let ifa = a.ifindex("va");
    // Offloads stay as veth has them: senders leave checksums to offload.
    assert!(
        b.ping("10.77.0.1", 1, 1) || b.ping("10.77.0.1", 2, 1),
        "fixture: no ping before attach"
    );
    Pair { a, b, ifa }
}

fn privileged() -> bool {
    require(&[Need::Root, Need::Bpf, Need::Netns])
}

// ---------------------------------------------------------------- programs

/// A program from a closure.
struct FnProg<F> {
    name: String,
    f: F,
}

impl<F: Fn(&mut XdpCtx) -> (u32, RedirectInfo) + Send + Sync> XdpProgram for FnProg<F> {
    fn run(&self, ctx: &mut XdpCtx, _cpu: u32) -> (u32, RedirectInfo) {
        (self.f)(ctx)
    }
    fn name(&self) -> &str {
        &self.name
    }
}

fn prog(
    name: &str,
    f: impl Fn(&mut XdpCtx) -> (u32, RedirectInfo) + Send + Sync + 'static,
) -> Arc<dyn XdpProgram> {
    Arc::new(FnProg {
        name: name.to_string(),
        f,
    })
}

/// The packet bytes of a run.
fn pkt(ctx: &mut XdpCtx) -> &mut [u8] {
    // SAFETY: the data plane runs programs with data..data_end inside the frame it
    // owns for the run; the slice does not outlive the run (borrow of ctx).
    unsafe {
        std::slice::from_raw_parts_mut(ctx.data as *mut u8, (ctx.data_end - ctx.data) as usize)
    }
}

fn verdict(v: u32) -> (u32, RedirectInfo) {
    (v, RedirectInfo::default())
}

/// Pass-all that counts the frames it sees.
fn counting_pass(count: Arc<AtomicU64>) -> Arc<dyn XdpProgram> {
    prog("count_pass", move |_| {
        count.fetch_add(1, Ordering::Relaxed);
        verdict(XDP_PASS)
    })
}

fn is_ipv4(p: &[u8]) -> bool {
    p.len() >= 34 && p[12] == 0x08 && p[13] == 0x00
}

/// Drops IPv4, passes the rest (ARP keeps working, so a drop is the program's).
fn drop_ipv4() -> Arc<dyn XdpProgram> {
    prog("drop_ipv4", |ctx| {
        verdict(if is_ipv4(pkt(ctx)) {
            XDP_DROP
        } else {
            XDP_PASS
        })
    })
}

fn attach(
    dp: &Dataplane,
    ns: &Ns,
    ifindex: u32,
    mode: XdpMode,
    program: Arc<dyn XdpProgram>,
) -> bpftime_netdev::AttachmentId {
    dp.attach(AttachSpec {
        netns: Some(ns.path()),
        ifindex,
        mode,
        program,
        queues: None,
        cpu_pinning: false,
    })
    .expect("attach")
}

/// Sends `n` UDP datagrams from `from` to `dst:port`, counts what `to` receives.
fn udp_flow(from: &Ns, to: &Ns, dst: Ipv4Addr, port: u16, n: u32) -> u32 {
    let rx = to.run(move || {
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).expect("bind")
    });
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    from.run(move || {
        let tx = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).expect("bind tx");
        for i in 0..n {
            let _ = tx.send_to(&i.to_ne_bytes(), SocketAddrV4::new(dst, port));
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut got = 0;
    let mut buf = [0u8; 64];
    while rx.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    got
}

// ---------------------------------------------------------------- tests

#[test]
fn pass_reinjects_ping_and_counts_native_and_generic() {
    if !privileged() {
        return;
    }
    for mode in [XdpMode::Drv, XdpMode::Skb] {
        let p = pair();
        let dp = Dataplane::new();
        let count = Arc::new(AtomicU64::new(0));
        let id = attach(&dp, &p.a, p.ifa, mode, counting_pass(count.clone()));
        assert!(
            p.b.ping("10.77.0.1", 5, 4),
            "{mode:?}: ping through XDP_PASS reinjection"
        );
        let seen = count.load(Ordering::Relaxed);
        assert!(seen >= 4, "{mode:?}: program saw {seen} frames");
        let st = dp.stats(id).expect("stats");
        assert_eq!(st.total.pass, st.total.rx_packets, "{mode:?}: {st:?}");
        assert!(st.total.rx_packets >= seen, "{mode:?}: {st:?}");
        assert_eq!(st.total.pass_failures, 0, "{mode:?}: {st:?}");
        assert_eq!(st.program, "count_pass");
        // A TCP connection completes through the kernel stack too.
        let listener =
            p.a.run(|| std::net::TcpListener::bind("10.77.0.1:7777").expect("listen"));
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut b = [0u8; 5];
            std::io::Read::read_exact(&mut s, &mut b).expect("read");
            std::io::Write::write_all(&mut s, &b).expect("echo");
        });
        let echoed = p.b.run(move || {
            let mut s = std::net::TcpStream::connect_timeout(
                &"10.77.0.1:7777".parse().unwrap(),
                Duration::from_secs(3),
            )
            .unwrap_or_else(|e| panic!("{mode:?}: TCP connect: {e}"));
            std::io::Write::write_all(&mut s, b"hello").unwrap();
            let mut b = [0u8; 5];
            std::io::Read::read_exact(&mut s, &mut b).expect("read echo");
            b
        });
        t.join().unwrap();
        assert_eq!(&echoed, b"hello");
        dp.detach(id).expect("detach");
        assert!(dp.stats(id).is_none());
    }
}

#[test]
fn drop_stops_ping_and_udp_and_detach_restores() {
    if !privileged() {
        return;
    }
    let p = pair();
    let dp = Dataplane::new();
    assert_eq!(
        udp_flow(&p.b, &p.a, Ipv4Addr::new(10, 77, 0, 1), 9101, 20),
        20,
        "UDP before attach"
    );
    let id = attach(&dp, &p.a, p.ifa, XdpMode::Drv, drop_ipv4());
    assert!(
        !p.b.ping("10.77.0.1", 3, 1),
        "ping must fail under XDP_DROP"
    );
    assert_eq!(
        udp_flow(&p.b, &p.a, Ipv4Addr::new(10, 77, 0, 1), 9102, 20),
        0,
        "UDP under XDP_DROP"
    );
    let st = dp.stats(id).unwrap();
    assert!(st.total.drop >= 23, "{st:?}");
    dp.detach(id).unwrap();
    assert!(p.b.ping("10.77.0.1", 3, 2), "ping after detach");
    assert_eq!(
        udp_flow(&p.b, &p.a, Ipv4Addr::new(10, 77, 0, 1), 9103, 20),
        20,
        "UDP after detach"
    );
    assert_eq!(dp.detach(id).unwrap_err().errno(), libc::ENOENT);
}

#[test]
fn aborted_drops_and_counts_exceptions() {
    if !privileged() {
        return;
    }
    let p = pair();
    let dp = Dataplane::new();
    let id = attach(
        &dp,
        &p.a,
        p.ifa,
        XdpMode::Drv,
        prog("abort", |ctx| {
            verdict(if is_ipv4(pkt(ctx)) { XDP_ABORTED } else { 7 })
        }),
    );
    assert!(!p.b.ping("10.77.0.1", 2, 1));
    let st = dp.stats(id).unwrap();
    assert!(
        st.total.aborted >= 2 && st.total.exceptions >= st.total.aborted,
        "{st:?}"
    );
}

/// Turns an ICMP echo request into the reply in place (MACs, IPs swapped, type 0,
/// checksum adjusted) and sends it back with XDP_TX.
fn icmp_responder(answered: Arc<AtomicU64>) -> Arc<dyn XdpProgram> {
    prog("icmp_tx", move |ctx| {
        let p = pkt(ctx);
        if !is_ipv4(p) || p[23] != 1 || p.len() < 42 {
            return verdict(XDP_PASS);
        }
        let ihl = (p[14] & 0xf) as usize * 4;
        let icmp = 14 + ihl;
        if p.len() < icmp + 8 || p[icmp] != 8 {
            return verdict(XDP_PASS);
        }
        for i in 0..6 {
            p.swap(i, 6 + i);
        }
        for i in 0..4 {
            p.swap(26 + i, 30 + i);
        }
        p[icmp] = 0;
        // RFC 1624: HC' = ~(~HC + ~m + m'), m = 0x0800 -> m' = 0x0000.
        let hc = u16::from_be_bytes([p[icmp + 2], p[icmp + 3]]);
        let mut sum = (!hc as u32) + (!0x0800u16 as u32);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        p[icmp + 2..icmp + 4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        answered.fetch_add(1, Ordering::Relaxed);
        verdict(XDP_TX)
    })
}

#[test]
fn tx_answers_the_sender() {
    if !privileged() {
        return;
    }
    for mode in [XdpMode::Drv, XdpMode::Skb] {
        let p = pair();
        let dp = Dataplane::new();
        // 10.77.0.99 is nobody's address: only the XDP_TX responder can answer it.
        let mac = p.a.mac("va");
        let mac_s = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        p.b.ip(&["neigh", "add", "10.77.0.99", "lladdr", &mac_s, "dev", "vb"]);
        assert!(
            !p.b.ping("10.77.0.99", 2, 1),
            "{mode:?}: nobody answers before attach"
        );
        let answered = Arc::new(AtomicU64::new(0));
        let id = attach(&dp, &p.a, p.ifa, mode, icmp_responder(answered.clone()));
        assert!(p.b.ping("10.77.0.99", 5, 4), "{mode:?}: XDP_TX replies");
        let st = dp.stats(id).unwrap();
        assert!(
            st.total.tx >= 4 && st.total.tx_failures == 0,
            "{mode:?}: {st:?}"
        );
        assert!(answered.load(Ordering::Relaxed) >= 4);
        // The real address still works: echo requests are answered by us, not the kernel.
        assert!(p.b.ping("10.77.0.1", 2, 2), "{mode:?}");
    }
}

#[test]
fn adjust_head_and_meta_reach_the_stack() {
    if !privileged() {
        return;
    }
    // The program pushes 4 bytes of headroom junk and 8 bytes of metadata, then
    // moves data back: what the kernel gets must still be the original frame.
    let p = pair();
    let dp = Dataplane::new();
    let id = attach(
        &dp,
        &p.a,
        p.ifa,
        XdpMode::Drv,
        prog("adjust", |ctx| {
            assert!(ctx.data - ctx.hard_start >= 256, "256 bytes of headroom");
            ctx.data -= 4; // adjust_head(-4)
            pkt(ctx)[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
            ctx.data += 4; // adjust_head(+4)
            ctx.data_meta = ctx.data - 8; // adjust_meta(-8)
            verdict(XDP_PASS)
        }),
    );
    assert!(p.b.ping("10.77.0.1", 3, 3));
    assert_eq!(dp.stats(id).unwrap().total.pass_failures, 0);
}

/// Three namespaces: b --(vb|va)-- a --(va2|vc)-- c. The program on `va` sends IPv4
/// to 10.78.0.0/24 out of `va2` (MACs rewritten); `a` does not forward by itself.
#[test]
fn redirect_forwards_between_veths() {
    if !privileged() {
        return;
    }
    let p = pair();
    let c = Ns::new();
    sh(&[
        "ip", "link", "add", "va2", "netns", &p.a.name, "type", "veth", "peer", "name", "vc",
        "netns", &c.name,
    ]);
    p.a.ip(&["addr", "add", "10.78.0.1/24", "dev", "va2"]);
    c.ip(&["addr", "add", "10.78.0.2/24", "dev", "vc"]);
    p.a.ip(&["link", "set", "va2", "up"]);
    c.ip(&["link", "set", "vc", "up"]);
    c.ip(&["route", "add", "default", "via", "10.78.0.1"]);
    p.b.ip(&["route", "add", "10.78.0.0/24", "via", "10.77.0.1"]);
    let out_if = p.a.ifindex("va2");
    let (src, dst) = (p.a.mac("va2"), c.mac("vc"));
    let dp = Dataplane::new();
    assert_eq!(
        udp_flow(&p.b, &c, Ipv4Addr::new(10, 78, 0, 2), 9201, 10),
        0,
        "a does not forward"
    );
    let by_ifindex = prog("redirect", move |ctx| {
        let p = pkt(ctx);
        if is_ipv4(p) && p[30..33] == [10, 78, 0] {
            p[..6].copy_from_slice(&dst);
            p[6..12].copy_from_slice(&src);
            return (
                XDP_REDIRECT,
                RedirectInfo {
                    ifindex: out_if,
                    ..RedirectInfo::default()
                },
            );
        }
        verdict(XDP_PASS)
    });
    let id = attach(&dp, &p.a, p.ifa, XdpMode::Drv, by_ifindex);
    assert_eq!(
        udp_flow(&p.b, &c, Ipv4Addr::new(10, 78, 0, 2), 9202, 30),
        30,
        "redirect by ifindex"
    );
    let st = dp.stats(id).unwrap();
    assert!(
        st.total.redirect >= 30 && st.total.redirect_failures == 0,
        "{st:?}"
    );

    // The same through a DEVMAP entry (key 3 -> va2), then a broadcast over a
    // DEVMAP_HASH holding va2 and the ingress (excluded).
    use bpftime_vm::maps::{create, map_type, MapAttr};
    let devmap = create(&MapAttr {
        map_type: map_type::DEVMAP,
        key_size: 4,
        value_size: 4,
        max_entries: 8,
        ..MapAttr::default()
    })
    .expect("devmap");
    devmap
        .sys_update(&3u32.to_ne_bytes(), &out_if.to_ne_bytes(), 0)
        .expect("devmap update");
    let hash = create(&MapAttr {
        map_type: map_type::DEVMAP_HASH,
        key_size: 4,
        value_size: 4,
        max_entries: 8,
        ..MapAttr::default()
    })
    .expect("devmap_hash");
    hash.sys_update(&10u32.to_ne_bytes(), &out_if.to_ne_bytes(), 0)
        .unwrap();
    hash.sys_update(&20u32.to_ne_bytes(), &p.ifa.to_ne_bytes(), 0)
        .unwrap();
    for (name, map, key, flags) in [
        ("devmap", devmap, 3u32, 0u64),
        ("broadcast", hash, 0, 8 | 16),
    ] {
        let via_map = prog(name, move |ctx| {
            let p = pkt(ctx);
            if is_ipv4(p) && p[30..33] == [10, 78, 0] {
                p[..6].copy_from_slice(&dst);
                p[6..12].copy_from_slice(&src);
                return (
                    XDP_REDIRECT,
                    RedirectInfo {
                        ifindex: 0,
                        flags,
                        map: Some(map.clone()),
                        key,
                    },
                );
            }
            verdict(XDP_PASS)
        });
        dp.replace(id, via_map).unwrap();
        assert_eq!(
            udp_flow(&p.b, &c, Ipv4Addr::new(10, 78, 0, 2), 9203, 20),
            20,
            "redirect through {name}"
        );
    }
    // A missing DEVMAP key is a failed redirect: nothing arrives, counted.
    let before = dp.stats(id).unwrap().total.redirect_failures;
    let missing = create(&MapAttr {
        map_type: map_type::DEVMAP,
        key_size: 4,
        value_size: 4,
        max_entries: 8,
        ..MapAttr::default()
    })
    .unwrap();
    dp.replace(
        id,
        prog("miss", move |ctx| {
            if is_ipv4(pkt(ctx)) {
                return (
                    XDP_REDIRECT,
                    RedirectInfo {
                        ifindex: 0,
                        flags: 0,
                        map: Some(missing.clone()),
                        key: 5,
                    },
                );
            }
            verdict(XDP_PASS)
        }),
    )
    .unwrap();
    assert_eq!(udp_flow(&p.b, &c, Ipv4Addr::new(10, 78, 0, 2), 9204, 10), 0);
    assert!(dp.stats(id).unwrap().total.redirect_failures >= before + 10);

    // DEVMAP entries with their own program (BPF_XDP_DEVMAP): it sees
    // egress_ifindex and its verdict decides. `drop_if(n)` drops when egress == n.
    use bpftime_vm::maps::devmap::DevMap;
    use bpftime_vm::program::{NoMaps, ProgLoadSpec, Program};
    let drop_if = |n: u32| {
        let v = [
            insn(0x61, 2, 1, 20, 0),       // r2 = ctx->egress_ifindex
            insn(0x15, 2, 0, 2, n as i32), // if r2 == n goto drop
            insn(0xb7, 0, 0, 0, 2),        // r0 = XDP_PASS
            insn(0x95, 0, 0, 0, 0),
            insn(0xb7, 0, 0, 0, 1), // drop: r0 = XDP_DROP
            insn(0x95, 0, 0, 0, 0),
        ];
        let spec = ProgLoadSpec {
            prog_type: 6,
            expected_attach_type: 38,
            insns: v.iter().flat_map(|i| i.to_le_bytes()).collect(),
            license: "GPL".into(),
            name: "devmap_prog".into(),
            ..ProgLoadSpec::default()
        };
        Arc::new(Program::load(spec, &NoMaps).expect("devmap prog load"))
    };
    for (egress_prog, expect) in [(drop_if(out_if), 0), (drop_if(out_if + 100), 10)] {
        let dm = create(&MapAttr {
            map_type: map_type::DEVMAP,
            key_size: 4,
            value_size: 8,
            max_entries: 4,
            ..MapAttr::default()
        })
        .unwrap();
        let devmap = dm.as_any().downcast_ref::<DevMap>().expect("a DevMap");
        devmap.set(1, out_if, Some((1, egress_prog)), 0).unwrap();
        dp.replace(
            id,
            prog("devmap_with_prog", move |ctx| {
                let p = pkt(ctx);
                if is_ipv4(p) && p[30..33] == [10, 78, 0] {
                    p[..6].copy_from_slice(&dst);
                    p[6..12].copy_from_slice(&src);
                    return (
                        XDP_REDIRECT,
                        RedirectInfo {
                            ifindex: 0,
                            flags: 0,
                            map: Some(dm.clone()),
                            key: 1,
                        },
                    );
                }
                verdict(XDP_PASS)
            }),
        )
        .unwrap();
        assert_eq!(
            udp_flow(&p.b, &c, Ipv4Addr::new(10, 78, 0, 2), 9205, 10),
            expect,
            "devmap program"
        );
    }
}

#[test]
fn replace_while_pinging_loses_at_most_a_handful() {
    if !privileged() {
        return;
    }
    let p = pair();
    let dp = Arc::new(Dataplane::new());
    let c1 = Arc::new(AtomicU64::new(0));
    let c2 = Arc::new(AtomicU64::new(0));
    let id = attach(&dp, &p.a, p.ifa, XdpMode::Drv, counting_pass(c1.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (dp, stop, c1, c2) = (dp.clone(), stop.clone(), c1.clone(), c2.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let c = if n % 2 == 0 { c2.clone() } else { c1.clone() };
                dp.replace(id, counting_pass(c)).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };
    let got = replies(&p.b, "10.77.0.1", 200, "0.01");
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 50, "only {swaps} replacements");
    assert!(got >= 195, "{got}/200 replies while replacing");
    assert!(c1.load(Ordering::Relaxed) > 0 && c2.load(Ordering::Relaxed) > 0);
}

#[test]
fn several_interfaces_and_busy() {
    if !privileged() {
        return;
    }
    let p1 = pair();
    let p2 = pair();
    let dp = Dataplane::new();
    let (c1, c2) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let i1 = attach(&dp, &p1.a, p1.ifa, XdpMode::Drv, counting_pass(c1.clone()));
    let i2 = attach(&dp, &p2.a, p2.ifa, XdpMode::Skb, counting_pass(c2.clone()));
    let again = dp.attach(AttachSpec {
        netns: Some(p1.a.path()),
        ifindex: p1.ifa,
        mode: XdpMode::Drv,
        program: drop_ipv4(),
        queues: None,
        cpu_pinning: false,
    });
    assert_eq!(again.unwrap_err().errno(), libc::EBUSY);
    let nodev = dp.attach(AttachSpec {
        netns: Some(p1.a.path()),
        ifindex: 4242,
        mode: XdpMode::Drv,
        program: drop_ipv4(),
        queues: None,
        cpu_pinning: false,
    });
    assert_eq!(nodev.unwrap_err().errno(), libc::ENODEV);
    let nons = dp.attach(AttachSpec {
        netns: Some("/run/netns/bpftime-no-such-namespace".into()),
        ifindex: 1,
        mode: XdpMode::Drv,
        program: drop_ipv4(),
        queues: None,
        cpu_pinning: false,
    });
    assert_eq!(nons.unwrap_err().errno(), libc::ENOENT);
    assert!(p1.b.ping("10.77.0.1", 3, 3));
    assert!(p2.b.ping("10.77.0.1", 3, 3));
    assert!(c1.load(Ordering::Relaxed) >= 3 && c2.load(Ordering::Relaxed) >= 3);
    let l = dp.list();
    assert_eq!(l.len(), 2);
    assert_eq!((l[0].0, l[1].0), (i1, i2));
    assert_eq!(l[0].1.netns.as_deref(), Some(p1.a.path().as_path()));
    assert_eq!(l[1].1.mode, XdpMode::Skb);
    assert!(!l[0].1.zero_copy, "veth has no zero-copy AF_XDP");
    drop(dp); // detaches everything
    assert!(p1.b.ping("10.77.0.1", 2, 2));
}

/// The child half of `sigkill_of_the_owner_restores_ping`: attaches a DROP program
/// to the interface named by the environment, says so, and waits to be killed.
#[test]
#[ignore = "helper process for sigkill_of_the_owner_restores_ping"]
fn child_attach_and_wait() {
    let (Ok(ns), Ok(ifindex)) = (std::env::var("BTND_NS"), std::env::var("BTND_IFINDEX")) else {
        return;
    };
    let dp = Dataplane::new();
    dp.attach(AttachSpec {
        netns: Some(ns.into()),
        ifindex: ifindex.parse().unwrap(),
        mode: XdpMode::Drv,
        program: drop_ipv4(),
        queues: None,
        cpu_pinning: false,
    })
    .expect("child attach");
    println!("ATTACHED");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn sigkill_of_the_owner_restores_ping() {
    if !privileged() {
        return;
    }
    let p = pair();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_attach_and_wait",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BTND_NS", p.a.path())
        .env("BTND_IFINDEX", p.ifa.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attached = false;
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) if l.contains("ATTACHED") => {
                attached = true;
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(attached, "child did not attach");
    assert!(
        !p.b.ping("10.77.0.1", 2, 1),
        "the child's DROP program is active"
    );
    // SAFETY: kill of our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(
        p.b.ping("10.77.0.1", 3, 2),
        "ping after the owner was killed"
    );
}

// ---------------------------------------------------------------- a VM program

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | ((dst as u64) << 8)
        | ((src as u64) << 12)
        | ((off as u16 as u64) << 16)
        | ((imm as u32 as u64) << 32)
}

/// eBPF: drops UDP to port 9001 and counts it in ARRAY[0] (map fd `map_fd`),
/// passes everything else.
fn drop_udp_9001(map_fd: i32) -> Vec<u8> {
    let v = [
        insn(0x61, 2, 1, 0, 0),       // 0: r2 = ctx->data
        insn(0x61, 3, 1, 4, 0),       // 1: r3 = ctx->data_end
        insn(0xbf, 4, 2, 0, 0),       // 2: r4 = r2
        insn(0x07, 4, 0, 0, 42),      // 3: r4 += 42
        insn(0x2d, 4, 3, 18, 0),      // 4: if r4 > r3 goto pass
        insn(0x69, 5, 2, 12, 0),      // 5: r5 = eth proto
        insn(0x55, 5, 0, 16, 0x0008), // 6: if r5 != htons(ETH_P_IP) goto pass
        insn(0x71, 5, 2, 23, 0),      // 7: r5 = ip proto
        insn(0x55, 5, 0, 14, 17),     // 8: if r5 != UDP goto pass
        insn(0x69, 5, 2, 36, 0),      // 9: r5 = udp dest (network order)
        insn(0x55, 5, 0, 12, 0x2923), // 10: if r5 != htons(9001) goto pass
        insn(0x62, 10, 0, -4, 0),     // 11: *(u32 *)(r10 - 4) = 0
        insn(0xbf, 2, 10, 0, 0),      // 12: r2 = r10
        insn(0x07, 2, 0, 0, -4),      // 13: r2 += -4
        insn(0x18, 1, 1, 0, map_fd),  // 14: r1 = map
        0,                            // 15
        insn(0x85, 0, 0, 0, 1),       // 16: call map_lookup_elem
        insn(0x15, 0, 0, 3, 0),       // 17: if r0 == 0 goto drop
        insn(0x79, 1, 0, 0, 0),       // 18: r1 = *(u64 *)r0
        insn(0x07, 1, 0, 0, 1),       // 19: r1 += 1
        insn(0x7b, 0, 1, 0, 0),       // 20: *(u64 *)r0 = r1
        insn(0xb7, 0, 0, 0, 1),       // 21: drop: r0 = XDP_DROP
        insn(0x95, 0, 0, 0, 0),       // 22: exit
        insn(0xb7, 0, 0, 0, 2),       // 23: pass: r0 = XDP_PASS
        insn(0x95, 0, 0, 0, 0),       // 24: exit
    ];
    v.iter().flat_map(|i| i.to_le_bytes()).collect()
}

struct OneMap(Arc<dyn bpftime_vm::maps::Map>);
impl bpftime_vm::program::MapResolver for OneMap {
    fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn bpftime_vm::maps::Map>> {
        (fd == 77).then(|| self.0.clone())
    }
    fn fd_array(&self, _idx: u32) -> Option<Arc<dyn bpftime_vm::maps::Map>> {
        None
    }
}

#[test]
fn vm_program_filters_and_counts_and_reattach_works() {
    if !privileged() {
        return;
    }
    use bpftime_vm::maps::{create, map_type, MapAttr};
    use bpftime_vm::program::{ProgLoadSpec, Program};
    let p = pair();
    let map = create(&MapAttr {
        map_type: map_type::ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        ..MapAttr::default()
    })
    .unwrap();
    let spec = ProgLoadSpec {
        prog_type: 6,
        expected_attach_type: 37,
        insns: drop_udp_9001(77),
        license: "GPL".into(),
        name: "drop_udp_9001".into(),
        ..ProgLoadSpec::default()
    };
    let vm = Arc::new(Program::load(spec, &OneMap(map.clone())).expect("vm load"));
    let dp = Dataplane::new();
    for round in 0..2 {
        // Attach, detach and attach again at once (the kernel frees a closed
        // socket's queue asynchronously).
        let id = attach(
            &dp,
            &p.a,
            p.ifa,
            XdpMode::Drv,
            Arc::new(bpftime_netdev::VmProgram::new(vm.clone())),
        );
        assert!(p.b.ping("10.77.0.1", 3, 3), "round {round}: ICMP passes");
        let ip = Ipv4Addr::new(10, 77, 0, 1);
        assert_eq!(
            udp_flow(&p.b, &p.a, ip, 9000, 10),
            10,
            "round {round}: other UDP passes"
        );
        assert_eq!(
            udp_flow(&p.b, &p.a, ip, 9001, 10),
            0,
            "round {round}: UDP 9001 dropped"
        );
        let st = dp.stats(id).unwrap();
        assert_eq!(st.program, "drop_udp_9001");
        assert!(st.total.drop >= 10 && st.total.pass >= 13, "{st:?}");
        dp.detach(id).unwrap();
    }
    let mut v = [0u8; 8];
    map.sys_lookup(&0u32.to_ne_bytes(), &mut v, 0).unwrap();
    assert_eq!(
        u64::from_ne_bytes(v),
        20,
        "the VM program counted every dropped datagram"
    );
}
