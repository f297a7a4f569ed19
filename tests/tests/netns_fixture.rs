//! The network-namespace fixture works: frames sent from one side arrive on the other,
//! ping works over IPv4 and IPv6, and the namespaces are gone after drop (also on panic).

use std::time::Duration;

use bpftime_tests::netns::{Netns, VethPair};
use bpftime_tests::packets::Builder;
use bpftime_tests::privilege::{require, Need};

fn ns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

#[test]
fn frame_crosses_the_veth() {
    if !require(&[Need::Root, Need::Netns]) {
        return;
    }
    let pair = VethPair::new("frame_crosses").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let rx = pair.b.packet_socket(&pair.if_b).unwrap();
    let tx = pair.a.packet_socket(&pair.if_a).unwrap();
    let frame = Builder::ipv4([10, 77, 0, 1], [10, 77, 0, 2])
        .macs(pair.mac_a, pair.mac_b)
        .udp(4242, 4243)
        .payload(&b"bpftime netns fixture"[..])
        .build();
    for _ in 0..3 {
        tx.send(&frame).unwrap();
    }
    let got = rx
        .recv_matching(Duration::from_secs(2), |f| f == frame)
        .unwrap();
    let got = got.expect("the frame arrives on the other side");
    assert_eq!(got.pkttype, libc::PACKET_HOST);
    let more = rx
        .count_matching(Duration::from_millis(300), |f| f == frame)
        .unwrap();
    assert_eq!(1 + more, 3, "all three frames arrive, once each");
    // and nothing of ours arrives back on side a (only our own outgoing copies)
    let echoed = tx
        .count_matching(Duration::from_millis(100), |f| f == frame)
        .unwrap();
    assert_eq!(echoed, 0);
}

#[test]
fn ping_works_both_families() {
    if !require(&[Need::Root, Need::Netns]) {
        return;
    }
    let pair = VethPair::new("ping_works").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    for dst in [pair.ip_b.to_string(), pair.ip6_b.to_string()] {
        let out = pair
            .a
            .command("ping", &["-c", "1", "-W", "2", &dst])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ping {dst}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn namespaces_are_removed_even_on_panic() {
    if !require(&[Need::Root, Need::Netns]) {
        return;
    }
    let names = std::sync::Mutex::new(Vec::new());
    let r = std::panic::catch_unwind(|| {
        let pair = VethPair::new("cleanup_on_panic").unwrap();
        names
            .lock()
            .unwrap()
            .extend([pair.a.name().to_string(), pair.b.name().to_string()]);
        assert!(ns_exists(pair.a.name()) && ns_exists(pair.b.name()));
        panic!("test body fails");
    });
    assert!(r.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 2);
    for n in names {
        assert!(!ns_exists(&n), "{n} is left behind");
    }
}

#[test]
fn run_enters_the_namespace() {
    if !require(&[Need::Root, Need::Netns]) {
        return;
    }
    let ns = Netns::new("run_enters").unwrap();
    let inside = ns
        .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
        .unwrap();
    let outside = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    assert_ne!(inside, outside);
    assert_eq!(ns.ifindex("lo").unwrap(), 1);
    assert!(ns.ifindex("no-such-if").is_err());
}
