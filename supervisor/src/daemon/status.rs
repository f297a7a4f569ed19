//! `bpftime status`: what the daemon holds, as JSON (the CLI prints a table).

use serde_json::{json, Value};

use super::Daemon;
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
            json!({"id": o.id, "type": p.prog.prog_type, "name": p.prog.name, "tag": hex(&p.prog.tag),
                   "insns": p.prog.insn_cnt(), "map_ids": maps})
        })
        .collect();
    let maps: Vec<Value> = reg
        .all(Kind::Map)
        .map(|o| {
            let a = o.as_map().unwrap().map.attr().clone();
            json!({"id": o.id, "type": a.map_type, "name": a.name, "key_size": a.key_size,
                   "value_size": a.value_size, "max_entries": a.max_entries, "flags": a.map_flags})
        })
        .collect();
    let links: Vec<Value> = reg
        .all(Kind::Link)
        .map(|o| {
            let l = o.as_link().unwrap();
            json!({"id": o.id, "type": l.link_type, "prog_id": l.prog.lock().unwrap().id,
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
        "attachments": d.dataplane.list().into_iter().map(|(id, st)| json!({
            "id": id.0, "ifindex": st.ifindex, "ifname": st.ifname, "mode": format!("{:?}", st.mode),
            "program": st.program, "rx_packets": st.total.rx_packets,
            "owner": owners.get(&id.0), "queues": st.queues.len(), "zero_copy": st.zero_copy,
            "rx_bytes": st.total.rx_bytes, "drop": st.total.drop, "pass": st.total.pass,
            "tx": st.total.tx, "redirect": st.total.redirect, "aborted": st.total.aborted,
            "exceptions": st.total.exceptions, "pass_failures": st.total.pass_failures,
            "csum_finished": st.total.csum_finished, "tx_failures": st.total.tx_failures,
            "redirect_failures": st.total.redirect_failures})).collect::<Vec<_>>(),
        "targets": targets,
    })
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
