//! xdp-tools under bpftime-run with real traffic in namespaces, against the same tool on
//! the kernel: `xdpdump --load-xdp-program` captures through a perf buffer
//! (PERF_EVENT_ARRAY, bpf_perf_event_output with packet bytes); the pcap it writes
//! must hold every frame sent, byte for byte.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bpftime_tests::netns::VethPair;
use bpftime_tests::packets::Builder;
use bpftime_tests::privilege::{require, Need};
use common::*;

/// The frames of a pcap file (classic format, microsecond or nanosecond magic).
fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert!(bytes.len() >= 24, "pcap too short: {} bytes", bytes.len());
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert!(
        matches!(magic, 0xa1b2c3d4 | 0xa1b23c4d),
        "not a little-endian pcap: {magic:#x}"
    );
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16;
        out.push(bytes[off..(off + caplen).min(bytes.len())].to_vec());
        off += caplen;
    }
    out
}

/// Runs `xdpdump --load-xdp-program --use-pcap -i IF -w PCAP` in namespace b (under bpftime-run
/// when `run` is given), sends `frames` from a once it listens, stops it with SIGINT,
/// and returns the frames of the pcap and its summary output.
fn capture(pair: &VethPair, run: Option<&Daemon>, frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, String) {
    let tmp = TempDir::new("xdpdump");
    let pcap = tmp.path().join("out.pcap");
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", pair.b.name()));
    if let Some(d) = run {
        c.arg(bin("bpftime-run"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("--");
    }
    c.args([
        "xdpdump",
        "--load-xdp-program",
        "--use-pcap",
        "-i",
        &pair.if_b,
        "-w",
    ])
    .arg(&pcap)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("xdpdump");
    // xdpdump prints "listening on ..." (to stderr with -w) once its program is attached.
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    let listening = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    let sock = pair.a.packet_socket(&pair.if_a).unwrap();
    if listening {
        for f in frames {
            sock.send(f).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // SIGINT to xdpdump itself (under bpftime-run it is the runner's child).
    let target = run
        .map(|_| {
            let t0 = Instant::now();
            loop {
                let o = Command::new("pgrep")
                    .args(["-P", &child.id().to_string()])
                    .output()
                    .unwrap();
                if let Some(p) = String::from_utf8_lossy(&o.stdout).split_whitespace().next() {
                    break p.to_string();
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "no xdpdump under bpftime-run"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .unwrap_or_else(|| child.id().to_string());
    let _ = Command::new("kill").args(["-INT", &target]).status();
    let st = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    out += &reader.join().unwrap();
    assert!(listening, "xdpdump did not start listening:\n{out}");
    assert!(st.success(), "xdpdump failed ({st}):\n{out}");
    let bytes = std::fs::read(&pcap).unwrap_or_else(|e| panic!("no pcap ({e}):\n{out}"));
    (pcap_frames(&bytes), out)
}

#[test]
fn xdpdump_captures_every_frame_like_the_kernel() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf, Need::Tool("xdpdump")]) {
        return;
    }
    let pair = VethPair::new("xdpdump").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let frames: Vec<Vec<u8>> = (0..20u16)
        .map(|i| {
            Builder::ipv4([10, 77, 0, 1], [10, 77, 0, 2])
                .macs(pair.mac_a, pair.mac_b)
                .udp(5000 + i, 9)
                .payload(vec![i as u8; 10 + 60 * i as usize])
                .build()
        })
        .collect();
    let d = Daemon::start();
    for (who, run) in [("kernel", None), ("bpftime", Some(&d))] {
        let (got, out) = capture(&pair, run, &frames);
        for (i, f) in frames.iter().enumerate() {
            assert!(
                got.iter().any(|g| g == f),
                "{who}: frame {i} ({} bytes) not in the pcap ({} frames):\n{out}\n{}",
                f.len(),
                got.len(),
                d.log()
            );
        }
        assert!(
            out.contains("0 packets dropped by perf ring"),
            "{who}:\n{out}"
        );
    }
}
