//! `bpftime daemon --metrics ADDR`: a Prometheus scrape, parsed with a Prometheus text
//! parser, shows the same totals as `bpftime status --json` for a program attached to a
//! veth that real frames went through.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bpftime_tests::corpus::{self, Flavour};
use bpftime_tests::netns::VethPair;
use bpftime_tests::packets::Builder;
use bpftime_tests::privilege::{require, Need};
use common::*;

fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// Sum of the samples named `name` whose labels include all of `want`.
fn sum(scrape: &prometheus_parse::Scrape, name: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| want.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn a_scrape_matches_status() {
    if !require(&[Need::Root, Need::Netns, Need::Bpf]) {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(&["--metrics", &addr]);
    let pair = VethPair::new("metrics").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let obj = corpus::object("pass_all", Flavour::V3);
    let (ns, dev) = (pair.b.name(), pair.if_b.as_str());
    d.ip_link_set_in(
        ns,
        dev,
        &["xdpgeneric", "obj", obj.to_str().unwrap(), "sec", "xdp"],
    );
    let tx = pair.a.packet_socket(&pair.if_a).unwrap();
    let frame = Builder::ipv4([10, 77, 0, 1], [10, 77, 0, 2])
        .macs(pair.mac_a, pair.mac_b)
        .udp(7000, 9)
        .payload(vec![0x5a; 100])
        .build();
    for _ in 0..50 {
        tx.send(&frame).unwrap();
    }
    // Wait until the counters stop moving (the veth also carries the stack's own frames).
    let t0 = Instant::now();
    let mut last = u64::MAX;
    let st = loop {
        std::thread::sleep(Duration::from_millis(300));
        let st = d.status();
        let rx = st["attachments"][0]["rx_packets"].as_u64().unwrap_or(0);
        if rx >= 50 && rx == last {
            break st;
        }
        last = rx;
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "frames did not arrive: {st}"
        );
    };
    let (head, body) = get(&addr, "/metrics");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200"),
        "{head}"
    );
    assert!(head.to_lowercase().contains("openmetrics-text"), "{head}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let a = &st["attachments"][0];
    let iface = [("interface", pair.if_b.as_str())];
    for (metric, field) in [
        ("bpftime_xdp_rx_packets_total", "rx_packets"),
        ("bpftime_xdp_rx_bytes_total", "rx_bytes"),
        ("bpftime_xdp_exceptions_total", "exceptions"),
        ("bpftime_xdp_pass_failures_total", "pass_failures"),
    ] {
        assert_eq!(
            sum(&scrape, metric, &iface),
            a[field].as_u64().unwrap() as f64,
            "{metric} vs status {field}:\n{body}"
        );
    }
    for verdict in ["pass", "drop", "tx", "redirect", "aborted"] {
        let want = [("interface", pair.if_b.as_str()), ("verdict", verdict)];
        assert_eq!(
            sum(&scrape, "bpftime_xdp_packets_total", &want),
            a[verdict].as_u64().unwrap() as f64,
            "verdict {verdict}:\n{body}"
        );
    }
    assert!(a["pass"].as_u64().unwrap() >= 50, "{a}");
    assert!(
        sum(&scrape, "bpftime_xdp_worker_cpu_seconds_total", &iface) > 0.0,
        "the worker ran:\n{body}"
    );
    let progs = st["programs"].as_array().unwrap().len() as f64;
    assert_eq!(sum(&scrape, "bpftime_programs", &[]), progs, "{body}");
    assert_eq!(sum(&scrape, "bpftime_attachments", &[]), 1.0, "{body}");
    // The program's run counter is there (0: BPF_ENABLE_STATS is off, as in the kernel).
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "bpftime_prog_runs_total"
                && s.labels.get("name") == Some("pass_all")
                && s.labels.get("prog_type") == Some("xdp")),
        "{body}"
    );
    let (head, _) = get(&addr, "/other");
    assert!(head.contains(" 404"), "{head}");
    // Detach: the interface is gone from the next scrape.
    d.ip_link_set_in(ns, dev, &["xdpgeneric", "off"]);
    let (_, body) = get(&addr, "/metrics");
    assert!(
        !body.contains(&format!("interface=\"{}\"", pair.if_b)),
        "{body}"
    );
}
