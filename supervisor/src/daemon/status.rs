//! `bpftime status`: what the daemon holds, as JSON (the CLI prints a table).
//!
//! The JSON (`bpftime status --json`) keeps the kernel's numbers (`type`, `flags`)
//! and adds bpftool's names beside them (`type_name`, `flag_names`); counters are
//! totals since the attachment or load (`top` and the metrics turn them into rates).

use serde_json::{json, Value};

use super::Daemon;
use crate::names;
use crate::registry::Kind;

/// The status object.
pub fn collect(d: &Daemon) -> Value {
    // Before the registry lock (it takes the device state, then the registry).
    let owners = crate::bpf::link::attachment_owners(d);
    let reg = d.registry.lock().unwrap();
    let progs: Vec<Value> = reg
        .all(Kind::Prog)
        .map(|o| {
            let p = o.as_prog().unwrap();
            let maps: Vec<u32> = p.maps.lock().unwrap().iter().map(|m| m.id).collect();
            json!({"id": o.id, "type": p.prog.prog_type, "type_name": names::prog_type(p.prog.prog_type),
                   "name": p.prog.name, "tag": hex(&p.prog.tag),
                   "insns": p.prog.insn_cnt(), "map_ids": maps,
                   "run_cnt": p.prog.vm.run_cnt(), "run_time_ns": p.prog.vm.run_time_ns()})
        })
        .collect();
    let maps: Vec<Value> = reg
        .all(Kind::Map)
        .map(|o| {
            let a = o.as_map().unwrap().map.attr().clone();
            json!({"id": o.id, "type": a.map_type, "type_name": names::map_type(a.map_type),
                   "name": a.name, "key_size": a.key_size,
                   "value_size": a.value_size, "max_entries": a.max_entries, "flags": a.map_flags,
                   "flag_names": names::map_flags(a.map_flags)})
        })
        .collect();
    let links: Vec<Value> = reg
        .all(Kind::Link)
        .map(|o| {
            let l = o.as_link().unwrap();
            json!({"id": o.id, "type": l.link_type, "type_name": names::link_type(l.link_type),
                   "prog_id": l.prog.lock().unwrap().id,
                   "ifindex": l.ifindex.load(std::sync::atomic::Ordering::Relaxed)})
        })
        .collect();
    let btfs: Vec<Value> = reg
        .all(Kind::Btf)
        .map(|o| json!({"id": o.id, "size": o.as_btf().unwrap().data.len()}))
        .collect();
    let pins: Vec<Value> = d
        .fs
        .get()
        .map(|fs| {
            fs.pins()
                .into_iter()
                .map(|(p, o)| json!({"path": d.bpffs.join(p), "kind": format!("{:?}", o.kind).to_lowercase(), "id": o.id}))
                .collect()
        })
        .unwrap_or_default();
    let targets: Vec<Value> = d
        .targets
        .lock()
        .unwrap()
        .values()
        .map(|t| json!(t))
        .collect();
    json!({
        "ok": true,
        "pid": std::process::id(),
        "socket": d.socket,
        "bpffs": d.bpffs,
        "notifications": d.notifications.load(std::sync::atomic::Ordering::Relaxed),
        "programs": progs,
        "maps": maps,
        "links": links,
        "btf": btfs,
        "pins": pins,
        "attachments": d.dataplane.list().into_iter()
            .map(|(id, st)| attachment(id.0, &st, owners.get(&id.0)))
            .collect::<Vec<_>>(),
        "targets": targets,
    })
}

/// One data-plane attachment: its totals, then each queue's counters.
fn attachment(id: u64, st: &bpftime_netdev::Stats, owner: Option<&Value>) -> Value {
    let mut v = counters(&st.total);
    let extra = json!({
        "id": id, "ifindex": st.ifindex, "ifname": st.ifname, "mode": format!("{:?}", st.mode),
        "program": st.program, "owner": owner, "queues": st.queues.len(),
        "zero_copy": st.zero_copy,
        "per_queue": st.queues.iter().map(|q| {
            let mut c = counters(q);
            c["queue"] = json!(q.queue);
            c
        }).collect::<Vec<_>>(),
    });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

/// The counters of one queue (or of their sum).
fn counters(q: &bpftime_netdev::QueueStats) -> Value {
    json!({
        "rx_packets": q.rx_packets, "rx_bytes": q.rx_bytes, "drop": q.drop, "pass": q.pass,
        "tx": q.tx, "redirect": q.redirect, "aborted": q.aborted, "exceptions": q.exceptions,
        "pass_failures": q.pass_failures, "csum_finished": q.csum_finished,
        "tx_failures": q.tx_failures, "redirect_failures": q.redirect_failures,
        "kernel_rx_dropped": q.kernel_rx_dropped, "kernel_rx_ring_full": q.kernel_rx_ring_full,
        "kernel_fill_ring_empty": q.kernel_fill_ring_empty,
        "worker_cpu_ns": q.worker_cpu_ns,
    })
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
