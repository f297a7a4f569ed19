//! Benchmark (a printed table, not a timed test): the control plane from a supervised
//! loader against the same binary on the kernel, in one run — the notification round
//! trip and its floor, single HASH/ARRAY element operations, batch operations, and the
//! libbpf load of every corpus object. Three interleaved rounds, best figure kept.
//! Floors (measured natively by the bench client): `floor`, a bare round trip answered by
//! another process; `floor_map_op`, the same plus the syscalls a map element call needs
//! (read the attr, key and value; check the fd; check the notification is live). The
//! columns `x floor` and `x op` give a call's time over each.
//! `cargo test --release -p bpftime-tests --test supervisor_bench -- --nocapture`
//! (build the release binaries first). It asserts only that every figure exists.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use bpftime_tests::corpus::{self, Flavour};
use bpftime_tests::privilege::{require, Need};
use common::*;

/// name -> (value, unit)
type Figures = BTreeMap<String, (f64, String)>;

fn figures(out: &str) -> Figures {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v, u) = (it.next()?, it.next()?.parse().ok()?, it.next()?);
            Some((k.to_string(), (v, u.to_string())))
        })
        .collect()
}

/// Keeps the better of two figures: the higher rate, the lower time.
fn keep_best(all: &mut Figures, new: Figures) {
    for (k, (v, unit)) in new {
        let higher_is_better = unit.ends_with("/s");
        all.entry(k)
            .and_modify(|(old, _)| {
                if (higher_is_better && v > *old) || (!higher_is_better && v < *old) {
                    *old = v;
                }
            })
            .or_insert((v, unit));
    }
}

/// Time of one call in ns, from a figure.
fn ns_per_call(v: f64, unit: &str) -> Option<f64> {
    match unit {
        "calls/s" => Some(1e9 / v),
        "ns" => Some(v),
        _ => None,
    }
}

#[test]
fn supervisor_benchmark() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("bench");
    let bench = gcc(
        tmp.path(),
        "sv_bench.c",
        "sv_bench",
        false,
        &["-lbpf", "-pthread"],
    );
    let b = bench.to_str().unwrap().to_string();
    let mut objects: Vec<String> = vec![clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o")
        .to_str()
        .unwrap()
        .into()];
    let files: BTreeSet<&str> = corpus::all().iter().map(|p| p.file).collect();
    objects.extend(
        files
            .iter()
            .map(|f| corpus::object(f, Flavour::V3).to_str().unwrap().to_string()),
    );
    // A debug build (the test suite) only checks that every figure comes out.
    let (n, loads, rounds) = if cfg!(debug_assertions) {
        ("2000", "1", 1)
    } else {
        ("20000", "10", 3)
    };
    let mut cases: Vec<Vec<String>> = vec![
        vec![b.clone(), "rt".into(), n.into()],
        vec![b.clone(), "map".into(), "hash".into(), n.into()],
        vec![b.clone(), "map".into(), "array".into(), n.into()],
        vec![b.clone(), "batch".into(), "100000".into()],
    ];
    cases.extend(
        objects
            .iter()
            .map(|o| vec![b.clone(), "load".into(), o.clone(), loads.into()]),
    );
    let d = Daemon::start();
    let (mut kernel, mut ours) = (Figures::new(), Figures::new());
    for _round in 0..rounds {
        keep_best(
            &mut kernel,
            figures(&stdout_ok(
                &Command::new(&b).args(["floor", n]).output().unwrap(),
                "floor",
            )),
        );
        for args in &cases {
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            keep_best(
                &mut kernel,
                figures(&stdout_ok(
                    &Command::new(a[0]).args(&a[1..]).output().unwrap(),
                    "native bench",
                )),
            );
            keep_best(
                &mut ours,
                figures(&stdout_ok(&d.run(&a), "bench under bpftime-run")),
            );
        }
    }
    let floor = kernel.get("floor").map(|f| f.0).expect("a floor figure");
    let op_floor = kernel
        .get("floor_map_op")
        .map(|f| f.0)
        .expect("a floor figure");
    println!(
        "\n{:<22} {:>12} {:>12}  {:<10} {:>8} {:>9} {:>9}",
        "benchmark", "kernel", "bpftime-run", "unit", "ratio", "x floor", "x op"
    );
    let mut load_ratios = Vec::new();
    for (k, (v, unit)) in &kernel {
        if k.starts_with("floor") {
            println!("{k:<22} {:>12} {v:>12.0}  {unit:<10}", "-");
            continue;
        }
        let (w, _) = ours
            .get(k)
            .unwrap_or_else(|| panic!("no bpftime figure for {k}"));
        // ratio: how many times slower (or less) bpftime is than the kernel
        let ratio = if unit.ends_with("/s") { v / w } else { w / v };
        let x = |f: f64| ns_per_call(*w, unit).map_or(String::new(), |ns| format!("{:.2}", ns / f));
        let (x_floor, x_op) = (x(floor), x(op_floor));
        println!("{k:<22} {v:>12.1} {w:>12.1}  {unit:<10} {ratio:>7.2}x {x_floor:>9} {x_op:>9}");
        if k.starts_with("load:") {
            load_ratios.push(ratio);
        }
        assert!(*w > 0.0, "{k}: {w}");
    }
    let geo = (load_ratios.iter().map(|r| r.ln()).sum::<f64>() / load_ratios.len() as f64).exp();
    println!(
        "object loads: geomean {geo:.2}x the kernel's over {} objects",
        load_ratios.len()
    );
    assert!(kernel.len() >= 10 + objects.len(), "{kernel:?}");
}
