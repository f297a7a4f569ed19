//! `bpftime daemon --metrics ADDR`: the daemon's counters for monitoring systems, as
//! Prometheus/OpenMetrics text on `GET /metrics` (off unless asked for).
//!
//! Each scrape reads the same sources as `bpftime status` (per-queue data-plane
//! counters, per-program run statistics, object counts) into a fresh registry, so the
//! totals of a scrape and of `status --json` taken at the same moment agree.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `bpftime_xdp_packets_total` | counter | interface, ifindex, mode, queue, verdict |
//! | `bpftime_xdp_rx_packets_total`, `_rx_bytes_total` | counter | interface, ifindex, mode, queue |
//! | `bpftime_xdp_exceptions_total`, `_pass_failures_total`, `_tx_failures_total`, `_redirect_failures_total`, `_kernel_rx_dropped_total`, `_kernel_rx_ring_full_total` | counter | same |
//! | `bpftime_xdp_worker_cpu_seconds_total` | counter | same |
//! | `bpftime_prog_runs_total`, `bpftime_prog_run_time_seconds_total` | counter | id, name, prog_type |
//! | `bpftime_programs`, `bpftime_maps`, `bpftime_links`, `bpftime_attachments` | gauge | |
//! | `bpftime_notifications_total` | counter | |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use super::Daemon;
use crate::registry::Kind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    interface: String,
    ifindex: u32,
    mode: String,
    queue: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    interface: String,
    ifindex: u32,
    mode: String,
    queue: u32,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgLabels {
    id: u32,
    name: String,
    prog_type: String,
}

/// The exposition text of one scrape.
pub fn render(d: &Daemon) -> String {
    let mut reg = Registry::with_prefix("bpftime");
    let verdicts = Family::<VerdictLabels, Counter>::default();
    reg.register(
        "xdp_packets",
        "Frames by the XDP program's verdict",
        verdicts.clone(),
    );
    let queue_counters: Vec<(&str, &str, Family<QueueLabels, Counter>)> = vec![
        (
            "xdp_rx_packets",
            "Frames taken from the kernel",
            Family::default(),
        ),
        ("xdp_rx_bytes", "Bytes of those frames", Family::default()),
        (
            "xdp_exceptions",
            "XDP_ABORTED, unknown verdicts, invalid frames",
            Family::default(),
        ),
        (
            "xdp_pass_failures",
            "XDP_PASS frames the kernel refused to take",
            Family::default(),
        ),
        (
            "xdp_tx_failures",
            "XDP_TX frames that found the TX ring full",
            Family::default(),
        ),
        (
            "xdp_redirect_failures",
            "XDP_REDIRECT frames that could not be sent",
            Family::default(),
        ),
        (
            "xdp_kernel_rx_dropped",
            "Frames the kernel dropped before the socket",
            Family::default(),
        ),
        (
            "xdp_kernel_rx_ring_full",
            "Frames dropped on a full RX ring",
            Family::default(),
        ),
    ];
    for (name, help, f) in &queue_counters {
        reg.register(*name, *help, f.clone());
    }
    let cpu = Family::<QueueLabels, Counter<f64, AtomicU64>>::default();
    reg.register(
        "xdp_worker_cpu_seconds",
        "CPU time of the queue's worker thread",
        cpu.clone(),
    );
    let attachments = d.dataplane.list();
    for (_, st) in &attachments {
        for q in &st.queues {
            let l = QueueLabels {
                interface: st.ifname.clone(),
                ifindex: st.ifindex,
                mode: format!("{:?}", st.mode).to_lowercase(),
                queue: q.queue,
            };
            for (verdict, v) in [
                ("drop", q.drop),
                ("pass", q.pass),
                ("tx", q.tx),
                ("redirect", q.redirect),
                ("aborted", q.aborted),
            ] {
                verdicts
                    .get_or_create(&VerdictLabels {
                        interface: l.interface.clone(),
                        ifindex: l.ifindex,
                        mode: l.mode.clone(),
                        queue: l.queue,
                        verdict: verdict.into(),
                    })
                    .inc_by(v);
            }
            let values = [
                q.rx_packets,
                q.rx_bytes,
                q.exceptions,
                q.pass_failures,
                q.tx_failures,
                q.redirect_failures,
                q.kernel_rx_dropped,
                q.kernel_rx_ring_full,
            ];
            for ((_, _, f), v) in queue_counters.iter().zip(values) {
                f.get_or_create(&l).inc_by(v);
            }
            cpu.get_or_create(&l).inc_by(q.worker_cpu_ns as f64 / 1e9);
        }
    }
    let runs = Family::<ProgLabels, Counter>::default();
    let run_time = Family::<ProgLabels, Counter<f64, AtomicU64>>::default();
    reg.register(
        "prog_runs",
        "Runs of each program (counted while BPF_ENABLE_STATS is on)",
        runs.clone(),
    );
    reg.register(
        "prog_run_time_seconds",
        "Time spent in each program (while BPF_ENABLE_STATS is on)",
        run_time.clone(),
    );
    let gauges = [
        ("programs", "Loaded programs"),
        ("maps", "Maps"),
        ("links", "Links"),
        (
            "attachments",
            "Interfaces with an XDP program in the data plane",
        ),
    ]
    .map(|(n, h)| {
        let g = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        reg.register(n, h, g.clone());
        g
    });
    {
        let r = d.registry.lock().unwrap();
        for o in r.all(Kind::Prog) {
            let p = &o.as_prog().unwrap().prog;
            let l = ProgLabels {
                id: o.id,
                name: p.name.clone(),
                prog_type: crate::names::prog_type(p.prog_type),
            };
            runs.get_or_create(&l).inc_by(p.vm.run_cnt());
            run_time
                .get_or_create(&l)
                .inc_by(p.vm.run_time_ns() as f64 / 1e9);
        }
        gauges[0].set(r.count(Kind::Prog) as i64);
        gauges[1].set(r.count(Kind::Map) as i64);
        gauges[2].set(r.count(Kind::Link) as i64);
    }
    gauges[3].set(attachments.len() as i64);
    let notifications = Counter::<u64>::default();
    notifications.inc_by(d.notifications.load(Ordering::Relaxed));
    reg.register(
        "notifications",
        "Syscall notifications served",
        notifications,
    );
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
        warn!("metrics: encoding: {e}");
    }
    out
}

/// Serves `/metrics` on `addr` from a thread of its own.
pub fn serve(d: Arc<Daemon>, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("metrics on {addr}: {e}"))?;
    info!(%addr, "metrics: serving /metrics");
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let resp = if req.url() == "/metrics" || req.url().starts_with("/metrics?") {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                    )
                    .expect("a valid header");
                    tiny_http::Response::from_string(render(&d)).with_header(header)
                } else {
                    tiny_http::Response::from_string("bpftime: see /metrics\n")
                        .with_status_code(404)
                };
                let _ = req.respond(resp);
            }
        })?;
    Ok(())
}
