//! `bpftime top` in a real terminal (tmux, 80x24): with frames flowing through a veth
//! whose XDP program runs in bpftime, the view shows the interface's rate moving and the
//! program, the sort key follows `s`, and `q` quits cleanly.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bpftime_tests::corpus::{self, Flavour};
use bpftime_tests::netns::VethPair;
use bpftime_tests::packets::Builder;
use bpftime_tests::privilege::{require, Need};
use common::*;

struct Tmux(String);

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("bpftime-top-{}-{nanos}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "80",
                "-y",
                "24",
                cmd,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session");
        Tmux(name)
    }
    fn screen(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn keys(&self, k: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.0, k])
            .status()
            .unwrap();
    }
    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .output()
            .unwrap()
            .status
            .success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn top_shows_traffic_and_quits() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf, Need::Tool("tmux")]) {
        return;
    }
    let d = Daemon::start();
    let pair = VethPair::new("top").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let obj = corpus::object("pass_all", Flavour::V3);
    let obj = obj.to_str().unwrap();
    d.ip_link_set_in(
        pair.b.name(),
        &pair.if_b,
        &["xdpgeneric", "obj", obj, "sec", "xdp"],
    );
    // Frames at ~500/s for as long as the test looks.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        let tx = pair.a.packet_socket(&pair.if_a).unwrap();
        let frame = Builder::ipv4([10, 77, 0, 1], [10, 77, 0, 2])
            .macs(pair.mac_a, pair.mac_b)
            .udp(7001, 9)
            .payload(vec![1; 64])
            .build();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = tx.send(&frame);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let top = Tmux::start(&format!(
        "{} --socket {} top",
        bin("bpftime").display(),
        d.socket.display()
    ));
    // The interface row shows a non-zero rx rate within a few refreshes.
    let t0 = Instant::now();
    let screen = loop {
        std::thread::sleep(Duration::from_millis(500));
        let s = top.screen();
        let moving = s.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 4 && f[0] == pair.if_b && f[1] == "*" && f[3] != "0"
        });
        if moving {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no rate shown:\n{s}\n{}",
            d.log()
        );
    };
    assert!(screen.contains("pass_all"), "{screen}");
    assert!(screen.lines().count() <= 24 && screen.lines().all(|l| l.chars().count() <= 80));
    top.keys("s");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(top.screen().contains("sort drop/s"), "{}", top.screen());
    top.keys("q");
    let t0 = Instant::now();
    while top.alive() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "top did not quit:\n{}",
            top.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
}
