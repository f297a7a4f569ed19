//! The XDP attach/replace/detach errno table, kernel vs bpftime: tests/clients/attach_errno.c
//! runs the same sequence of netlink (bpf_xdp_attach/detach/query: IFLA_XDP with
//! UPDATE_IF_NOEXIST, REPLACE + EXPECTED_FD, SKB/DRV/no mode, bad fds, non-XDP programs,
//! unknown devices) and bpf_link operations (LINK_CREATE/UPDATE/DETACH with BPF_F_REPLACE,
//! link info, update after detach) on a veth inside a namespace, mixing both so that
//! their mutual exclusion (EBUSY/EEXIST) is exercised, once natively and once under
//! bpftime-run. Every line (results, query outcomes, and libbpf's printed extack
//! messages) must be identical. Then lifetimes: a pinned link outlives its fd and
//! detaches with its pin, an unpinned link detaches when its fd closes, a netlink
//! attachment outlives the program fd (bpftime collects within 2 s; the client waits 3).

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

fn table(native: &str, ours: &str) -> String {
    let a: Vec<&str> = native.lines().collect();
    let b: Vec<&str> = ours.lines().collect();
    let mut t = String::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(""),
            b.get(i).copied().unwrap_or(""),
        );
        let mark = if x == y { " " } else { "!" };
        t += &format!("{mark} {x:<60} | {y}\n");
    }
    t
}

#[test]
fn xdp_attach_errnos_match_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Fuse, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("attach_errno");
    let client = gcc(
        tmp.path(),
        "attach_errno.c",
        "attach_errno",
        false,
        &["-lbpf"],
    );
    let client = client.to_str().unwrap();
    let pair = VethPair::new("att_errno").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    // A device without ndo_bpf beside the veth, in the same namespace.
    let bridge = "br_att_errno";
    let add = Command::new("ip")
        .args(["-n", pair.b.name(), "link", "add", bridge, "type", "bridge"])
        .status()
        .unwrap();
    assert!(add.success(), "ip link add {bridge} type bridge");

    // nsenter --net keeps the host's /sys/fs/bpf (ip netns exec remounts /sys).
    let netns = format!("--net=/run/netns/{}", pair.b.name());
    // The pins need a bpffs: a private one (the host's /sys/fs/bpf may not be mounted on a
    // fresh machine, and a test must not depend on another test mounting it).
    let native = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t bpf bpf /sys/fs/bpf && exec \"$@\"")
        .args([
            "sh",
            "nsenter",
            &netns,
            client,
            &pair.if_b,
            "/sys/fs/bpf",
            bridge,
        ])
        .output()
        .unwrap();
    let native_out = stdout_ok(&native, "attach_errno (kernel)");
    let native_err = String::from_utf8_lossy(&native.stderr).into_owned();
    // The sequence really exercises the kernel's refusals.
    for want in [
        "nl.attach.noexist.busy EBUSY",
        "nl.attach.replace.expected.wrong EEXIST",
        "link.create.over.netlink EBUSY",
        "nl.attach.over.link EBUSY",
        "link.update.replace.wrong EPERM",
        "link.update.detached ENOLINK",
        "link.query.drv prog=p2 skb=none drv=p2 mode=1",
        "life.query.pinned prog=p1 skb=p1 drv=none mode=2",
        "life.query.unpinned prog=none",
        "life.query.closed prog=none",
        "life.query.nl.prog.closed prog=p2",
        "br.link.drv.empty EOPNOTSUPP",
        "br.link.skb.over.nl EBUSY",
        "br.final prog=none",
        "life.nl.after.close ok",
        "life.link.after.close ok",
    ] {
        assert!(
            native_out.contains(want),
            "kernel: no '{want}':\n{native_out}"
        );
    }

    let d = Daemon::start();
    let run = bin("bpftime-run");
    let sock = d.socket.to_str().unwrap().to_string();
    let ours = Command::new("nsenter")
        .arg(&netns)
        .arg(&run)
        .args([
            "--socket",
            &sock,
            "--",
            client,
            &pair.if_b,
            "/sys/fs/bpf",
            bridge,
        ])
        .output()
        .unwrap();
    let ours_out = stdout_ok(&ours, "attach_errno (bpftime)");
    let ours_err = String::from_utf8_lossy(&ours.stderr).into_owned();
    assert!(
        native_out == ours_out,
        "kernel | bpftime\n{}\ndaemon log:\n{}",
        table(&native_out, &ours_out),
        d.log()
    );
    assert_eq!(native_err, ours_err, "extack messages differ");
    // Nothing stays attached, nothing stays alive.
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

/// A NETLINK_ROUTE socket made inside namespace b (setns, socket, setns back, as Go's
/// netlink.NewHandleAt does) and used from the host namespace: the IFLA_XDP request
/// acts on b's device (the socket's namespace), with the kernel and with bpftime.
#[test]
fn netlink_attach_acts_in_the_sockets_namespace() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("attach_sockns");
    let client = gcc(
        tmp.path(),
        "attach_sockns.c",
        "attach_sockns",
        false,
        &["-lbpf"],
    );
    let client = client.to_str().unwrap();
    let pair = VethPair::new("att_sockns").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let ns = format!("/run/netns/{}", pair.b.name());
    let native = Command::new(client)
        .args([&ns, &pair.if_b])
        .output()
        .unwrap();
    let native = stdout_ok(&native, "attach_sockns (kernel)");
    assert!(
        native.contains("query there 0 attached=1 mode=2"),
        "{native}"
    );
    let d = Daemon::start();
    let ours = d.run(&[client, &ns, &pair.if_b]);
    let ours = stdout_ok(&ours, "attach_sockns (bpftime)");
    assert_eq!(native, ours, "daemon log:\n{}", d.log());
    assert_eq!(
        d.wait_empty(Duration::from_secs(5)),
        (0, 0, 0, 0),
        "{}",
        d.status()
    );
}
