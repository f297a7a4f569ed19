//! `bpf_trace_printk` output: the same C client (BPF_PROG_TEST_RUN of a program
//! printing "hi 42\n" and "no newline 7") natively, read from the kernel's
//! /sys/kernel/tracing/trace_pipe, and under bpftime-run, read from the daemon's
//! trace pipe and through `bpftime tracelog`: the lines have the kernel's layout
//! (task name and pid of the caller, CPU, flags, timestamp, event, message, the
//! message's own newline kept).

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

/// Read `path` (non-blocking) until `done` says so or 5 s pass.
fn read_until(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    let t0 = Instant::now();
    let mut buf = [0u8; 8192];
    while t0.elapsed() < Duration::from_secs(5) && !done(&String::from_utf8_lossy(&out)) {
        match f.read(&mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read `path` (non-blocking) until it is empty.
fn drain(path: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = [0u8; 8192];
    while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
}

/// The lines of `pid` (and the blank line a message's own newline makes), with
/// the fields that differ between runs (CPU, flags, timestamp) blanked.
fn lines_of(out: &str, pid: u32) -> Vec<String> {
    let tag = format!("-{pid:<7} [");
    let mut v = Vec::new();
    let mut after_ours = false;
    for l in out.lines() {
        if l.contains(&tag) {
            let (head, msg) = l.split_once(": bpf_trace_printk: ").expect("event name");
            // "<comm:>16>-<pid:<7> [ccc] fffff sssss.uuuuuu"
            let at = head.find(&tag).unwrap();
            assert_eq!(at, 16, "comm right-aligned in 16 columns: {l:?}");
            let rest = &head[at + tag.len()..];
            let ok = rest.len() >= 4 + 6 + 1 + 12
                && rest[..3].bytes().all(|b| b.is_ascii_digit())
                && &rest[3..5] == "] "
                && rest[rest.len() - 7..].starts_with('.');
            assert!(ok, "layout of {l:?}");
            v.push(format!(
                "{}{tag}CPU] FLAGS TIME: bpf_trace_printk: {msg}",
                &head[..at]
            ));
            after_ours = true;
        } else if after_ours && l.is_empty() {
            v.push(String::new());
        } else {
            after_ours = false;
        }
    }
    v
}

fn pid_of(client_out: &str) -> u32 {
    client_out
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("client output {client_out:?}"))
}

/// One test: the kernel's trace_pipe has one reader at a time and reading consumes,
/// so the two cases must not run in parallel processes.
#[test]
fn trace_pipe_like_the_kernels() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang, Need::Netns]) {
        return;
    }
    test_run_lines();
    data_plane_messages();
}

fn test_run_lines() {
    let tmp = TempDir::new("trace");
    let client = gcc(tmp.path(), "sv_trace.c", "sv_trace", false, &[]);
    let c = client.to_str().unwrap();

    // The kernel's trace pipe (tracefs mounted if it is not yet).
    let kpipe = Path::new("/sys/kernel/tracing/trace_pipe");
    if !kpipe.exists() {
        let st = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status()
            .unwrap();
        assert!(st.success(), "cannot mount tracefs");
    }
    let native = stdout_ok(&Command::new(c).output().unwrap(), "native client");
    assert!(native.contains("run 0 retval 2"), "{native}");
    let kpid = pid_of(&native);
    let kout = read_until(kpipe, |s| {
        s.contains(&format!("-{kpid:<7} [")) && s.contains("no newline 7")
    });
    let kernel = lines_of(&kout, kpid);
    assert_eq!(kernel.len(), 3, "kernel trace lines:\n{kout}");

    let d = Daemon::start();
    let pipe = d.dir.path().join("trace_pipe");
    let ours_out = stdout_ok(&d.run(&[c]), "client under bpftime-run");
    assert!(ours_out.contains("run 0 retval 2"), "{ours_out}");
    let opid = pid_of(&ours_out);
    let oout = read_until(&pipe, |s| s.contains("no newline 7"));
    let ours = lines_of(&oout, opid);
    let norm = |v: &[String], pid: u32| -> Vec<String> {
        v.iter()
            .map(|l| l.replace(&format!("-{pid:<7} ["), "-PID     ["))
            .collect()
    };
    assert_eq!(
        norm(&ours, opid),
        norm(&kernel, kpid),
        "kernel:\n{kout}\nbpftime:\n{oout}\ndaemon log:\n{}",
        d.log()
    );

    // `bpftime tracelog` streams the same lines.
    let mut tl = Command::new(bin("bpftime"))
        .args(["--socket", d.socket.to_str().unwrap(), "tracelog"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let again = stdout_ok(&d.run(&[c]), "client under bpftime-run");
    let pid2 = pid_of(&again);
    let mut stdout = tl.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("no newline 7") {
            match stdout.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    let t0 = Instant::now();
    while !reader.is_finished() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = tl.kill();
    let _ = tl.wait();
    let got = reader.join().unwrap();
    assert_eq!(
        norm(&lines_of(&got, pid2), pid2),
        norm(&kernel, kpid),
        "bpftime tracelog printed:\n{got}"
    );

    // `bpftime stop` removes the FIFO with the socket.
    let st = Command::new(bin("bpftime"))
        .args(["--socket", d.socket.to_str().unwrap(), "stop"])
        .output()
        .unwrap();
    stdout_ok(&st, "bpftime stop");
    let t0 = Instant::now();
    while pipe.exists() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pipe.exists(), "trace pipe left after stop");
}

/// The messages of `bpf_printk` lines in `out` (the task columns differ by design in
/// the data plane: the kernel shows the task the softirq interrupted, bpftime the
/// worker thread).
fn messages(out: &str, needle: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(": bpf_trace_printk: ").map(|(_, m)| m))
        .filter(|m| m.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A program attached with `ip link` prints on every ICMP echo request that reaches
/// it: the same messages in the kernel's trace pipe and in bpftime's.
fn data_plane_messages() {
    let tmp = TempDir::new("trace-dp");
    let obj = clang_bpf(tmp.path(), "sv_trace.bpf.c", "sv_trace.bpf.o");
    let obj = obj.to_str().unwrap();
    let pair = VethPair::new("sv_tr").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let dev = pair.if_b.as_str();
    let ip_b = pair.ip_b.to_string();
    let ping = || {
        let out = pair
            .a
            .command("ping", &["-c", "3", "-i", "0.2", "-W", "1", &ip_b])
            .output()
            .unwrap();
        assert!(out.status.success(), "ping failed");
    };
    let kpipe = Path::new("/sys/kernel/tracing/trace_pipe");
    if !kpipe.exists() {
        let st = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status()
            .unwrap();
        assert!(st.success(), "cannot mount tracefs");
    }
    // Drain what earlier runs left in the kernel's pipe.
    drain(kpipe);

    let set = |ip: &dyn Fn(&[&str]) -> std::process::Output, args: &[&str]| {
        let out = ip(args);
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    let native = |args: &[&str]| pair.b.command("ip", args).output().unwrap();
    set(
        &native,
        &[
            "link",
            "set",
            "dev",
            dev,
            "xdpgeneric",
            "obj",
            obj,
            "sec",
            "xdp",
        ],
    );
    ping();
    let kout = read_until(kpipe, |s| messages(s, "icmp echo").len() >= 3);
    set(&native, &["link", "set", "dev", dev, "xdpgeneric", "off"]);
    let kernel = messages(&kout, "icmp echo");
    assert_eq!(kernel.len(), 3, "kernel trace:\n{kout}");
    assert!(kernel[0].starts_with("icmp echo len 98 seq "), "{kernel:?}");

    let d = Daemon::start();
    let run = bin("bpftime-run");
    let sock = d.socket.to_str().unwrap().to_string();
    let ours_ip = |args: &[&str]| {
        let mut all = vec!["--socket", sock.as_str(), "--", "ip"];
        all.extend_from_slice(args);
        pair.b
            .command(run.to_str().unwrap(), &all)
            .output()
            .unwrap()
    };
    set(
        &ours_ip,
        &[
            "link",
            "set",
            "dev",
            dev,
            "xdpgeneric",
            "obj",
            obj,
            "sec",
            "xdp",
        ],
    );
    ping();
    let pipe = d.dir.path().join("trace_pipe");
    let oout = read_until(&pipe, |s| messages(s, "icmp echo").len() >= 3);
    set(&ours_ip, &["link", "set", "dev", dev, "xdpgeneric", "off"]);
    let ours = messages(&oout, "icmp echo");
    // Sequence numbers start at 1 in both runs.
    assert_eq!(
        ours,
        kernel,
        "bpftime trace:\n{oout}\ndaemon log:\n{}",
        d.log()
    );
}
