//! XDP attachment with real tools, kernel vs bpftime, on a veth pair in two namespaces:
//! - examples/xdp-counter (libbpf) attaching with bpf_xdp_attach (netlink) and with
//!   bpf_program__attach_xdp (bpf_link), run with `nsenter --net`: pings from the peer
//!   namespace are counted, `ip link show` and `bpftool net show` report the program;
//! - `bpftool prog load` + `bpftool net attach xdp pinned P dev X [overwrite]`,
//!   `bpftool net show`, `bpftool net detach` with examples/ip-link-drop (ping stops,
//!   then flows again);
//! - unrelated rtnetlink work (`ip addr`, `ip route`, link dumps) is unchanged.
//!
//! Each scenario runs natively and under bpftime-run and the outputs are compared
//! (ids normalised: they differ between the kernel and bpftime).

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bpftime_tests::netns::{unique_name, VethPair};
use bpftime_tests::privilege::{require, Need};
use common::*;

/// `id 123` -> `id N`, `tag 0123...` -> `tag T`, drops ip's `jited` flag.
fn norm(s: &str) -> String {
    let mut out = Vec::new();
    for line in s.lines() {
        let mut kept = Vec::new();
        let mut it = line.split_whitespace();
        while let Some(t) = it.next() {
            match t {
                "id" | "tag" => {
                    it.next();
                    kept.push(format!("{t} _"));
                }
                "jited" => {}
                other => kept.push(other.to_string()),
            }
        }
        out.push(kept.join(" "));
    }
    out.join("\n")
}

/// The lines of `ip link show` that describe XDP (the flags line's xdp word and prog/xdp).
fn xdp_lines(show: &str) -> String {
    let mut v = Vec::new();
    for l in show.lines() {
        for w in ["xdp", "xdpgeneric", "xdpdrv"] {
            if l.split_whitespace().any(|t| t == w) && l.contains("mtu") {
                v.push(format!("flag {w}"));
            }
        }
        if l.trim_start().starts_with("prog/xdp") {
            v.push(norm(l.trim()));
        }
    }
    v.join("; ")
}

fn ping(pair: &VethPair, n: &str) -> bool {
    let ip = pair.ip_b.to_string();
    pair.a
        .command("ping", &["-c", n, "-i", "0.2", "-W", "1", &ip])
        .output()
        .unwrap()
        .status
        .success()
}

/// Runs commands in namespace b natively (`nsenter --net`) or under bpftime-run.
struct In<'a> {
    ns: PathBuf,
    run: Option<(PathBuf, String)>,
    _pair: &'a VethPair,
}

impl In<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.ns.display()));
        if let Some((run, sock)) = &self.run {
            c.arg(run).args(["--socket", sock, "--"]);
        }
        c.args(args);
        c
    }
    fn out(&self, args: &[&str]) -> (bool, String) {
        let o = self.cmd(args).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    }
}

fn contexts<'a>(pair: &'a VethPair, d: &Daemon) -> (In<'a>, In<'a>) {
    let ns = Path::new("/run/netns").join(pair.b.name());
    let native = In {
        ns: ns.clone(),
        run: None,
        _pair: pair,
    };
    let ours = In {
        ns,
        run: Some((bin("bpftime-run"), d.socket.to_str().unwrap().to_string())),
        _pair: pair,
    };
    (native, ours)
}

fn counter_scenario(
    pair: &VethPair,
    at: &In<'_>,
    exe: &Path,
    obj: &Path,
    how: &str,
) -> Vec<String> {
    let pin = format!("/sys/fs/bpf/{}", unique_name("attach_cnt", 40));
    let mut child = at
        .cmd(&[
            exe.to_str().unwrap(),
            obj.to_str().unwrap(),
            &pair.if_b,
            "--attach",
            how,
            "--pin",
            &pin,
            "--seconds",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let mut seen = vec![format!("attached: {}", first.contains("attached to"))];
    if !first.contains("attached to") {
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        seen.push(String::from_utf8_lossy(&o.stderr).into_owned());
        return seen;
    }
    seen.push(format!("ping: {}", ping(pair, "3")));
    let (_, show) = at.out(&["ip", "link", "show", "dev", &pair.if_b]);
    seen.push(format!("ip link show: {}", xdp_lines(&show)));
    let (_, net) = at.out(&["bpftool", "net", "show", "dev", &pair.if_b]);
    seen.push(format!("bpftool net show: {}", norm(&net)));
    let mut last = String::new();
    for l in out.lines() {
        last = l.unwrap();
    }
    let icmp: u64 = last
        .split_whitespace()
        .find_map(|t| t.strip_prefix("icmp="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    seen.push(format!("icmp counted >= 3: {}", icmp >= 3));
    seen.push(format!("exit: {}", child.wait().unwrap().success()));
    // The kernel detaches a link when its last fd closes; bpftime notices the loader's
    // exit asynchronously (its collection runs when the target's listener ends), so
    // allow it a moment.
    let t0 = std::time::Instant::now();
    let after = loop {
        let (_, show) = at.out(&["ip", "link", "show", "dev", &pair.if_b]);
        let x = xdp_lines(&show);
        if x.is_empty() || t0.elapsed() > Duration::from_secs(3) {
            break x;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    seen.push(format!("after exit: '{after}'"));
    let _ = std::fs::remove_file(&pin);
    seen
}

#[test]
fn xdp_counter_netlink_and_link_like_the_kernel() {
    if !require(&[
        Need::Root,
        Need::Bpf,
        Need::Netns,
        Need::Fuse,
        Need::Clang,
        Need::Bpftool,
    ]) {
        return;
    }
    let tmp = TempDir::new("attach_counter");
    let build = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/xdp-counter/build.sh"))
        .env("OUT", tmp.path())
        .output()
        .unwrap();
    stdout_ok(&build, "examples/xdp-counter/build.sh");
    let exe = tmp.path().join("xdp-counter");
    let obj = tmp.path().join("xdp_counter.bpf.o");
    let pair = VethPair::new("att_cnt").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    assert!(ping(&pair, "1"));
    let d = Daemon::start();
    let (native, ours) = contexts(&pair, &d);
    for how in ["netlink", "link"] {
        let k = counter_scenario(&pair, &native, &exe, &obj, how);
        assert_eq!(k[0], "attached: true", "kernel ({how}): {k:?}");
        assert!(k[3].contains("driver id _"), "kernel ({how}): {k:?}");
        let o = counter_scenario(&pair, &ours, &exe, &obj, how);
        assert_eq!(k, o, "{how}: kernel vs bpftime; daemon log:\n{}", d.log());
    }
    assert_eq!(
        d.wait_empty(Duration::from_secs(5)),
        (0, 0, 0, 0),
        "{}",
        d.status()
    );
    assert_eq!(
        d.status()["attachments"].as_array().map(|a| a.len()),
        Some(0)
    );
}

fn bpftool_scenario(pair: &VethPair, at: &In<'_>, obj: &Path) -> Vec<String> {
    let pin = format!("/sys/fs/bpf/{}", unique_name("attach_drop", 40));
    let dev = pair.if_b.as_str();
    let mut seen = Vec::new();
    let (ok, out) = at.out(&["bpftool", "prog", "load", obj.to_str().unwrap(), &pin]);
    seen.push(format!("load: {ok}"));
    if !ok {
        seen.push(out);
        return seen;
    }
    let (ok, _) = at.out(&[
        "bpftool", "net", "attach", "xdp", "pinned", &pin, "dev", dev,
    ]);
    seen.push(format!("attach: {ok}"));
    seen.push(format!(
        "show: {}",
        norm(&at.out(&["bpftool", "net", "show", "dev", dev]).1)
    ));
    seen.push(format!("ping with drop_icmp: {}", ping(pair, "2")));
    let (ok, out) = at.out(&[
        "bpftool", "net", "attach", "xdp", "pinned", &pin, "dev", dev,
    ]);
    seen.push(format!("attach again: {ok} {}", out.trim()));
    let (ok, _) = at.out(&[
        "bpftool",
        "net",
        "attach",
        "xdp",
        "pinned",
        &pin,
        "dev",
        dev,
        "overwrite",
    ]);
    seen.push(format!("overwrite: {ok}"));
    let (ok, _) = at.out(&[
        "bpftool",
        "net",
        "attach",
        "xdpgeneric",
        "pinned",
        &pin,
        "dev",
        dev,
    ]);
    seen.push(format!("xdpgeneric over xdp: {ok}"));
    let (ok, _) = at.out(&["bpftool", "net", "detach", "xdp", "dev", dev]);
    seen.push(format!("detach: {ok}"));
    seen.push(format!(
        "show after: {}",
        norm(&at.out(&["bpftool", "net", "show", "dev", dev]).1)
    ));
    seen.push(format!("ping after detach: {}", ping(pair, "1")));
    // The program stays pinned: a netlink attachment of it again, then detached.
    let (ok, _) = at.out(&[
        "bpftool",
        "net",
        "attach",
        "xdpgeneric",
        "pinned",
        &pin,
        "dev",
        dev,
    ]);
    seen.push(format!("xdpgeneric: {ok}"));
    let (_, show) = at.out(&["ip", "link", "show", "dev", dev]);
    seen.push(format!("ip link show: {}", xdp_lines(&show)));
    let (ok, _) = at.out(&["bpftool", "net", "detach", "xdpgeneric", "dev", dev]);
    seen.push(format!("detach xdpgeneric: {ok}"));
    let _ = at.out(&["rm", "-f", &pin]);
    seen
}

#[test]
fn bpftool_net_attach_like_the_kernel() {
    if !require(&[
        Need::Root,
        Need::Bpf,
        Need::Netns,
        Need::Fuse,
        Need::Clang,
        Need::Bpftool,
    ]) {
        return;
    }
    let tmp = TempDir::new("attach_bpftool");
    let obj = tmp.path().join("drop_icmp.bpf.o");
    let o = Command::new("clang-19")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ip-link-drop/drop_icmp.bpf.c"))
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap();
    stdout_ok(&o, "clang-19 drop_icmp.bpf.c");
    let pair = VethPair::new("att_tool").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    assert!(ping(&pair, "1"));
    let d = Daemon::start();
    let (native, ours) = contexts(&pair, &d);
    let k = bpftool_scenario(&pair, &native, &obj);
    assert_eq!(k[..2], ["load: true", "attach: true"], "kernel: {k:?}");
    assert_eq!(k[3], "ping with drop_icmp: false", "kernel: {k:?}");
    let o = bpftool_scenario(&pair, &ours, &obj);
    assert_eq!(k, o, "kernel vs bpftime; daemon log:\n{}", d.log());
    assert_eq!(
        d.wait_empty(Duration::from_secs(5)),
        (0, 0, 0, 0),
        "{}",
        d.status()
    );
}

#[test]
fn unrelated_netlink_work_is_unchanged() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns]) {
        return;
    }
    let pair = VethPair::new("att_nl").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let d = Daemon::start();
    let (native, ours) = contexts(&pair, &d);
    let dev = pair.if_b.as_str();
    let queries: &[&[&str]] = &[
        &["ip", "link", "show"],
        &["ip", "-d", "link", "show", "dev", dev],
        &["ip", "addr", "show"],
        &["ip", "-6", "addr", "show", "dev", dev],
        &["ip", "route", "show"],
        &["ip", "-6", "route", "show"],
        &["ip", "-j", "link", "show"],
        &["bpftool", "net", "show"],
    ];
    let snapshot = |at: &In<'_>| -> Vec<String> {
        queries
            .iter()
            .map(|q| {
                let (ok, out) = at.out(q);
                // ip names peer namespaces by asking RTM_GETNSID for each entry of
                // /run/netns; one that another test is deleting at that moment gets
                // this extack warning, natively as well as under bpftime.
                let out: String = out
                    .lines()
                    .filter(|l| !l.contains("Peer netns reference is invalid"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                format!("{}: {ok}\n{out}", q.join(" "))
            })
            .collect()
    };
    let k = snapshot(&native);
    let o = snapshot(&ours);
    for (a, b) in k.iter().zip(&o) {
        assert_eq!(a, b, "daemon log:\n{}", d.log());
    }
    // Changes made under bpftime-run reach the kernel (seen natively), and back.
    let changes: &[&[&str]] = &[
        &["ip", "addr", "add", "10.199.7.1/24", "dev", dev],
        &["ip", "route", "add", "10.199.8.0/24", "via", "10.199.7.2"],
        &["ip", "link", "set", "dev", dev, "mtu", "1400"],
    ];
    for c in changes {
        let (ok, out) = ours.out(c);
        assert!(ok, "{}: {out}\n{}", c.join(" "), d.log());
    }
    let (_, addrs) = native.out(&["ip", "addr", "show", "dev", dev]);
    assert!(
        addrs.contains("10.199.7.1/24") && addrs.contains("mtu 1400"),
        "{addrs}"
    );
    let (_, routes) = native.out(&["ip", "route", "show"]);
    assert!(routes.contains("10.199.8.0/24 via 10.199.7.2"), "{routes}");
    let (ok, out) = ours.out(&["ip", "addr", "add", "10.199.7.1/24", "dev", dev]);
    let (nok, nout) = native.out(&["ip", "addr", "add", "10.199.7.1/24", "dev", dev]);
    assert_eq!((ok, out), (nok, nout), "duplicate address error");
    assert_eq!(snapshot(&native), snapshot(&ours));
}

/// One thread blocked in recv on an RTNLGRP_LINK socket (a link watcher) must not hold
/// up the process's other syscalls (bpf(), netlink requests): the notification arrives
/// and everything completes as natively (tests/clients/attach_monitor.c).
#[test]
fn link_watcher_does_not_stall_other_threads() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("attach_monitor");
    let client = gcc(
        tmp.path(),
        "attach_monitor.c",
        "attach_monitor",
        false,
        &["-lbpf", "-lpthread"],
    );
    let client = client.to_str().unwrap();
    let pair = VethPair::new("att_mon").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let d = Daemon::start();
    let (native, ours) = contexts(&pair, &d);
    let k = native.out(&["timeout", "10", client, &pair.if_b, "1400"]);
    assert_eq!(k, (true, "loaded 1\nsetlink 0\nnotified 0\n".into()));
    let t0 = std::time::Instant::now();
    let o = ours.out(&["timeout", "10", client, &pair.if_b, "1450"]);
    assert_eq!(k, o, "daemon log:\n{}", d.log());
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
