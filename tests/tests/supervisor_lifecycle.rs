//! Lifetimes: a target SIGKILLed in the middle of a stream of bpf() calls and a target
//! that forks and exits leave the daemon serving the others, with no leaked object.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bpftime_tests::privilege::{require, Need};
use common::*;

/// The pid of the target bpftime-run forked (its only child).
fn target_of(run_pid: u32) -> u32 {
    let t0 = Instant::now();
    loop {
        let c = std::fs::read_to_string(format!("/proc/{run_pid}/task/{run_pid}/children"))
            .unwrap_or_default();
        if let Some(p) = c.split_whitespace().next() {
            return p.parse().unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no target under bpftime-run {run_pid}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_maps(d: &Daemon, want: usize) -> usize {
    let t0 = Instant::now();
    loop {
        let n = d.counts().1;
        if n == want || t0.elapsed() > Duration::from_secs(6) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_and_forking_targets_leak_nothing() {
    if !require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let tmp = TempDir::new("lifecycle");
    let client = gcc(tmp.path(), "sv_stress.c", "sv_stress", false, &["-lbpf"]);
    let client = client.to_str().unwrap();
    let d = Daemon::start();

    // A long-lived target holding two maps.
    let mut keeper = d
        .run_cmd(&[client, "keep"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(keeper.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready 1 1");
    assert_eq!(wait_maps(&d, 2), 2);

    // A target streaming map creations, killed mid-stream.
    let mut streamer = d
        .run_cmd(&[client, "stream"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let target = target_of(streamer.id());
    let mut out = BufReader::new(streamer.stdout.take().unwrap());
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "streamer ended early"
        );
        let n: u64 = line
            .trim()
            .strip_prefix("n ")
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        if n >= 300 {
            break;
        }
    }
    // SAFETY: kill(2) on a pid of our own target.
    assert_eq!(unsafe { libc::kill(target as i32, libc::SIGKILL) }, 0);
    let st = streamer.wait().unwrap();
    assert_eq!(
        st.code(),
        Some(128 + 9),
        "bpftime-run must report the signal"
    );
    assert_eq!(
        wait_maps(&d, 2),
        2,
        "objects of the killed target leaked: {}",
        d.status()
    );

    // A target that forks and exits: the child keeps the map alive, then it goes.
    let log = tmp.path().join("fork.out");
    let f = std::fs::File::create(&log).unwrap();
    let st = d
        .run_cmd(&[client, "fork", "700"])
        .stdout(f)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        d.counts().1,
        3,
        "the forked child's map must stay alive: {}",
        d.status()
    );
    assert_eq!(
        wait_maps(&d, 2),
        2,
        "the forked child's map leaked: {}",
        d.status()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("child lookup 0 42"),
        "forked child was not served:\n{text}"
    );

    // The daemon still serves: the keeper's maps are intact and a new target works.
    let out = d.run(&[client, "fork", "0"]);
    assert!(out.status.success());
    drop(keeper.stdin.take());
    assert!(keeper.wait().unwrap().success());
    assert_eq!(
        d.wait_empty(Duration::from_secs(6)),
        (0, 0, 0, 0),
        "leak: {}",
        d.status()
    );
}

/// A long call of one thread (a test run of 10^7 repeats) does not hold up the map
/// updates of another thread of the same target, natively and under bpftime-run.
#[test]
fn a_long_call_does_not_hold_up_other_threads() {
    if !require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let tmp = TempDir::new("parallel");
    let client = gcc(
        tmp.path(),
        "sv_parallel.c",
        "sv_parallel",
        false,
        &["-lbpf", "-pthread"],
    );
    let c = client.to_str().unwrap();
    let want = "a_ok 1\nb_done_while_a_runs 1\nb_updates 0";
    let native = stdout_ok(
        &std::process::Command::new(c).output().unwrap(),
        "native client",
    );
    let sorted = |s: &str| {
        let mut l: Vec<&str> = s.lines().collect();
        l.sort();
        l.join("\n")
    };
    assert_eq!(sorted(&native), want, "the kernel's answer changed");
    let d = Daemon::start();
    let ours = stdout_ok(&d.run(&[c]), "client under bpftime-run");
    assert_eq!(sorted(&ours), want, "{}", d.log());
}
