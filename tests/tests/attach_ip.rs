//! iproute2's legacy XDP attach (RTM_NEWLINK + IFLA_XDP) under bpftime-run, with
//! `ip -n NS` (ip enters the namespace itself and remounts /sys, so it mounts a bpffs of
//! its own), kernel vs bpftime: `xdpgeneric`, `xdpdrv`, `xdp`, `-force`, the kernel's
//! refusals (already attached, native and generic at once), `xdp off` / `xdpgeneric off`,
//! and `ip link show` after each step (modulo ids and the `jited` flag). Real traffic:
//! examples/ip-link-drop drops pings from the peer namespace while attached.
//! Then bpftime's own view: `bpftime status` lists the netlink attachment with its
//! program and packet counters; the attachment outlives `ip`; `bpftime stop` detaches
//! it and the interface is the kernel's again.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

/// `ip link show` lines about XDP: the mode word of the flags line and prog/xdp without
/// the id and `jited`.
fn xdp_view(show: &str) -> String {
    let mut v = Vec::new();
    for l in show.lines() {
        if l.contains(" mtu ") {
            let mut t = l.split_whitespace();
            if t.any(|w| w == "mtu") {
                v.push(format!("mtu {}", t.next().unwrap_or("")));
            }
            for w in ["xdp", "xdpgeneric", "xdpoffload", "xdpmulti"] {
                if l.split_whitespace().any(|t| t == w) {
                    v.push(w.to_string());
                }
            }
        }
        if l.trim_start().starts_with("prog/xdp") {
            let mut kept = Vec::new();
            let mut it = l.split_whitespace();
            while let Some(t) = it.next() {
                match t {
                    "id" => {
                        it.next();
                    }
                    "jited" => {}
                    o => kept.push(o),
                }
            }
            v.push(kept.join(" "));
        }
    }
    v.join(" | ")
}

fn ping(pair: &VethPair) -> bool {
    let ip = pair.ip_b.to_string();
    pair.a
        .command("ping", &["-c", "2", "-i", "0.2", "-W", "1", &ip])
        .output()
        .unwrap()
        .status
        .success()
}

fn said(o: &Output) -> String {
    format!(
        "{} {}",
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

fn scenario(pair: &VethPair, ip: &dyn Fn(&[&str]) -> Output, obj: &str) -> Vec<String> {
    let ns = pair.b.name();
    let dev = pair.if_b.as_str();
    let mut seen = Vec::new();
    let mut step = |what: &str, args: &[&str]| {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        let o = ip(&all);
        let show = ip(&["-n", ns, "link", "show", "dev", dev]);
        seen.push(format!(
            "{what}: {} => {}",
            said(&o),
            xdp_view(&String::from_utf8_lossy(&show.stdout))
        ));
    };
    let load = ["obj", obj, "sec", "xdp"];
    let set = |mode: &'static str| -> Vec<&str> {
        let mut v = vec!["link", "set", "dev", dev, mode];
        v.extend_from_slice(&load);
        v
    };
    step("xdpgeneric", &set("xdpgeneric"));
    let ping_attached = ping(pair);
    step("xdpgeneric again", &set("xdpgeneric"));
    let mut force = vec!["-force"];
    force.extend(set("xdpgeneric"));
    step("-force xdpgeneric", &force);
    step("xdpdrv over generic", &set("xdpdrv"));
    step(
        "xdp off (native mode)",
        &["link", "set", "dev", dev, "xdp", "off"],
    );
    step(
        "xdpgeneric off",
        &["link", "set", "dev", dev, "xdpgeneric", "off"],
    );
    let ping_detached = ping(pair);
    step("xdp", &set("xdp"));
    let mut force = vec!["-force"];
    force.extend(set("xdp"));
    step("-force xdp", &force);
    step("xdpgeneric over native", &set("xdpgeneric"));
    step("xdp off", &["link", "set", "dev", dev, "xdp", "off"]);
    // IFLA_XDP with other attributes: the kernel applies the rest, both results combine.
    let mut mixed = vec!["link", "set", "dev", dev, "mtu", "1300", "xdpgeneric"];
    mixed.extend_from_slice(&load);
    step("mtu 1300 + xdpgeneric", &mixed);
    step(
        "mtu too big + xdpgeneric off",
        &[
            "link",
            "set",
            "dev",
            dev,
            "mtu",
            "99999",
            "xdpgeneric",
            "off",
        ],
    );
    step(
        "mtu 1500 + xdpgeneric off",
        &[
            "link",
            "set",
            "dev",
            dev,
            "mtu",
            "1500",
            "xdpgeneric",
            "off",
        ],
    );
    seen.push(format!("ping while attached: {ping_attached}"));
    seen.push(format!("ping after off: {ping_detached}"));
    seen
}

#[test]
fn ip_link_xdp_modes_like_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("attach_ip");
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
    let obj = obj.to_str().unwrap();
    let pair = VethPair::new("att_ip").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    assert!(ping(&pair), "the veth pair does not pass traffic");

    let native = |args: &[&str]| Command::new("ip").args(args).output().unwrap();
    let kernel = scenario(&pair, &native, obj);
    assert!(
        kernel[0].starts_with(
            "xdpgeneric: 0  => mtu 1500 | xdpgeneric | prog/xdp name xdp_drop_icmp tag"
        ),
        "{kernel:?}"
    );
    assert!(
        kernel.contains(&"ping while attached: false".to_string()),
        "{kernel:?}"
    );

    let d = Daemon::start();
    let run = bin("bpftime-run");
    let sock = d.socket.to_str().unwrap().to_string();
    let ours_ip = |args: &[&str]| {
        Command::new(&run)
            .args(["--socket", &sock, "--", "ip"])
            .args(args)
            .output()
            .unwrap()
    };
    let ours = scenario(&pair, &ours_ip, obj);
    assert_eq!(kernel, ours, "daemon log:\n{}", d.log());

    // The attachment outlives `ip`; status shows it with its counters.
    let ns = pair.b.name();
    let o = ours_ip(&[
        "-n",
        ns,
        "link",
        "set",
        "dev",
        &pair.if_b,
        "xdpgeneric",
        "obj",
        obj,
        "sec",
        "xdp",
    ]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(!ping(&pair), "drop_icmp did not drop");
    let st = d.status();
    let atts = st["attachments"].as_array().cloned().unwrap_or_default();
    assert_eq!(atts.len(), 1, "{st}");
    let a = &atts[0];
    assert_eq!(a["ifname"], pair.if_b.as_str(), "{a}");
    assert_eq!(a["mode"], "Skb", "{a}");
    assert_eq!(a["owner"]["holder"], "netlink", "{a}");
    assert!(a["drop"].as_u64().unwrap_or(0) >= 2, "{a}");
    let prog_id = a["owner"]["prog_id"].as_u64().unwrap();
    assert!(
        st["programs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"].as_u64() == Some(prog_id) && p["name"] == "xdp_drop_icmp"),
        "{st}"
    );
    let text = Command::new(bin("bpftime"))
        .args(["--socket", &sock, "status"])
        .output()
        .unwrap();
    let text = stdout_ok(&text, "bpftime status");
    assert!(
        text.contains("ATTACHMENTS") && text.contains("netlink"),
        "{text}"
    );

    // `bpftime stop` detaches: the kernel's view is clean and traffic flows.
    let o = Command::new(bin("bpftime"))
        .args(["--socket", &sock, "stop"])
        .output()
        .unwrap();
    stdout_ok(&o, "bpftime stop");
    let t0 = std::time::Instant::now();
    loop {
        let show = native(&["-n", ns, "link", "show", "dev", &pair.if_b]);
        let v = xdp_view(&String::from_utf8_lossy(&show.stdout));
        if !v.contains("xdp") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still attached after stop: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ping(&pair), "traffic does not flow after bpftime stop");
}
