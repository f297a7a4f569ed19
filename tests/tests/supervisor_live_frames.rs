//! BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: a C client (tests/clients/sv_live.c)
//! runs `return XDP_PASS;` and `return XDP_TX;` live, with repeat N, on a frame as
//! received on the veth of namespace `a`, natively and under bpftime-run. The frames
//! arrive in both worlds in the same numbers (PASS: into a's stack, seen by a packet
//! socket on veth-a; TX: out of veth-a to veth-b, which has an XDP program so that veth
//! takes frames of ndo_xdp_xmit), and the client's results and errnos are equal.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

const MARKER: &[u8] = b"BPFTIMELIVE";

fn marked(f: &[u8]) -> bool {
    f.len() >= 14 + MARKER.len() && f[12..14] == [0x88, 0xb5] && &f[14..14 + MARKER.len()] == MARKER
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Kills the `sv_live hold` child (closing its stdin ends it).
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the client in namespace a (natively or under bpftime-run) while counting the
/// marked frames arriving on veth-b in b (`count_in_b`) or veth-a in a.
fn run_and_count(
    pair: &VethPair,
    daemon: Option<&Daemon>,
    client: &str,
    verdict: &str,
    repeat: u32,
    count_in_b: bool,
) -> (String, usize) {
    let (ns, ifn) = if count_in_b {
        (&pair.b, &pair.if_b)
    } else {
        (&pair.a, &pair.if_a)
    };
    let sock = ns.packet_socket(ifn).expect("packet socket");
    let args = [
        "run".to_string(),
        pair.ifindex_a.to_string(),
        mac(&pair.mac_a),
        verdict.to_string(),
        repeat.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out: Output = match daemon {
        None => pair.a.command(client, &args).output().unwrap(),
        Some(d) => {
            let run = bin("bpftime-run");
            let sockp = d.socket.to_str().unwrap().to_string();
            let mut full = vec!["--socket", &sockp, "--", client];
            full.extend(&args);
            pair.a
                .command(run.to_str().unwrap(), &full)
                .output()
                .unwrap()
        }
    };
    let text = stdout_ok(&out, "sv_live run");
    let n = sock
        .count_matching(Duration::from_millis(400), marked)
        .unwrap();
    (text, n)
}

fn compare(verdict: &str, count_in_b: bool, tag: &str) {
    if !require(&[Need::Root, Need::Bpf, Need::Netns]) {
        return;
    }
    let tmp = TempDir::new(tag);
    let client = gcc(tmp.path(), "sv_live.c", "sv_live", false, &[]);
    let client = client.to_str().unwrap();
    let pair = VethPair::new(tag).expect("veth pair");
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let _holder = count_in_b.then(|| {
        let mut c = pair
            .b
            .command(client, &["hold", &pair.ifindex_b.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(c.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "attached", "XDP on the peer");
        Holder(c)
    });
    const N: u32 = 20;
    let redirect = format!("r{}", pair.ifindex_a);
    let verdict = if verdict == "redirect" {
        redirect.as_str()
    } else {
        verdict
    };
    let (native, n_native) = run_and_count(&pair, None, client, verdict, N, count_in_b);
    assert!(
        native.contains("live run: 0 retval 0 size_out 60"),
        "kernel answer changed:\n{native}"
    );
    assert_eq!(
        n_native as u32, N,
        "kernel delivered {n_native} frames:\n{native}"
    );
    let d = Daemon::start();
    let (ours, n_ours) = run_and_count(&pair, Some(&d), client, verdict, N, count_in_b);
    assert_eq!(native, ours, "client output differs (kernel, then bpftime)");
    assert_eq!(
        n_ours,
        n_native,
        "frames delivered under bpftime-run:\n{}",
        d.log()
    );
}

#[test]
fn live_frames_pass_enter_the_stack_like_the_kernel() {
    compare("2", false, "livepass");
}

#[test]
fn live_frames_tx_leave_the_device_like_the_kernel() {
    compare("3", true, "livetx");
}

#[test]
fn live_frames_redirect_leave_the_target_like_the_kernel() {
    // bpf_redirect to veth-a itself: out to veth-b.
    compare("redirect", true, "liveredir");
}
