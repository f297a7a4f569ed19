//! Legacy netlink XDP attach under bpftime-run: `ip link set dev X xdp obj O sec xdp`
//! (RTM_NEWLINK with IFLA_XDP) attaches in bpftime's data plane, `ip link show` shows
//! the program (prog/xdp id, name, tag) as the kernel does, traffic obeys the program,
//! `xdp off` detaches and the program goes.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

fn ping_ok(pair: &VethPair) -> bool {
    let ip = pair.ip_b.to_string();
    pair.a
        .command("ping", &["-c", "2", "-i", "0.2", "-W", "1", &ip])
        .output()
        .unwrap()
        .status
        .success()
}

/// The `prog/xdp` line of `ip link show`, without the id and the "jited" flag.
fn xdp_line(out: &str) -> String {
    let Some(line) = out.lines().find(|l| l.trim_start().starts_with("prog/xdp")) else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut it = line.split_whitespace();
    while let Some(t) = it.next() {
        match t {
            "id" => {
                it.next();
            }
            "jited" => {}
            other => kept.push(other),
        }
    }
    kept.join(" ")
}

fn scenario(
    pair: &VethPair,
    ip: &dyn Fn(&[&str]) -> std::process::Output,
    obj: &str,
) -> Vec<String> {
    let dev = pair.if_b.as_str();
    let mut seen = Vec::new();
    let out = ip(&["link", "set", "dev", dev, "xdp", "obj", obj, "sec", "xdp"]);
    seen.push(format!("attach: {}", out.status.success()));
    let show = String::from_utf8_lossy(&ip(&["link", "show", "dev", dev]).stdout).into_owned();
    seen.push(format!("show: {}", xdp_line(&show)));
    seen.push(format!("xdp flag: {}", show.contains(" xdp ")));
    // verdict_default is 0 (XDP_ABORTED) without a loader setting .rodata: drops.
    seen.push(format!("ping with program: {}", ping_ok(pair)));
    let again = ip(&["link", "set", "dev", dev, "xdp", "obj", obj, "sec", "xdp"]);
    seen.push(format!(
        "attach again without -force: {}",
        again.status.success()
    ));
    let off = ip(&["link", "set", "dev", dev, "xdp", "off"]);
    seen.push(format!("off: {}", off.status.success()));
    let show = String::from_utf8_lossy(&ip(&["link", "show", "dev", dev]).stdout).into_owned();
    seen.push(format!("after off: '{}'", xdp_line(&show)));
    seen.push(format!("ping after off: {}", ping_ok(pair)));
    seen
}

#[test]
fn ip_link_set_xdp_like_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang, Need::Netns]) {
        return;
    }
    let tmp = TempDir::new("netlink");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let obj = obj.to_str().unwrap();
    let pair = VethPair::new("sv_nl").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let native = |args: &[&str]| pair.b.command("ip", args).output().unwrap();
    let kernel = scenario(&pair, &native, obj);
    assert_eq!(kernel[0], "attach: true", "{kernel:?}");

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
    let ours = scenario(&pair, &ours_ip, obj);
    assert_eq!(kernel, ours, "daemon log:\n{}", d.log());
    assert_eq!(
        d.wait_empty(Duration::from_secs(5)),
        (0, 0, 0, 0),
        "{}",
        d.status()
    );
    let _ = Command::new("true").status();
}

/// xdp-loader (libxdp): its dispatcher needs BPF_PROG_TYPE_EXT, which bpftime refuses,
/// so it falls back to one legacy netlink attach; `status`, `bpftool net` and `unload`
/// see and remove it.
#[test]
fn xdp_loader_falls_back_to_netlink_attach() {
    if !require(&[
        Need::Root,
        Need::Bpf,
        Need::Clang,
        Need::Netns,
        Need::Bpftool,
        Need::Tool("xdp-loader"),
    ]) {
        return;
    }
    let tmp = TempDir::new("xdploader");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let obj = obj.to_str().unwrap();
    let pair = VethPair::new("sv_xl").unwrap();
    let d = Daemon::start();
    let run = bin("bpftime-run");
    let sock = d.socket.to_str().unwrap().to_string();
    let ours = |args: &[&str]| {
        let mut all = vec!["--socket", sock.as_str(), "--"];
        all.extend_from_slice(args);
        pair.b
            .command(run.to_str().unwrap(), &all)
            .output()
            .unwrap()
    };
    let dev = pair.if_b.as_str();
    let load = ours(&["xdp-loader", "load", "-m", "skb", dev, obj]);
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let status = String::from_utf8_lossy(&ours(&["xdp-loader", "status", dev]).stdout).into_owned();
    assert!(
        status
            .lines()
            .any(|l| l.contains("sv_prog") && l.contains("skb")),
        "{status}"
    );
    let net = String::from_utf8_lossy(&ours(&["bpftool", "net"]).stdout).into_owned();
    assert!(
        net.contains(&format!("{dev}(")) && net.contains("generic id"),
        "{net}"
    );
    assert_eq!(
        d.status()["attachments"].as_array().map(|a| a.len()),
        Some(1)
    );
    let unload = ours(&["xdp-loader", "unload", dev, "--all"]);
    assert!(
        unload.status.success(),
        "{}",
        String::from_utf8_lossy(&unload.stderr)
    );
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
