//! `bpftime`: the daemon (`bpftime daemon`), `bpftime status [--json]`, `bpftime top`,
//! `bpftime stop`,
//! `bpftime tracelog` (the `bpf_trace_printk` output, as `bpftool prog tracelog`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::Value;

use bpftime_supervisor::names;
use bpftime_supervisor::proto::{self, Request};

#[derive(Parser, Debug)]
#[command(
    name = "bpftime",
    version,
    about = "bpftime: userspace XDP behind the kernel's API"
)]
struct Cli {
    /// The daemon's socket (default: $BPFTIME_SOCKET or /run/bpftime/bpftimed.sock).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// More logs (or RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the daemon in the foreground.
    Daemon {
        /// Where the daemon mounts its bpffs (default: <socket dir>/bpffs, or
        /// <socket dir>/<socket name>.bpffs for a socket not named bpftimed.sock).
        #[arg(long)]
        bpffs: Option<PathBuf>,
        /// Serve Prometheus/OpenMetrics text on http://ADDR/metrics (e.g.
        /// 127.0.0.1:9435); off by default.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Data-plane workers keep polling their ring for this many microseconds after
        /// the last packet before they sleep: lower latency for packets that come
        /// within it, at the cost of CPU while it lasts; "always" never sleeps (one busy
        /// core per queue). Default 0. bpftime-run passes its environment to a daemon it
        /// starts, so `BPFTIME_BUSY_POLL_US` sets it there too.
        #[arg(long, value_name = "US|always", env = "BPFTIME_BUSY_POLL_US", default_value = "0", value_parser = parse_busy_poll)]
        busy_poll_us: std::time::Duration,
        /// UMEM frames (4 KiB each) per attached queue, a power of two from 64 to
        /// 65536: the memory each queue pins, and the packets it holds while its worker
        /// is late (more: fewer drops under bursts).
        #[arg(long, value_name = "N", env = "BPFTIME_UMEM_FRAMES", default_value_t = bpftime_netdev::DEFAULT_FRAMES_PER_QUEUE, value_parser = parse_frames)]
        umem_frames: u32,
    },
    /// Programs, maps, links, pins and attachments of the daemon.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// A live view: packets per second per interface, queue and verdict, program run
    /// rates (q quits, s sorts, arrows select).
    Top,
    /// Stop the daemon (clean shutdown).
    Stop,
    /// Print `bpf_trace_printk` output as it comes (the daemon's trace pipe, as
    /// `bpftool prog tracelog` reads the kernel's). Reading consumes; Ctrl-C stops.
    Tracelog,
}

/// `--busy-poll-us`: microseconds, or "always".
fn parse_busy_poll(s: &str) -> Result<std::time::Duration, String> {
    if s == "always" {
        return Ok(std::time::Duration::MAX);
    }
    s.parse::<u64>()
        .map(std::time::Duration::from_micros)
        .map_err(|_| format!("{s:?}: microseconds or \"always\""))
}

/// `--umem-frames`: a power of two from 64 to 65536.
fn parse_frames(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && (64..=65536).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: a power of two from 64 to 65536")),
    }
}

fn main() {
    let cli = Cli::parse();
    bpftime_supervisor::init_tracing(match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    });
    let socket = proto::socket_path(cli.socket);
    let r = match cli.cmd {
        Cmd::Daemon {
            bpffs,
            metrics,
            busy_poll_us,
            umem_frames,
        } => bpftime_supervisor::daemon::run(bpftime_supervisor::daemon::DaemonOpts {
            socket,
            bpffs,
            metrics,
            busy_poll: busy_poll_us,
            umem_frames,
        }),
        Cmd::Status { json } => status(&socket, json),
        Cmd::Top => bpftime_supervisor::top::run(&socket),
        Cmd::Stop => stop(&socket),
        Cmd::Tracelog => tracelog(&socket),
    };
    if let Err(e) = r {
        eprintln!("bpftime: {e:#}");
        std::process::exit(1);
    }
}

fn tracelog(socket: &std::path::Path) -> anyhow::Result<()> {
    let path =
        bpftime_supervisor::daemon::beside(socket, bpftime_supervisor::daemon::trace_pipe::NAME);
    let mut pipe = std::fs::File::open(&path)
        .with_context(|| format!("opening {} (is the daemon running?)", path.display()))?;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    loop {
        let n = std::io::Read::read(&mut pipe, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        std::io::Write::write_all(&mut out, &buf[..n])?;
        std::io::Write::flush(&mut out)?;
    }
}

fn status(socket: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let v = proto::request(socket, &Request::Status)
        .with_context(|| format!("no daemon on {}", socket.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "daemon pid {}  socket {}  bpffs {}",
        v["pid"],
        v["socket"].as_str().unwrap_or(""),
        v["bpffs"].as_str().unwrap_or("")
    );
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    println!(
        "\nPROGRAMS\n{:>5}  {:<14} {:<16} {:<16} {:>6} {:>9} {:>9}  maps",
        "id", "type", "name", "tag", "insns", "runs", "ns/run"
    );
    for p in list("programs") {
        let (cnt, ns) = (
            p["run_cnt"].as_u64().unwrap_or(0),
            p["run_time_ns"].as_u64().unwrap_or(0),
        );
        // Run counts exist while BPF_ENABLE_STATS is on (as in the kernel).
        let per_run = if cnt > 0 {
            format!("{:.1}", ns as f64 / cnt as f64)
        } else {
            "-".into()
        };
        println!(
            "{:>5}  {:<14} {:<16} {:<16} {:>6} {:>9} {:>9}  {}",
            s(&p["id"]),
            s(&p["type_name"]),
            s(&p["name"]),
            s(&p["tag"]),
            s(&p["insns"]),
            names::human(cnt as f64),
            per_run,
            s(&p["map_ids"])
        );
    }
    println!(
        "\nMAPS\n{:>5}  {:<16} {:<16} {:>5} {:>6} {:>8}  flags",
        "id", "type", "name", "key", "value", "max"
    );
    for m in list("maps") {
        println!(
            "{:>5}  {:<16} {:<16} {:>5} {:>6} {:>8}  {}",
            s(&m["id"]),
            s(&m["type_name"]),
            s(&m["name"]),
            s(&m["key_size"]),
            s(&m["value_size"]),
            s(&m["max_entries"]),
            s(&m["flag_names"])
        );
    }
    println!(
        "\nLINKS\n{:>5}  {:<8} {:>7} {:>7}",
        "id", "type", "prog", "ifindex"
    );
    for l in list("links") {
        println!(
            "{:>5}  {:<8} {:>7} {:>7}",
            s(&l["id"]),
            s(&l["type_name"]),
            s(&l["prog_id"]),
            s(&l["ifindex"])
        );
    }
    println!("\nBTF\n{:>5}  {:>8}", "id", "size");
    for b in list("btf") {
        println!("{:>5}  {:>8}", s(&b["id"]), s(&b["size"]));
    }
    println!("\nPINS\n{:<6} {:>5}  path", "kind", "id");
    for p in list("pins") {
        println!("{:<6} {:>5}  {}", s(&p["kind"]), s(&p["id"]), s(&p["path"]));
    }
    println!(
        "\nATTACHMENTS (packets, totals)\n{:>3}  {:<12} {:>7} {:<10} {:<16} {:<10} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "id", "ifname", "ifindex", "mode", "program", "holder", "prog", "rx", "rx bytes", "drop", "pass", "tx",
        "redirect", "aborted"
    );
    for a in list("attachments") {
        let o = &a["owner"];
        let holder = match (s(&o["holder"]).as_str(), &o["link_id"]) {
            ("link", id) => format!("link {}", s(id)),
            (h, _) => h.to_string(),
        };
        // As `bpftool net` names the attach modes.
        let mode = match s(&a["mode"]).as_str() {
            "Skb" => "xdpgeneric".to_string(),
            "Drv" => "xdpdrv".to_string(),
            m => m.to_lowercase(),
        };
        println!(
            "{:>3}  {:<12} {:>7} {:<10} {:<16} {:<10} {:>5} {:>8} {:>7}B {:>8} {:>8} {:>8} {:>8} {:>8}",
            s(&a["id"]),
            s(&a["ifname"]),
            s(&a["ifindex"]),
            mode,
            s(&a["program"]),
            holder,
            s(&o["prog_id"]),
            h(&a["rx_packets"]),
            h(&a["rx_bytes"]),
            h(&a["drop"]),
            h(&a["pass"]),
            h(&a["tx"]),
            h(&a["redirect"]),
            h(&a["aborted"])
        );
    }
    println!("\nTARGETS: {}", list("targets").len());
    Ok(())
}

/// A JSON count with a unit prefix (1.23k, 45.6M).
fn h(v: &Value) -> String {
    v.as_u64().map_or_else(|| s(v), |n| names::human(n as f64))
}

/// A JSON value as plain text (strings unquoted), for padded columns.
fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn stop(socket: &std::path::Path) -> anyhow::Result<()> {
    let v = proto::request(socket, &Request::Stop)
        .with_context(|| format!("no daemon on {}", socket.display()))?;
    if v["ok"] != true {
        bail!("daemon refused: {v}");
    }
    Ok(())
}
