//! Data-plane benchmark (not part of the normal suite: `#[ignore]`).
//!
//! ```sh
//! cargo test --release -p bpftime-tests --test netdev_bench -- --ignored --nocapture
//! ```
//!
//! One veth pair (`va` in namespace A, `vb` in B); a generator thread in B blasts
//! 64-byte UDP frames at `va` with AF_PACKET (sendmmsg, qdisc bypass). Scenarios, each
//! for BENCH_SECS (default 3) seconds on the same pair and generator:
//! - kernel XDP native (DRV) drop, and kernel parse-and-count (the same instructions
//!   as bpftime's), counted by `va`'s rx_packets (veth counts every XDP frame);
//! - AF_XDP rx-drop with no program: the data plane running a Rust no-op returning
//!   XDP_DROP (the ring loop alone);
//! - bpftime drop (`r0 = XDP_DROP; exit` in the VM interpreter) and bpftime
//!   parse-and-count (Ethernet/IPv4/UDP parse, ARRAY map counter per port) in the VM,
//!   counted by the data plane's rx counter.
//!
//! CPU cost per packet: the machine's busy CPU time (/proc/stat, all CPUs: the
//! generator, the veth NAPI softirq and the workers) over the frames processed, and
//! the worker threads' own CPU time over the same frames.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bpftime_netdev::{AttachSpec, Dataplane, RedirectInfo, XdpCtx, XdpMode, XdpProgram};
use bpftime_tests::privilege::{require, Need};
use bpftime_vm::maps::{self, Map, MapAttr};
use bpftime_vm::program::{MapResolver, ProgLoadSpec, Program};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Ns(String);
impl Ns {
    fn new() -> Ns {
        let n = format!(
            "btbench{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &n]);
        Ns(n)
    }
    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }
    fn rx_packets(&self, dev: &str) -> u64 {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.0,
            "cat",
            &format!("/sys/class/net/{dev}/statistics/rx_packets"),
        ])
        .trim()
        .parse()
        .expect("rx_packets")
    }
}
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn in_ns<T: Send + 'static>(p: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        bpftime_netdev::netns::enter(&p).expect("setns");
        f()
    })
    .join()
    .expect("ns thread")
}

// ------------------------------------------------------------ raw eBPF

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | ((dst as u64) << 8)
        | ((src as u64) << 12)
        | ((off as u16 as u64) << 16)
        | ((imm as u32 as u64) << 32)
}

/// `return XDP_DROP;`
fn drop_prog() -> Vec<u64> {
    vec![insn(0xb7, 0, 0, 0, 1), insn(0x95, 0, 0, 0, 0)]
}

/// Parses Ethernet/IPv4/UDP and counts frames per low byte of the UDP dst port in an ARRAY
/// (256 x u64) map; returns XDP_DROP.
fn parse_count_prog(map_fd: i32) -> Vec<u64> {
    vec![
        insn(0x61, 2, 1, 0, 0),       // 0: r2 = ctx->data
        insn(0x61, 3, 1, 4, 0),       // 1: r3 = ctx->data_end
        insn(0xbf, 4, 2, 0, 0),       // 2: r4 = r2
        insn(0x07, 4, 0, 0, 42),      // 3: r4 += 42
        insn(0x2d, 4, 3, 16, 0),      // 4: if r4 > r3 goto out
        insn(0x69, 5, 2, 12, 0),      // 5: r5 = eth proto
        insn(0x55, 5, 0, 14, 0x0008), // 6: if r5 != htons(0x0800) goto out
        insn(0x71, 5, 2, 23, 0),      // 7: r5 = ip proto
        insn(0x55, 5, 0, 12, 17),     // 8: if r5 != UDP goto out
        insn(0x71, 5, 2, 37, 0),      // 9: r5 = low byte of udp dest
        insn(0x57, 5, 0, 0, 0xff),    // 10: r5 &= 0xff
        insn(0x63, 10, 5, -4, 0),     // 11: *(u32 *)(r10 - 4) = r5
        insn(0xbf, 2, 10, 0, 0),      // 12: r2 = r10
        insn(0x07, 2, 0, 0, -4),      // 13: r2 += -4
        insn(0x18, 1, 1, 0, map_fd),  // 14: r1 = map
        0,                            // 15
        insn(0x85, 0, 0, 0, 1),       // 16: call map_lookup_elem
        insn(0x15, 0, 0, 3, 0),       // 17: if r0 == 0 goto out
        insn(0x79, 1, 0, 0, 0),       // 18: r1 = *(u64 *)r0
        insn(0x07, 1, 0, 0, 1),       // 19: r1 += 1
        insn(0x7b, 0, 1, 0, 0),       // 20: *(u64 *)r0 = r1
        insn(0xb7, 0, 0, 0, 1),       // 21: out: r0 = XDP_DROP
        insn(0x95, 0, 0, 0, 0),       // 22: exit
    ]
}

fn bytes(insns: &[u64]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_le_bytes()).collect()
}

fn bpf(cmd: i64, attr: &mut [u8; 128]) -> std::io::Result<OwnedFd> {
    bpftime_tests::sysbpf::bpf_fd(cmd as u32, attr)
}

fn kernel_array_map() -> OwnedFd {
    let mut a = [0u8; 128];
    a[0..4].copy_from_slice(&2u32.to_ne_bytes());
    a[4..8].copy_from_slice(&4u32.to_ne_bytes());
    a[8..12].copy_from_slice(&8u32.to_ne_bytes());
    a[12..16].copy_from_slice(&256u32.to_ne_bytes());
    bpf(0, &mut a).expect("kernel map")
}

fn kernel_prog(insns: &[u64]) -> OwnedFd {
    let lic = b"GPL\0";
    let mut a = [0u8; 128];
    a[0..4].copy_from_slice(&6u32.to_ne_bytes());
    a[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    a[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    a[16..24].copy_from_slice(&(lic.as_ptr() as u64).to_ne_bytes());
    a[68..72].copy_from_slice(&37u32.to_ne_bytes());
    bpf(5, &mut a).expect("kernel prog load")
}

fn kernel_attach(prog: &OwnedFd, ifindex: u32) -> OwnedFd {
    let mut a = [0u8; 128];
    a[0..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    a[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    a[8..12].copy_from_slice(&37u32.to_ne_bytes());
    a[12..16].copy_from_slice(&4u32.to_ne_bytes()); // XDP_FLAGS_DRV_MODE
    bpf(28, &mut a).expect("kernel link")
}

struct OneMap(i32, Arc<dyn Map>);
impl MapResolver for OneMap {
    fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>> {
        (fd == self.0).then(|| self.1.clone())
    }
    fn fd_array(&self, _idx: u32) -> Option<Arc<dyn Map>> {
        None
    }
}

fn vm_prog(name: &str, insns: &[u64], maps: &dyn MapResolver) -> Arc<Program> {
    let spec = ProgLoadSpec {
        prog_type: 6,
        expected_attach_type: 37,
        insns: bytes(insns),
        license: "GPL".into(),
        name: name.into(),
        ..ProgLoadSpec::default()
    };
    Arc::new(Program::load(spec, maps).unwrap_or_else(|e| panic!("vm load {name}: {e}")))
}

// ------------------------------------------------------------ generator

/// Blasts 64-byte UDP frames out of `vb` until `stop`; counts what was sent.
fn generator(
    ns: PathBuf,
    ifindex: u32,
    dst_mac: [u8; 6],
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        bpftime_netdev::netns::enter(&ns).expect("setns");
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[8, 0]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 77, 0, 2]);
        f[30..34].copy_from_slice(&[10, 77, 0, 1]);
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&9u16.to_be_bytes());
        f[38..40].copy_from_slice(&26u16.to_be_bytes());
        let mut sum = 0u32;
        for c in f[14..34].chunks(2) {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        // SAFETY: plain socket creation, checked.
        let s = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(s >= 0);
        // SAFETY: s is ours.
        let sock = unsafe { OwnedFd::from_raw_fd(s) };
        let one: i32 = 1;
        // SAFETY: live int option of the size passed.
        unsafe {
            libc::setsockopt(
                s,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one as *const i32 as *const libc::c_void,
                4,
            )
        };
        // SAFETY: all-zero sockaddr_ll is valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = ifindex as i32;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&dst_mac);
        const B: usize = 64;
        let mut iov = [libc::iovec {
            iov_base: f.as_mut_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        }; B];
        // SAFETY: all-zero mmsghdr is valid; fields are filled below.
        let mut msgs: [libc::mmsghdr; B] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_name = &mut sa as *mut _ as *mut libc::c_void;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: msgs/iov/sa/f are live for the call.
            let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), B as u32, 0) };
            if n > 0 {
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    })
}

/// Busy CPU time of the machine (all CPUs), in ns.
fn machine_busy_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap();
    let l = s.lines().next().unwrap();
    let v: Vec<u64> = l
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    busy * 1_000_000_000 / hz
}

/// CPU time of this process's threads whose name starts with `prefix`, in ns.
fn threads_cpu_ns(prefix: &str) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut t = 0;
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let st = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let rest = &st[st.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        t += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    t * 1_000_000_000 / hz
}

struct NoopDrop;
impl XdpProgram for NoopDrop {
    fn run(&self, _ctx: &mut XdpCtx, _cpu: u32) -> (u32, RedirectInfo) {
        (bpftime_vm::run::XDP_DROP, RedirectInfo::default())
    }
    fn name(&self) -> &str {
        "noop_drop"
    }
}

struct Row {
    name: &'static str,
    pps: f64,
    offered: f64,
    machine_ns: f64,
    worker_ns: f64,
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture (release build)"]
fn bench_dataplane() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns]) {
        return;
    }
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let a = Ns::new();
    let b = Ns::new();
    sh(&[
        "ip", "link", "add", "va", "netns", &a.0, "type", "veth", "peer", "name", "vb", "netns",
        &b.0,
    ]);
    sh(&["ip", "-n", &a.0, "link", "set", "va", "up"]);
    sh(&["ip", "-n", &b.0, "link", "set", "vb", "up"]);
    let ifa: u32 = sh(&["ip", "-n", &a.0, "-o", "link", "show", "va"])
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ifb: u32 = sh(&["ip", "-n", &b.0, "-o", "link", "show", "vb"])
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let l = sh(&["ip", "-n", &a.0, "-o", "link", "show", "va"]);
    let i = l.find("link/ether ").unwrap() + 11;
    let mut mac = [0u8; 6];
    for (k, p) in l[i..i + 17].split(':').enumerate() {
        mac[k] = u8::from_str_radix(p, 16).unwrap();
    }

    let measure = |name: &'static str, count: &dyn Fn() -> u64| -> Row {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let g = generator(b.path(), ifb, mac, stop.clone(), sent.clone());
        std::thread::sleep(Duration::from_millis(500)); // warm up
        let (c0, s0, m0, w0, t0) = (
            count(),
            sent.load(Ordering::Relaxed),
            machine_busy_ns(),
            threads_cpu_ns("xdp-"),
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs(secs));
        let (c1, s1, m1, w1, dt) = (
            count(),
            sent.load(Ordering::Relaxed),
            machine_busy_ns(),
            threads_cpu_ns("xdp-"),
            t0.elapsed().as_secs_f64(),
        );
        stop.store(true, Ordering::Relaxed);
        g.join().unwrap();
        let n = (c1 - c0).max(1) as f64;
        Row {
            name,
            pps: n / dt,
            offered: (s1 - s0) as f64 / dt,
            machine_ns: (m1 - m0) as f64 / n,
            worker_ns: (w1 - w0) as f64 / n,
        }
    };
    let mut rows = Vec::new();

    // Kernel XDP, native mode.
    for (name, insns) in [
        ("kernel XDP drop (native)", drop_prog()),
        ("kernel XDP parse+count (native)", parse_count_prog(-1)),
    ] {
        let map = kernel_array_map();
        let insns = if insns.len() > 2 {
            parse_count_prog(map.as_raw_fd())
        } else {
            insns
        };
        let prog = kernel_prog(&insns);
        let link = in_ns(a.path(), move || kernel_attach(&prog, ifa));
        rows.push(measure(name, &|| a.rx_packets("va")));
        drop(link);
        eprintln!("  {name}: {:.0} pps", rows.last().unwrap().pps);
    }

    // The data plane.
    let dp = Dataplane::new();
    let vm_map = maps::create(&MapAttr {
        map_type: maps::map_type::ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: 256,
        ..MapAttr::default()
    })
    .unwrap();
    let resolver = OneMap(1000, vm_map.clone());
    let scenarios: Vec<(&'static str, Arc<dyn XdpProgram>)> = vec![
        ("AF_XDP rx-drop, no program", Arc::new(NoopDrop)),
        (
            "bpftime drop (VM interpreter)",
            Arc::new(bpftime_netdev::VmProgram::new(vm_prog(
                "drop",
                &drop_prog(),
                &resolver,
            ))),
        ),
        (
            "bpftime parse+count (VM interpreter)",
            Arc::new(bpftime_netdev::VmProgram::new(vm_prog(
                "parse_count",
                &parse_count_prog(1000),
                &resolver,
            ))),
        ),
    ];
    for (name, p) in scenarios {
        let id = dp
            .attach(AttachSpec {
                netns: Some(a.path()),
                ifindex: ifa,
                mode: XdpMode::Drv,
                program: p,
                queues: None,
                cpu_pinning: false,
            })
            .unwrap_or_else(|e| panic!("attach {name}: {e:?}"));
        rows.push(measure(name, &|| dp.stats(id).unwrap().total.rx_packets));
        let st = dp.stats(id).unwrap();
        eprintln!("  {name}: {:?}", st.total);
        dp.detach(id).unwrap();
    }
    let mut v = [0u8; 8];
    vm_map.sys_lookup(&9u32.to_ne_bytes(), &mut v, 0).unwrap();
    assert!(
        u64::from_ne_bytes(v) > 0,
        "the VM parse+count program counted nothing"
    );

    // The program alone, in process: ns per run on one 60-byte frame in a 4 KiB buffer.
    let mut buf = vec![0u8; 4096];
    buf[256..256 + 14].copy_from_slice(&[
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 2, 0, 0, 0, 0, 2, 8, 0,
    ]);
    buf[256 + 14] = 0x45;
    buf[256 + 23] = 17;
    buf[256 + 37] = 9;
    let base = buf.as_mut_ptr() as u64;
    let progs: Vec<(&str, Arc<dyn XdpProgram>)> = vec![
        ("no-op closure", Arc::new(NoopDrop)),
        (
            "VM drop",
            Arc::new(bpftime_netdev::VmProgram::new(vm_prog(
                "drop",
                &drop_prog(),
                &resolver,
            ))),
        ),
        (
            "VM parse+count",
            Arc::new(bpftime_netdev::VmProgram::new(vm_prog(
                "parse_count",
                &parse_count_prog(1000),
                &resolver,
            ))),
        ),
    ];
    println!("\nprogram alone (in process, 60-byte frame):");
    for (name, p) in progs {
        let n = 2_000_000u32;
        let t = Instant::now();
        for _ in 0..n {
            let mut ctx = XdpCtx {
                data: base + 256,
                data_end: base + 316,
                data_meta: base + 256,
                ingress_ifindex: ifa,
                hard_start: base,
                frame_end: base + 4096 - 320,
                ..XdpCtx::default()
            };
            std::hint::black_box(p.run(&mut ctx, 0));
        }
        println!(
            "  {name:<20} {:>8.1} ns/run",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }

    let raw = rows[2].pps;
    println!(
        "\n{:<40} {:>12} {:>12} {:>10} {:>14} {:>14}",
        "scenario (64-byte UDP, veth, 1 queue)",
        "pps",
        "offered pps",
        "vs raw",
        "machine ns/pkt",
        "worker ns/pkt"
    );
    for r in &rows {
        println!(
            "{:<40} {:>12.0} {:>12.0} {:>9.1}% {:>14.0} {:>14.0}",
            r.name,
            r.pps,
            r.offered,
            100.0 * r.pps / raw,
            r.machine_ns,
            r.worker_ns
        );
    }
    println!("(BENCH_SECS={secs}; machine ns/pkt = busy CPU time of all CPUs incl. the generator / frames processed)");
}
