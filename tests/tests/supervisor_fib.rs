//! `bpf_fib_lookup` against the host's routing and neighbour tables: a C client runs
//! a table of lookups through BPF_PROG_TEST_RUN (IPv4 and IPv6; gateway routes with
//! and without a neighbour, blackhole/unreachable/prohibit, route MTU, preferred
//! source and metric, local destinations, table lookups, no route, unknown
//! interface; flags SKIP_NEIGH, SRC, OUTPUT, DIRECT|TBID) in a namespace with those
//! routes, first with forwarding off, then on; and `bpf_check_mtu` cases. Natively
//! and under bpftime-run the results and the returned structs are equal.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

#[test]
fn fib_lookup_like_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Netns]) {
        return;
    }
    let tmp = TempDir::new("fib");
    let client = gcc(tmp.path(), "sv_fib.c", "sv_fib", false, &[]);
    let c = client.to_str().unwrap().to_string();
    let pair = VethPair::new("sv_fib").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let ifa = pair.if_a.clone();
    let sh = |cmd: &str| {
        let out = pair.a.command("sh", &["-c", cmd]).output().unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
    };
    for cmd in [
        "ip route add 10.99.0.0/24 via 10.77.0.2".to_string(),
        format!("ip neigh replace 10.77.0.2 lladdr 02:00:00:00:00:0b dev {ifa} nud permanent"),
        "ip route add 10.98.0.0/24 via 10.77.0.77".into(),
        "ip route add blackhole 10.97.0.0/24".into(),
        "ip route add unreachable 10.96.0.0/24".into(),
        "ip route add prohibit 10.95.0.0/24".into(),
        "ip route add 10.94.0.0/24 via 10.77.0.2 mtu 1000".into(),
        format!("ip route add 10.93.0.0/24 dev {ifa} src 10.77.0.1 metric 77"),
        "ip route add 10.92.0.0/24 via 10.77.0.2 table 100".into(),
        "ip route add 10.91.0.0/24 via 10.77.0.2 mtu lock 1000".into(),
        "ip -6 route add fd94::/64 via fd77::2 mtu 1280".into(),
        "ip -6 route add fd99::/64 via fd77::2".into(),
        format!("ip -6 neigh replace fd77::2 lladdr 02:00:00:00:00:0c dev {ifa} nud permanent"),
        "ip -6 route add blackhole fd97::/64".into(),
    ] {
        sh(&cmd);
    }
    let cases: Vec<String> = [
        "4,10.99.0.5,0.0.0.0,IF,0,0,0",
        "4,10.99.0.5,0.0.0.0,IF,4,0,0",
        "4,10.99.0.5,0.0.0.0,IF,16,0,0",
        "4,10.99.0.5,0.0.0.0,IF,2,0,0",
        "4,10.99.0.5,10.77.0.1,IF,0,0,0",
        "4,10.98.0.5,0.0.0.0,IF,0,0,0",
        "4,10.97.0.1,0.0.0.0,IF,0,0,0",
        "4,10.96.0.1,0.0.0.0,IF,0,0,0",
        "4,10.95.0.1,0.0.0.0,IF,0,0,0",
        "4,10.94.0.1,0.0.0.0,IF,0,1200,0",
        "4,10.94.0.1,0.0.0.0,IF,0,900,0",
        "4,10.93.0.9,0.0.0.0,IF,20,0,0",
        "4,10.77.0.1,0.0.0.0,IF,0,0,0",
        "4,10.77.0.2,0.0.0.0,IF,0,0,0",
        "4,10.92.0.5,0.0.0.0,IF,9,0,100",
        "4,10.92.0.5,0.0.0.0,IF,1,0,0",
        "4,10.99.0.5,0.0.0.0,IF,1,0,0",
        "4,10.77.0.2,0.0.0.0,IF,1,0,0",
        "4,10.97.0.1,0.0.0.0,IF,1,0,0",
        "4,10.91.0.1,0.0.0.0,IF,0,1200,0",
        "4,10.91.0.1,0.0.0.0,IF,0,900,0",
        "4,8.8.8.8,0.0.0.0,IF,0,0,0",
        "4,10.99.0.5,0.0.0.0,none,0,0,0",
        "6,fd99::5,::,IF,0,0,0",
        "6,fd99::5,::,IF,20,0,0",
        "6,fd97::1,::,IF,0,0,0",
        "6,fd77::2,::,IF,0,0,0",
        "6,fd77::1,::,IF,0,0,0",
        "6,fd94::1,::,IF,0,1400,0",
        "6,fd94::1,::,IF,0,1200,0",
        "6,fd99::5,::,IF,1,0,0",
        // bpf_check_mtu: the ingress device (loopback in a test run), a named one,
        // a length past the MTU, a shrinking delta, an unknown device, bad flags.
        "mtu,0,0,0,0",
        "mtu,IF,0,0,0",
        "mtu,IF,1400,0,0",
        "mtu,IF,1300,200,0",
        "mtu,IF,1600,-200,0",
        "mtu,lo,70000,0,0",
        "mtu,none,0,0,0",
        "mtu,IF,0,0,1",
    ]
    .iter()
    .map(|s| s.replace("IF", &ifa))
    .collect();
    let d = Daemon::start();
    let run = bin("bpftime-run");
    let sock = d.socket.to_str().unwrap().to_string();
    let both = |label: &str| {
        let mut args: Vec<&str> = cases.iter().map(String::as_str).collect();
        let native = stdout_ok(
            &pair.a.command(&c, &args).output().unwrap(),
            &format!("native client ({label})"),
        );
        let mut all = vec!["--socket", sock.as_str(), "--", c.as_str()];
        all.append(&mut args);
        let ours = stdout_ok(
            &pair
                .a
                .command(run.to_str().unwrap(), &all)
                .output()
                .unwrap(),
            &format!("client under bpftime-run ({label})"),
        );
        assert_same_lines(&native, &ours, Some(&d));
        native
    };
    let off = both("forwarding off");
    assert!(off.contains(" ret 5 "), "kernel answer changed:\n{off}");
    sh("sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1");
    sh(&format!("ip link set dev {ifa} mtu 1400"));
    let on = both("forwarding on");
    assert!(
        on.contains("mtu,lo,70000,0,0: run 0 ret 1 mtu_len 65536"),
        "check_mtu: kernel answer changed:\n{on}"
    );
    for want in [
        " ret 0 ",
        " ret 1 ",
        " ret 2 ",
        " ret 3 ",
        " ret 4 ",
        " ret 7 ",
        " ret 8 ",
        " ret -19 ",
    ] {
        assert!(on.contains(want), "no case gave{want}:\n{on}");
    }
}
