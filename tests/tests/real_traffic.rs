//! Real traffic through an XDP program on a veth left with its default offloads (TX
//! checksum offload, TSO/GSO on), once on the kernel and once under bpftime-run, with
//! the same unmodified loader (`ip link set dev veth-b xdpgeneric|xdpdrv obj ...`).
//! Whatever the kernel delivers, bpftime must deliver, byte for byte:
//! - UDP bursts over IPv4, IPv6 and a VLAN, from sockets of the peer (their checksums
//!   are left to offload: CHECKSUM_PARTIAL, see netdev/src/csum.rs);
//! - ICMP echo;
//! - a TCP transfer, its bytes hashed on both ends (in generic mode the kernel hands
//!   XDP 64 KiB GSO super-frames: bpftime takes them as AF_XDP descriptor chains);
//! - a NAT program that rewrites the destination address and port with incremental
//!   checksum updates.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bpftime_tests::netns::{Netns, VethPair};
use bpftime_tests::privilege::{require, Need};
use common::*;

/// What one run delivered.
#[derive(Debug, PartialEq, Eq)]
struct Delivered {
    udp4: usize,
    udp6: usize,
    vlan: Option<usize>,
    ping: usize,
    tcp: Option<(usize, u64)>,
    nat: usize,
}

const BURST: usize = 50;

/// FNV-1a over a byte stream.
fn fnv(h: &mut u64, b: &[u8]) {
    for &x in b {
        *h = (*h ^ x as u64).wrapping_mul(0x100_0000_01b3);
    }
}

/// Sends BURST datagrams of distinct payloads from `src` to `dst`, receives on `rx`
/// and counts those that arrived intact.
fn udp_burst(src: &UdpSocket, rx: &UdpSocket, dst: SocketAddr, tag: u8) -> usize {
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let payload = |i: usize| -> Vec<u8> {
        (0..600 + i * 13)
            .map(|j| (j as u8) ^ (i as u8) ^ tag)
            .collect()
    };
    for i in 0..BURST {
        src.send_to(&payload(i), dst).unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
    let mut got = 0;
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = rx.recv(&mut buf) {
        let i = (n - 600) / 13;
        if i < BURST && buf[..n] == payload(i)[..] {
            got += 1;
        }
        if got == BURST {
            break;
        }
    }
    got
}

fn ping(pair: &VethPair, count: u32) -> usize {
    ping_sized(pair, count, 56)
}

/// [`ping`] with `size` bytes of ICMP payload.
fn ping_sized(pair: &VethPair, count: u32, size: usize) -> usize {
    let out = pair
        .a
        .command(
            "ping",
            &[
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                "0.02",
                "-W",
                "1",
                "-s",
                &size.to_string(),
                "10.77.0.2",
            ],
        )
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    s.split(',')
        .find(|p| p.contains("received"))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `len` bytes over TCP from a to b; (bytes received, hash) as b saw them.
fn tcp_transfer(pair: &VethPair, len: usize) -> (usize, u64) {
    let listener = pair
        .b
        .run(|| TcpListener::bind("10.77.0.2:7100").unwrap())
        .unwrap();
    let rx = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut n = 0;
        let mut buf = vec![0u8; 65536];
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            fnv(&mut h, &buf[..k]);
            n += k;
        }
        (n, h)
    });
    let s = pair
        .a
        .run(|| {
            TcpStream::connect_timeout(&"10.77.0.2:7100".parse().unwrap(), Duration::from_secs(5))
        })
        .unwrap();
    if let Ok(mut s) = s {
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut sent = 0;
        while sent < len {
            let k = chunk.len().min(len - sent);
            if s.write_all(&chunk[..k]).is_err() {
                break;
            }
            sent += k;
        }
    }
    rx.join().unwrap()
}

fn expected_tcp_hash(len: usize) -> u64 {
    let chunk: Vec<u8> = (0..65536u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut sent = 0;
    while sent < len {
        let k = chunk.len().min(len - sent);
        fnv(&mut h, &chunk[..k]);
        sent += k;
    }
    h
}

/// rt_progs.bpf.c built in a scratch directory (which lives as long as the TempDir).
fn rt_obj(tag: &str) -> (TempDir, String) {
    let tmp = TempDir::new(tag);
    let obj = clang_bpf(tmp.path(), "rt_progs.bpf.c", "rt_progs.o");
    let obj = obj.to_str().expect("utf-8 path").to_string();
    (tmp, obj)
}

/// Bytes of the TCP transfer (both modes).
const TCP_LEN: usize = 100 << 20;

/// `ip -n NS link set dev veth-b MODE obj OBJ sec SEC`, natively or under bpftime-run
/// (ip -n enters the namespace itself, so the attach is resolved there): the command as
/// text and its output.
fn ip_xdp_run(d: Option<&Daemon>, pair: &VethPair, dev: &str, args: &[&str]) -> (String, Output) {
    let all = [
        &["ip", "-n", pair.b.name(), "link", "set", "dev", dev][..],
        args,
    ]
    .concat();
    let out = match d {
        None => Command::new(all[0]).args(&all[1..]).output().unwrap(),
        Some(d) => d.run(&all),
    };
    (all.join(" "), out)
}

/// [`ip_xdp_run`], which must succeed.
fn ip_xdp(d: Option<&Daemon>, pair: &VethPair, dev: &str, args: &[&str]) {
    let (cmd, out) = ip_xdp_run(d, pair, dev, args);
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`ip_xdp`] for the benchmark: an attach right after a detach under load was seen to
/// answer EBUSY now and then (under investigation, see the issue notes); retried up to
/// 10 times, 100 ms apart, and said on stderr when it was.
fn ip_xdp_retrying(d: Option<&Daemon>, pair: &VethPair, dev: &str, args: &[&str]) {
    for attempt in 0..10 {
        let (cmd, out) = ip_xdp_run(d, pair, dev, args);
        if out.status.success() {
            return;
        }
        eprintln!(
            "{cmd} (attempt {attempt}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("ip_xdp {args:?} kept failing");
}

/// SO_BINDTODEVICE: the socket only takes datagrams received on `dev`, so a frame
/// passed back into the stack must arrive as received on the interface itself.
fn bound_to_device(s: UdpSocket, dev: &str) -> UdpSocket {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt with a live buffer of dev.len() bytes.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            dev.as_ptr().cast(),
            dev.len() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_BINDTODEVICE {dev}");
    s
}

fn run_case(
    d: Option<&Daemon>,
    pair: &VethPair,
    obj: &Path,
    mode: &str,
    with_vlan: bool,
) -> Delivered {
    let obj = obj.to_str().unwrap();
    let dev = &pair.if_b;
    ip_xdp(d, pair, dev, &[mode, "obj", obj, "sec", "xdp"]);
    // Sockets: receivers in b, senders in a (the senders' checksums go to offload).
    let (rx4, rx6, rxv, rxnat) = pair
        .b
        .run(|| {
            (
                bound_to_device(UdpSocket::bind("10.77.0.2:7001").unwrap(), "veth-b"),
                UdpSocket::bind("[fd77::2]:7001").unwrap(),
                with_vlan.then(|| UdpSocket::bind("10.78.5.2:7001").unwrap()),
                UdpSocket::bind("10.77.0.2:7000").unwrap(),
            )
        })
        .unwrap();
    let (tx4, tx6) = pair
        .a
        .run(|| {
            (
                UdpSocket::bind("0.0.0.0:0").unwrap(),
                UdpSocket::bind("[::]:0").unwrap(),
            )
        })
        .unwrap();
    let to = |ip: &str| SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 7001);
    let udp4 = udp_burst(&tx4, &rx4, to("10.77.0.2"), 1);
    let udp6 = udp_burst(&tx6, &rx6, to("fd77::2"), 2);
    let vlan = rxv.map(|rxv| udp_burst(&tx4, &rxv, to("10.78.5.2"), 3));
    let ping = ping(pair, 20);
    let tcp = Some(tcp_transfer(pair, TCP_LEN));
    ip_xdp(d, pair, dev, &[mode, "off"]);
    // The NAT program: datagrams to 10.77.0.99:9999 arrive at 10.77.0.2:7000.
    ip_xdp(d, pair, dev, &[mode, "obj", obj, "sec", "xdp/nat"]);
    let nat_dst = SocketAddr::new("10.77.0.99".parse().unwrap(), 9999);
    let nat = udp_burst(&tx4, &rxnat, nat_dst, 4);
    ip_xdp(d, pair, dev, &[mode, "off"]);
    Delivered {
        udp4,
        udp6,
        vlan,
        ping,
        tcp,
        nat,
    }
}

#[test]
fn default_offloads_deliver_what_the_kernel_delivers() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Fuse, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("real_traffic");
    let obj = clang_bpf(tmp.path(), "rt_progs.bpf.c", "rt_progs.o");
    let pair = VethPair::new("rtraffic").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    // A VLAN (id 5) over the veth, where the kernel has 802.1Q (CONFIG_VLAN_8021Q; this
    // project's CI kernel has not: then the tagged case is left to csum's unit tests).
    let mut vlan = true;
    for (ns, ifn, addr) in [
        (&pair.a, &pair.if_a, "10.78.5.1/24"),
        (&pair.b, &pair.if_b, "10.78.5.2/24"),
    ] {
        let v = format!("{ifn}.5");
        if ns
            .ip(&[
                "link", "add", "link", ifn, "name", &v, "type", "vlan", "id", "5",
            ])
            .is_err()
        {
            eprintln!("no 802.1Q devices in this kernel: the VLAN case does not run");
            vlan = false;
            break;
        }
        ns.ip(&["addr", "add", addr, "dev", &v]).unwrap();
        ns.ip(&["link", "set", &v, "up"]).unwrap();
    }
    let mac_b = pair
        .mac_b
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    pair.a
        .ip(&[
            "neigh",
            "add",
            "10.77.0.99",
            "lladdr",
            &mac_b,
            "dev",
            &pair.if_a,
        ])
        .unwrap();
    // The offloads stay as veth has them.
    let feats = pair
        .a
        .command("ethtool", &["-k", &pair.if_a])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !feats.is_empty() {
        assert!(feats.contains("tx-checksumming: on"), "{feats}");
    }

    let d = Daemon::start();
    let mut table = String::new();
    for mode in ["xdpgeneric", "xdpdrv"] {
        let kernel = run_case(None, &pair, &obj, mode, vlan);
        let ours = run_case(Some(&d), &pair, &obj, mode, vlan);
        table += &format!("{mode}: kernel {kernel:?}\n{mode}: bpftime {ours:?}\n");
        // The kernel delivers everything here; the comparison is the test.
        assert_eq!(kernel.udp4, BURST, "{table}");
        assert_eq!(ours, kernel, "{table}\ndaemon log:\n{}", d.log());
        assert_eq!(
            ours.tcp,
            Some((TCP_LEN, expected_tcp_hash(TCP_LEN))),
            "{table}"
        );
    }
    eprintln!("{table}");
    let st = d.status();
    assert_eq!(
        st["attachments"].as_array().map(|a| a.len()),
        Some(0),
        "{st}"
    );
}

/// RTTs of `count` pings at `interval` seconds, in µs, sorted.
fn ping_rtts(pair: &VethPair, count: u32, interval: &str) -> Vec<f64> {
    let out = pair
        .a
        .command(
            "ping",
            &[
                "-n",
                "-c",
                &count.to_string(),
                "-i",
                interval,
                "-W",
                "1",
                "10.77.0.2",
            ],
        )
        .output()
        .unwrap();
    let mut v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// iperf3 TCP from a to b for `secs` over `streams` connections: (Mbit/s received,
/// retransmits).
fn iperf(pair: &VethPair, secs: u32, streams: u32) -> (f64, u64) {
    let mut server = pair
        .b
        .command("iperf3", &["-s", "-1", "-B", "10.77.0.2"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = pair
        .a
        .command(
            "timeout",
            &[
                "20",
                "iperf3",
                "-c",
                "10.77.0.2",
                "-t",
                &secs.to_string(),
                "-P",
                &streams.to_string(),
                "-J",
            ],
        )
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let end = &v["end"];
    (
        end["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6,
        end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
    )
}

/// A UDP flood from a to b for `secs` (64-byte datagrams from 4 source ports, so that
/// they spread over the queues, as fast as one sender thread goes) while b counts what
/// its socket receives and a pings b every 10 ms: (datagrams delivered per second, ping
/// RTTs under that load in µs, datagrams sent).
fn udp_flood(pair: &VethPair, secs: f64) -> (f64, Vec<f64>, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let rx = pair
        .b
        .run(|| UdpSocket::bind("10.77.0.2:7100").unwrap())
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let txs: Vec<UdpSocket> = pair
        .a
        .run(|| {
            (0..4)
                .map(|_| UdpSocket::bind("10.77.0.1:0").unwrap())
                .collect()
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, got) = (stop.clone(), got.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if rx.recv(&mut buf).is_ok() {
                    got.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let to: SocketAddr = "10.77.0.2:7100".parse().unwrap();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for tx in &txs {
                    if tx.send_to(&[0x42; 64], to).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let g0 = got.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let rtt = ping_rtts(pair, (secs * 100.0) as u32, "0.01");
    let dt = t0.elapsed().as_secs_f64();
    let delivered = got.load(Ordering::Relaxed) - g0;
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    receiver.join().unwrap();
    (delivered as f64 / dt, rtt, sent)
}

/// (worker CPU ns, frames received) of the daemon's attachment on `dev`, summed over queues.
fn worker_counters(d: &Daemon, dev: &str) -> (u64, u64) {
    let st = d.status();
    st["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["ifname"] == dev)
        .map(|a| {
            (
                a["worker_cpu_ns"].as_u64().unwrap_or(0),
                a["rx_packets"].as_u64().unwrap_or(0),
            )
        })
        .fold((0, 0), |x, y| (x.0 + y.0, x.1 + y.1))
}

/// Kernel XDP vs bpftime, same run, pass-all program on veth-b with default offloads:
/// TCP throughput (iperf3, 4 s), idle ping RTT p50/p99 (100 pings, 20 ms apart), UDP
/// datagrams delivered per second under a one-thread flood with the ping RTT under that
/// load, bpftime's worker CPU per frame, and its CPU use while only the pings come
/// (`cpu%`, 100 = one core); bpftime twice: as started by default, and with
/// `--busy-poll-us always`. Run with
/// `cargo test --release -p bpftime-tests --test real_traffic -- --ignored --nocapture`.
#[test]
#[ignore]
fn traffic_bench() {
    if !require(&[
        Need::Root,
        Need::Bpf,
        Need::Netns,
        Need::Fuse,
        Need::Clang,
        Need::Tool("iperf3"),
    ]) {
        return;
    }
    let (_tmp, obj) = rt_obj("traffic_bench");
    let obj = obj.as_str();
    let d = Daemon::start();
    // The same data plane with adaptive busy polling that never sleeps.
    let d_busy = Daemon::start_with(&["--busy-poll-us", "always"]);
    println!(
        "{:<2} {:<11} {:<12} {:>10} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "q",
        "mode",
        "who",
        "TCP Mbit/s",
        "retr",
        "RTT p50",
        "RTT p99",
        "cpu%",
        "UDP pps",
        "load p50",
        "load p99",
        "ns/frame"
    );
    // TRAFFIC_BENCH_QUEUES=1 TRAFFIC_BENCH_MODES=xdpgeneric: one row group only.
    let list = |var: &str, default: &str| -> Vec<String> {
        let v = std::env::var(var).unwrap_or_else(|_| default.into());
        v.split(',').map(|s| s.trim().to_string()).collect()
    };
    let modes = list("TRAFFIC_BENCH_MODES", "xdpgeneric,xdpdrv");
    for queues in list("TRAFFIC_BENCH_QUEUES", "1,2") {
        let queues: u32 = queues.parse().expect("TRAFFIC_BENCH_QUEUES: numbers");
        let pair = VethPair::with_queues("tbench", queues).unwrap();
        pair.wait_up(Duration::from_secs(5)).unwrap();
        let dev = pair.if_b.clone();
        for mode in modes.iter().map(String::as_str) {
            let (mut kernel_tcp, mut kernel_pps) = (0.0, 0.0);
            for (who, dm) in [
                ("kernel", None),
                ("bpftime", Some(&d)),
                ("bpftime busy", Some(&d_busy)),
            ] {
                let ours = dm.is_some();
                ip_xdp_retrying(dm, &pair, &dev, &[mode, "obj", obj, "sec", "xdp"]);
                let (tcp, retr) = iperf(&pair, 4, queues);
                // Worker CPU while only the pings come (20 per second): the idle cost.
                let (i0, t0) = (dm.map(|d| worker_counters(d, &dev).0), Instant::now());
                let rtt = ping_rtts(&pair, 100, "0.02");
                let idle_cpu = match (i0, dm) {
                    (Some(i0), Some(d)) => format!(
                        "{:.0}",
                        100.0 * (worker_counters(d, &dev).0 - i0) as f64
                            / t0.elapsed().as_nanos() as f64
                    ),
                    _ => "-".into(),
                };
                let (c0, n0) = dm.map_or((0, 0), |d| worker_counters(d, &dev));
                let (pps, load_rtt, _) = udp_flood(&pair, 3.0);
                let (c1, n1) = dm.map_or((0, 0), |d| worker_counters(d, &dev));
                ip_xdp(dm, &pair, &dev, &[mode, "off"]);
                let per_frame = if ours && n1 > n0 {
                    format!("{:.0}", (c1 - c0) as f64 / (n1 - n0) as f64)
                } else {
                    "-".into()
                };
                let ratio = if ours && kernel_tcp > 0.0 {
                    format!(
                        " (TCP {:.1}%, UDP {:.1}% of the kernel)",
                        100.0 * tcp / kernel_tcp,
                        100.0 * pps / kernel_pps
                    )
                } else {
                    String::new()
                };
                if !ours {
                    (kernel_tcp, kernel_pps) = (tcp, pps);
                }
                println!(
                "{queues:<2} {mode:<11} {who:<12} {tcp:>10.0} {retr:>6} {:>7.0}us {:>7.0}us {idle_cpu:>6} {pps:>9.0} {:>7.0}us {:>7.0}us {per_frame:>9}{ratio}",
                pct(&rtt, 0.5),
                pct(&rtt, 0.99),
                pct(&load_rtt, 0.5),
                pct(&load_rtt, 0.99)
            );
            }
        }
    }
}

/// MTU 9000 on both ends, generic mode (native XDP on a veth refuses a program without
/// frags support at this MTU, for the kernel as for bpftime): a TCP transfer arrives
/// whole through bpftime as through the kernel, and so do jumbo pings (8,000 bytes:
/// two AF_XDP frames each way, passed as one packet).
#[test]
fn jumbo_mtu_tcp_in_generic_mode() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Fuse, Need::Clang]) {
        return;
    }
    let (_tmp, obj) = rt_obj("real_traffic_jumbo");
    let obj = obj.as_str();
    let pair = VethPair::new("rtjumbo").unwrap();
    pair.a
        .ip(&["link", "set", &pair.if_a, "mtu", "9000"])
        .unwrap();
    pair.b
        .ip(&["link", "set", &pair.if_b, "mtu", "9000"])
        .unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let d = Daemon::start();
    let dev = pair.if_b.clone();
    let len = 8 << 20;
    let (mut got, mut pings) = (Vec::new(), Vec::new());
    for ours in [false, true] {
        let dm = ours.then_some(&d);
        ip_xdp(dm, &pair, &dev, &["xdpgeneric", "obj", obj, "sec", "xdp"]);
        got.push(tcp_transfer(&pair, len));
        pings.push(ping_sized(&pair, 10, 8000));
        ip_xdp(dm, &pair, &dev, &["xdpgeneric", "off"]);
    }
    assert_eq!(got[0], (len, expected_tcp_hash(len)), "kernel");
    assert_eq!(got[1], got[0], "bpftime vs kernel\n{}", d.log());
    assert_eq!(
        pings,
        [10, 10],
        "jumbo pings (kernel, bpftime)\n{}",
        d.log()
    );
}

/// `--busy-poll-us always`: the worker never sleeps (it uses a core while the interface
/// is idle) and still delivers; by default an idle worker sleeps.
#[test]
fn busy_polling_spins_and_delivers() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Fuse, Need::Clang]) {
        return;
    }
    let (_tmp, obj) = rt_obj("real_traffic_busy");
    let obj = obj.as_str();
    let pair = VethPair::new("rtbusy").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let dev = pair.if_b.clone();
    for (args, busy) in [(&[][..], false), (&["--busy-poll-us", "always"][..], true)] {
        let d = Daemon::start_with(args);
        ip_xdp(
            Some(&d),
            &pair,
            &dev,
            &["xdpgeneric", "obj", obj, "sec", "xdp"],
        );
        assert_eq!(ping(&pair, 5), 5, "busy={busy}\n{}", d.log());
        let (c0, t0) = (worker_counters(&d, &dev).0, Instant::now());
        std::thread::sleep(Duration::from_millis(500));
        let share = (worker_counters(&d, &dev).0 - c0) as f64 / t0.elapsed().as_nanos() as f64;
        ip_xdp(Some(&d), &pair, &dev, &["xdpgeneric", "off"]);
        if busy {
            assert!(
                share > 0.5,
                "a busy-polling worker used {share:.2} of a core"
            );
        } else {
            assert!(share < 0.2, "an idle worker used {share:.2} of a core");
        }
    }
}

/// (RSS KiB, threads, CPU ticks user+system) of process `pid`.
fn proc_usage(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime); `after` starts at field 3.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    (field("VmRSS:"), field("Threads:"), ticks)
}

/// A container host: the pass program attached under bpftime-run to N interfaces at
/// once (one busy veth pair carrying traffic, N-1 idle veths in another namespace),
/// for N in SCALE_BENCH_N (default 1,10,100). Per N: the daemon's RSS and threads, its
/// CPU while all are idle, the attach and detach time per interface (each an `ip link
/// set ... xdpgeneric obj|off` under bpftime-run), and the UDP datagrams per second delivered on the
/// busy interface under a flood, and its TCP throughput. SCALE_BENCH_DAEMON_ARGS: more
/// `bpftime daemon` arguments (e.g. `--umem-frames 256`). Run with
/// `cargo test --release -p bpftime-tests --test real_traffic many_interfaces_bench --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn many_interfaces_bench() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Fuse, Need::Clang]) {
        return;
    }
    let (_tmp, obj) = rt_obj("scale_bench");
    let obj = obj.as_str();
    let ns: Vec<usize> = std::env::var("SCALE_BENCH_N")
        .unwrap_or_else(|_| "1,10,100".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SCALE_BENCH_N: numbers"))
        .collect();
    let hz = 100.0; // USER_HZ
    println!(
        "{:>4} {:>9} {:>12} {:>8} {:>9} {:>13} {:>13} {:>9} {:>10}",
        "ifs",
        "RSS MiB",
        "KiB/idle if",
        "threads",
        "idle cpu%",
        "attach ms/if",
        "detach ms/if",
        "UDP pps",
        "TCP Mbit/s"
    );
    let mut base_rss = None;
    for n in ns {
        let pair = VethPair::new("scbusy").unwrap();
        pair.wait_up(Duration::from_secs(5)).unwrap();
        let idle = Netns::new("scidle").unwrap();
        let idle_ifs: Vec<String> = (1..n).map(|i| format!("si{i}")).collect();
        for name in &idle_ifs {
            idle.ip(&[
                "link",
                "add",
                name,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{name}p"),
            ])
            .unwrap();
            idle.ip(&["link", "set", name, "up"]).unwrap();
            idle.ip(&["link", "set", &format!("{name}p"), "up"])
                .unwrap();
        }
        let args = std::env::var("SCALE_BENCH_DAEMON_ARGS").unwrap_or_default();
        let d = Daemon::start_with(&args.split_whitespace().collect::<Vec<_>>());
        let pid = d.pid().unwrap();
        let t0 = Instant::now();
        ip_xdp(
            Some(&d),
            &pair,
            &pair.if_b,
            &["xdpgeneric", "obj", obj, "sec", "xdp"],
        );
        for name in &idle_ifs {
            let out = d.run_in_netns(
                idle.name(),
                &[
                    "ip",
                    "link",
                    "set",
                    "dev",
                    name,
                    "xdpgeneric",
                    "obj",
                    obj,
                    "sec",
                    "xdp",
                ],
            );
            assert!(out.status.success(), "attach {name}: {out:?}\n{}", d.log());
        }
        let attach_ms = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
        std::thread::sleep(Duration::from_secs(1));
        let (_, _, c0) = proc_usage(pid);
        let t1 = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let (rss, threads, c1) = proc_usage(pid);
        let idle_cpu = 100.0 * (c1 - c0) as f64 / hz / t1.elapsed().as_secs_f64();
        let (pps, _, _) = udp_flood(&pair, 2.0);
        let (tcp, _) = iperf(&pair, 3, 1);
        // Detach the idle ones (each wakes and joins its sleeping worker).
        let t2 = Instant::now();
        for name in &idle_ifs {
            let out = d.run_in_netns(
                idle.name(),
                &["ip", "link", "set", "dev", name, "xdpgeneric", "off"],
            );
            assert!(out.status.success(), "detach {name}: {out:?}\n{}", d.log());
        }
        let detach_ms = if idle_ifs.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{:.1}",
                t2.elapsed().as_secs_f64() * 1e3 / idle_ifs.len() as f64
            )
        };
        let per_if = match base_rss {
            Some(b) if n > 1 => format!("{:.0}", (rss as f64 - b as f64) / (n - 1) as f64),
            _ => "-".into(),
        };
        if n == 1 {
            base_rss = Some(rss);
        }
        println!(
            "{n:>4} {:>9.1} {per_if:>12} {threads:>8} {idle_cpu:>9.1} {attach_ms:>13.1} {detach_ms:>13} {pps:>9.0} {tcp:>10.0}",
            rss as f64 / 1024.0
        );
        drop(d);
    }
}
