//! End to end: the examples of examples/, run the way their READMEs say, with real
//! tools (`ip`, `bpftool`, a libbpf loader), real traffic between two network
//! namespaces, once on the kernel and once under `bpftime-run`. Each scenario is one
//! shell script run in both worlds; its transcript must be the expected one in both
//! (so two identical failures cannot pass).
//!
//! On the kernel the script runs in a private mount namespace with a fresh bpffs at
//! /sys/fs/bpf (the host has none); under bpftime it runs under `bpftime-run`, whose
//! bpffs appears at /sys/fs/bpf. `nsenter --net` (not `ip -n`, which remounts /sys
//! and so hides /sys/fs/bpf) enters the interface's namespace.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("examples")
}

/// Compiles examples/<src> for BPF into `dir`.
fn build_bpf(dir: &Path, src: &str) -> PathBuf {
    let out = dir
        .join(Path::new(src).file_stem().unwrap())
        .with_extension("o");
    let st = Command::new("clang-19")
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg("-c")
        .arg(examples_dir().join(src))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang-19");
    assert!(st.success(), "building {src}");
    out
}

enum World<'a> {
    Kernel,
    Bpftime(&'a Daemon),
}

fn run_script(world: &World<'_>, script: &str) -> Output {
    let script = format!("set -e\n{script}");
    match world {
        World::Kernel => Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount -t bpf bpf /sys/fs/bpf\n{script}"))
            .output()
            .unwrap(),
        World::Bpftime(d) => d.run(&["sh", "-c", &script]),
    }
}

/// Runs `script` on the kernel and under bpftime; both transcripts must equal `expected`.
fn both_worlds(
    tag: &str,
    script: impl Fn(&VethPair) -> String,
    setup: impl Fn(&VethPair),
    expected: &[&str],
) {
    for bpftime in [false, true] {
        let pair = VethPair::new(tag).expect("veth pair");
        pair.wait_up(Duration::from_secs(5)).unwrap();
        setup(&pair);
        let daemon = bpftime.then(Daemon::start);
        let world = match &daemon {
            Some(d) => World::Bpftime(d),
            None => World::Kernel,
        };
        let out = run_script(&world, &script(&pair));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let name = if bpftime { "bpftime" } else { "kernel" };
        assert_eq!(
            lines,
            expected,
            "{tag} on {name}: exit {:?}\nstderr:\n{}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            daemon.as_ref().map(|d| d.log()).unwrap_or_default()
        );
    }
}

fn ping_line(pair: &VethPair, what: &str) -> String {
    format!(
        "if ip netns exec {b} ping -c 2 -i 0.2 -W 1 -q {ip} >/dev/null 2>&1; then echo '{what}: answered'; else echo '{what}: no answer'; fi",
        b = pair.b.name(),
        ip = pair.ip_a
    )
}

const NEEDS: &[Need] = &[
    Need::Root,
    Need::Bpf,
    Need::Netns,
    Need::Fuse,
    Need::Clang,
    Need::Bpftool,
];

/// examples/ip-link-drop: `ip link set ... xdpgeneric obj`, `ip link show`, `xdp off`.
#[test]
fn ip_link_drop_example() {
    if !require(NEEDS) {
        return;
    }
    let dir = TempDir::new("ex-iplink");
    let obj = build_bpf(dir.path(), "ip-link-drop/drop_icmp.bpf.c");
    both_worlds(
        "ex-iplink",
        |p| {
            let a = format!("nsenter --net=/run/netns/{}", p.a.name());
            format!(
                "{a} ip link set dev {ifa} xdpgeneric obj {obj} sec xdp\n\
                 {a} ip link show dev {ifa} | grep -o 'prog/xdp id [0-9]* name [a-z_]*' | sed 's/id [0-9]*/id N/'\n\
                 {ping1}\n\
                 {a} ip link set dev {ifa} xdpgeneric off\n\
                 {a} ip link show dev {ifa} | grep -c prog/xdp || true\n\
                 {ping2}\n",
                ifa = p.if_a,
                obj = obj.display(),
                ping1 = ping_line(p, "ping with the program"),
                ping2 = ping_line(p, "ping after xdp off"),
            )
        },
        |_| {},
        &[
            "prog/xdp id N name xdp_drop_icmp",
            "ping with the program: no answer",
            "0",
            "ping after xdp off: answered",
        ],
    );
}

/// examples/icmp-responder: `bpftool prog load` + `bpftool net attach`, XDP_TX answers
/// pings the kernel itself ignores.
#[test]
fn icmp_responder_example() {
    if !require(NEEDS) {
        return;
    }
    let dir = TempDir::new("ex-icmp");
    let obj = build_bpf(dir.path(), "icmp-responder/icmp_responder.bpf.c");
    both_worlds(
        "ex-icmp",
        |p| {
            let a = format!("nsenter --net=/run/netns/{}", p.a.name());
            format!(
                "{ping0}\n\
                 bpftool prog load {obj} /sys/fs/bpf/icmp_responder\n\
                 {a} bpftool net attach xdpgeneric pinned /sys/fs/bpf/icmp_responder dev {ifa}\n\
                 {a} bpftool net show dev {ifa} | grep -o 'generic id' | head -1\n\
                 {ping1}\n\
                 {a} bpftool net detach xdpgeneric dev {ifa}\n\
                 rm /sys/fs/bpf/icmp_responder\n\
                 {ping2}\n",
                ifa = p.if_a,
                obj = obj.display(),
                ping0 = ping_line(p, "ping before"),
                ping1 = ping_line(p, "ping with the responder"),
                ping2 = ping_line(p, "ping after detach"),
            )
        },
        |p| {
            // The kernel of namespace a ignores echo requests: only XDP_TX can answer.
            let st =
                p.a.command("sysctl", &["-qw", "net.ipv4.icmp_echo_ignore_all=1"])
                    .status()
                    .unwrap();
            assert!(st.success());
        },
        &[
            "ping before: no answer",
            "generic id",
            "ping with the responder: answered",
            "ping after detach: no answer",
        ],
    );
}

/// examples/firewall: loaded by `ip`, which pins `blocked_ports` by name; a port is
/// blocked with `bpftool map update pinned`, and the drop counter counts.
#[test]
fn firewall_example() {
    if !require(NEEDS) {
        return;
    }
    let dir = TempDir::new("ex-fw");
    let obj = build_bpf(dir.path(), "firewall/firewall.bpf.c");
    both_worlds(
        "ex-fw",
        |p| {
            let a = format!("nsenter --net=/run/netns/{}", p.a.name());
            let udp = |port: u16, n: u32| {
                format!(
                    // bash's /dev/udp writes each datagram before it exits (`nc -u -w0`
                    // sometimes quits before sending, which made the count flaky).
                    "for i in $(seq {n}); do ip netns exec {b} bash -c 'echo x > /dev/udp/{ip}/{port}'; done",
                    b = p.b.name(),
                    ip = p.ip_a
                )
            };
            format!(
                "{a} ip link set dev {ifa} xdpgeneric obj {obj} sec xdp\n\
                 {ping}\n\
                 bpftool map update pinned /sys/fs/bpf/xdp/globals/blocked_ports key 0x0f 0x27 value 0 0 0 0 0 0 0 0\n\
                 {u1}\n{u2}\n\
                 sleep 0.5\n\
                 bpftool -j map lookup pinned /sys/fs/bpf/xdp/globals/blocked_ports key 0x0f 0x27 | grep -o '\"value\":\\[[^]]*\\]'\n\
                 bpftool map delete pinned /sys/fs/bpf/xdp/globals/blocked_ports key 0x0f 0x27\n\
                 bpftool map dump pinned /sys/fs/bpf/xdp/globals/blocked_ports | tail -1\n\
                 {a} ip link set dev {ifa} xdpgeneric off\n\
                 rm -rf /sys/fs/bpf/xdp /sys/fs/bpf/tc /sys/fs/bpf/ip 2>/dev/null || true\n",
                ifa = p.if_a,
                obj = obj.display(),
                ping = ping_line(p, "ping through the firewall"),
                u1 = udp(9999, 3),
                u2 = udp(9998, 2),
            )
        },
        |_| {},
        &[
            "ping through the firewall: answered",
            "\"value\":[\"0x03\",\"0x00\",\"0x00\",\"0x00\",\"0x00\",\"0x00\",\"0x00\",\"0x00\"]",
            "[]",
        ],
    );
}

/// examples/devmap-forwarder: XDP_REDIRECT through a DEVMAP set from userspace; pings
/// sent to namespace a leave through a second veth pair into namespace c.
#[test]
fn devmap_forwarder_example() {
    if !require(NEEDS) {
        return;
    }
    let dir = TempDir::new("ex-devmap");
    let obj = build_bpf(dir.path(), "devmap-forwarder/devmap_forwarder.bpf.c");
    let third = std::cell::RefCell::new(Vec::new());
    both_worlds(
        "ex-devmap",
        |p| {
            let a = format!("nsenter --net=/run/netns/{}", p.a.name());
            let c = third.borrow();
            let c: &bpftime_tests::netns::Netns = c.last().unwrap();
            let ifindex = p.a.ifindex("fwd0").unwrap();
            let key = ifindex
                .to_le_bytes()
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let rx = format!(
                "ip netns exec {} cat /sys/class/net/fwd1/statistics/rx_packets",
                c.name()
            );
            format!(
                "{a} ip link set dev {ifa} xdpgeneric obj {obj} sec xdp\n\
                 {a} bpftool map update pinned /sys/fs/bpf/xdp/globals/tx_port key 0 0 0 0 value {key}\n\
                 before=$({rx})\n\
                 {ping}\n\
                 after=$({rx})\n\
                 [ $((after - before)) -ge 2 ] && echo forwarded || echo \"not forwarded: $before -> $after\"\n\
                 {a} ip link set dev {ifa} xdpgeneric off\n\
                 rm -rf /sys/fs/bpf/xdp /sys/fs/bpf/tc /sys/fs/bpf/ip 2>/dev/null || true\n",
                ifa = p.if_a,
                obj = obj.display(),
                ping = ping_line(p, "ping of a"),
            )
        },
        |p| {
            let c = bpftime_tests::netns::Netns::new("ex-devmap-c").unwrap();
            p.a.ip(&[
                "link",
                "add",
                "fwd0",
                "type",
                "veth",
                "peer",
                "name",
                "fwd1",
                "netns",
                c.name(),
            ])
            .unwrap();
            p.a.ip(&["link", "set", "fwd0", "up"]).unwrap();
            c.ip(&["link", "set", "fwd1", "up"]).unwrap();
            third.borrow_mut().push(c);
        },
        &["ping of a: no answer", "forwarded"],
    );
}

/// The README's first command: examples/demo.sh (with the binaries of this build).
#[test]
fn readme_demo_runs() {
    if !require(NEEDS) {
        return;
    }
    let out = Command::new("bash")
        .arg(examples_dir().join("demo.sh"))
        .env("BPFTIME_BIN_DIR", target_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The loader's last line counts the 5 pings (and ARP/ICMPv6 noise).
    let last = stdout
        .lines()
        .rfind(|l| l.starts_with("t="))
        .unwrap_or_else(|| panic!("no counts printed: {stdout}"));
    let field = |k: &str| -> u64 {
        last.split_whitespace()
            .find_map(|t| t.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(field("icmp=") >= 5, "pings not counted: {last}");
    assert!(
        field("total=") >= field("icmp="),
        "total below icmp: {last}"
    );
    assert!(
        stdout.contains("\"key\"") || stdout.contains("key:"),
        "bpftool map dump printed nothing: {stdout}"
    );
}
