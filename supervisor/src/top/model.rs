//! What `bpftime top` shows, computed from two `status` snapshots: rates per interface
//! and queue, per program, and a short history per interface. No terminal here.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde_json::Value;

/// Samples of history kept per interface (one per refresh).
pub const HISTORY: usize = 60;

/// The columns rows can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Rx,
    Drop,
    Pass,
    Name,
}

impl SortKey {
    pub fn next(self) -> Self {
        match self {
            SortKey::Rx => SortKey::Drop,
            SortKey::Drop => SortKey::Pass,
            SortKey::Pass => SortKey::Name,
            SortKey::Name => SortKey::Rx,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Rx => "rx/s",
            SortKey::Drop => "drop/s",
            SortKey::Pass => "pass/s",
            SortKey::Name => "name",
        }
    }
}

/// One interface (queue `None`) or one of its queues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IfRow {
    pub attachment: u64,
    pub ifname: String,
    pub mode: String,
    pub program: String,
    pub queue: Option<u64>,
    pub rx_pps: f64,
    pub drop_pps: f64,
    pub pass_pps: f64,
    pub tx_pps: f64,
    pub redirect_pps: f64,
    pub aborted_pps: f64,
    /// Share of one CPU the worker(s) used over the last interval (1.0 = a full core).
    pub cpu: f64,
    /// Totals since attach.
    pub exceptions: u64,
    pub kernel_drops: u64,
    pub pass_failures: u64,
}

/// One program.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgRow {
    pub id: u64,
    pub name: String,
    pub type_name: String,
    pub runs_per_s: f64,
    /// Average over the last interval (None: no runs counted; stats are off).
    pub ns_per_run: Option<f64>,
}

/// The state of the view between refreshes.
pub struct Model {
    prev: Option<(Instant, Value)>,
    now: Option<(Instant, Value)>,
    history: HashMap<u64, VecDeque<u64>>,
    pub sort: SortKey,
    /// Index of the selected interface among [`Model::interfaces`].
    pub selected: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            prev: None,
            now: None,
            history: HashMap::new(),
            sort: SortKey::Rx,
            selected: 0,
        }
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn rate(cur: &Value, prev: Option<&Value>, key: &str, dt: f64) -> f64 {
    match prev {
        Some(p) if dt > 0.0 => u(&cur[key]).saturating_sub(u(&p[key])) as f64 / dt,
        _ => 0.0,
    }
}

impl Model {
    /// Takes a new snapshot (the reply to `Request::Status`).
    pub fn update(&mut self, status: Value, at: Instant) {
        self.prev = self.now.take();
        self.now = Some((at, status));
        let rows = self.interfaces();
        for r in rows.iter().filter(|r| r.queue.is_none()) {
            let h = self.history.entry(r.attachment).or_default();
            h.push_back(r.rx_pps.round() as u64);
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        let live: Vec<u64> = rows.iter().map(|r| r.attachment).collect();
        self.history.retain(|k, _| live.contains(k));
        let n = rows.iter().filter(|r| r.queue.is_none()).count();
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    fn dt(&self) -> f64 {
        match (&self.prev, &self.now) {
            (Some((a, _)), Some((b, _))) => b.duration_since(*a).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// The daemon's status as last seen.
    pub fn status(&self) -> Option<&Value> {
        self.now.as_ref().map(|(_, v)| v)
    }

    /// Interfaces, each followed by its queues when it has more than one; sorted.
    pub fn interfaces(&self) -> Vec<IfRow> {
        let Some((_, cur)) = &self.now else {
            return vec![];
        };
        let dt = self.dt();
        let prev = self.prev.as_ref().map(|(_, v)| v);
        let find_prev = |id: u64| {
            prev.and_then(|p| {
                p["attachments"]
                    .as_array()?
                    .iter()
                    .find(|a| u(&a["id"]) == id)
                    .cloned()
            })
        };
        let row = |a: &Value, p: Option<&Value>, base: &IfRow, queue: Option<u64>| IfRow {
            queue,
            rx_pps: rate(a, p, "rx_packets", dt),
            drop_pps: rate(a, p, "drop", dt),
            pass_pps: rate(a, p, "pass", dt),
            tx_pps: rate(a, p, "tx", dt),
            redirect_pps: rate(a, p, "redirect", dt),
            aborted_pps: rate(a, p, "aborted", dt),
            cpu: rate(a, p, "worker_cpu_ns", dt) / 1e9,
            exceptions: u(&a["exceptions"]),
            kernel_drops: u(&a["kernel_rx_dropped"]) + u(&a["kernel_rx_ring_full"]),
            pass_failures: u(&a["pass_failures"]),
            ..base.clone()
        };
        let mut groups: Vec<(IfRow, Vec<IfRow>)> = cur["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let id = u(&a["id"]);
                let base = IfRow {
                    attachment: id,
                    ifname: a["ifname"].as_str().unwrap_or("").into(),
                    mode: a["mode"].as_str().unwrap_or("").to_lowercase(),
                    program: a["program"].as_str().unwrap_or("").into(),
                    ..Default::default()
                };
                let p = find_prev(id);
                let top = row(a, p.as_ref(), &base, None);
                let queues: Vec<IfRow> = a["per_queue"]
                    .as_array()
                    .filter(|q| q.len() > 1)
                    .map(|qs| {
                        qs.iter()
                            .map(|q| {
                                let n = u(&q["queue"]);
                                let pq = p.as_ref().and_then(|p| {
                                    p["per_queue"]
                                        .as_array()?
                                        .iter()
                                        .find(|x| u(&x["queue"]) == n)
                                        .cloned()
                                });
                                row(q, pq.as_ref(), &base, Some(n))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (top, queues)
            })
            .collect();
        groups.sort_by(|(a, _), (b, _)| match self.sort {
            SortKey::Rx => b.rx_pps.total_cmp(&a.rx_pps),
            SortKey::Drop => b.drop_pps.total_cmp(&a.drop_pps),
            SortKey::Pass => b.pass_pps.total_cmp(&a.pass_pps),
            SortKey::Name => a.ifname.cmp(&b.ifname),
        });
        groups
            .into_iter()
            .flat_map(|(t, q)| std::iter::once(t).chain(q))
            .collect()
    }

    /// Programs with their run rates.
    pub fn programs(&self) -> Vec<ProgRow> {
        let Some((_, cur)) = &self.now else {
            return vec![];
        };
        let dt = self.dt();
        let prev = self.prev.as_ref().map(|(_, v)| v);
        let mut rows: Vec<ProgRow> = cur["programs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let id = u(&p["id"]);
                let pp = prev.and_then(|v| {
                    v["programs"]
                        .as_array()?
                        .iter()
                        .find(|x| u(&x["id"]) == id)
                        .cloned()
                });
                let runs = pp
                    .as_ref()
                    .map_or(0, |pp| u(&p["run_cnt"]).saturating_sub(u(&pp["run_cnt"])));
                let ns = pp.as_ref().map_or(0, |pp| {
                    u(&p["run_time_ns"]).saturating_sub(u(&pp["run_time_ns"]))
                });
                ProgRow {
                    id,
                    name: p["name"].as_str().unwrap_or("").into(),
                    type_name: p["type_name"].as_str().unwrap_or("").into(),
                    runs_per_s: if dt > 0.0 { runs as f64 / dt } else { 0.0 },
                    ns_per_run: (runs > 0).then(|| ns as f64 / runs as f64),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.runs_per_s.total_cmp(&a.runs_per_s).then(a.id.cmp(&b.id)));
        rows
    }

    /// The rx history of the selected interface (oldest first) and its name.
    pub fn selected_history(&self) -> Option<(String, Vec<u64>)> {
        let r = self.selected_row()?;
        let h = self.history.get(&r.attachment)?;
        Some((r.ifname, h.iter().copied().collect()))
    }

    /// The interface row (not a queue) at [`Model::selected`].
    pub fn selected_row(&self) -> Option<IfRow> {
        self.interfaces()
            .into_iter()
            .filter(|r| r.queue.is_none())
            .nth(self.selected)
    }

    /// Number of interfaces (for the selection).
    pub fn interface_count(&self) -> usize {
        self.interfaces()
            .iter()
            .filter(|r| r.queue.is_none())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn snap(rx: u64, pass: u64, q: [u64; 2], runs: u64, ns: u64) -> Value {
        json!({"attachments": [{"id": 1, "ifname": "veth0", "mode": "Drv", "program": "p",
            "rx_packets": rx, "pass": pass, "drop": rx - pass, "exceptions": 2,
            "worker_cpu_ns": rx * 10_000_000,
            "per_queue": [{"queue": 0, "rx_packets": q[0]}, {"queue": 1, "rx_packets": q[1]}]}],
            "programs": [{"id": 7, "name": "p", "type_name": "xdp", "run_cnt": runs, "run_time_ns": ns}]})
    }

    #[test]
    fn rates_from_two_snapshots() {
        let mut m = Model::default();
        let t = Instant::now();
        m.update(snap(100, 40, [60, 40], 100, 1000), t);
        assert_eq!(m.interfaces()[0].rx_pps, 0.0, "one snapshot: no rate yet");
        m.update(
            snap(300, 90, [160, 140], 300, 5000),
            t + Duration::from_secs(2),
        );
        let rows = m.interfaces();
        assert_eq!(rows.len(), 3, "the interface and its two queues");
        assert_eq!(rows[0].rx_pps, 100.0);
        assert_eq!(rows[0].pass_pps, 25.0);
        assert_eq!(rows[0].drop_pps, 75.0);
        assert_eq!(rows[0].exceptions, 2);
        assert!((rows[0].cpu - 1.0).abs() < 1e-9, "{}", rows[0].cpu);
        assert_eq!(rows[0].mode, "drv");
        assert_eq!((rows[1].queue, rows[1].rx_pps), (Some(0), 50.0));
        assert_eq!((rows[2].queue, rows[2].rx_pps), (Some(1), 50.0));
        let p = &m.programs()[0];
        assert_eq!((p.runs_per_s, p.ns_per_run), (100.0, Some(20.0)));
        assert_eq!(m.selected_history(), Some(("veth0".into(), vec![0, 100])));
    }
}
