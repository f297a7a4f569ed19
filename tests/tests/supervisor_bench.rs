//! Benchmark (printed table, one run): notification round trip, map update/lookup
//! calls per second, libbpf object load time — natively (kernel) and under bpftime-run.
//! Run with `--nocapture` to see the table; it asserts only that every figure exists.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use bpftime_tests::privilege::{require, Need};
use common::*;

fn figures(out: &str) -> BTreeMap<String, (f64, String)> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v, u) = (it.next()?, it.next()?.parse().ok()?, it.next()?);
            Some((k.to_string(), (v, u.to_string())))
        })
        .collect()
}

#[test]
fn supervisor_benchmark() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("bench");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let bench = gcc(tmp.path(), "sv_bench.c", "sv_bench", false, &["-lbpf"]);
    let (b, o) = (bench.to_str().unwrap(), obj.to_str().unwrap());
    let d = Daemon::start();
    let cases: [&[&str]; 3] = [
        &[b, "rt", "20000"],
        &[b, "map", "20000"],
        &[b, "load", o, "10"],
    ];
    let mut kernel = BTreeMap::new();
    let mut ours = BTreeMap::new();
    for args in cases {
        kernel.extend(figures(&stdout_ok(
            &Command::new(args[0]).args(&args[1..]).output().unwrap(),
            "native bench",
        )));
        ours.extend(figures(&stdout_ok(&d.run(args), "bench under bpftime-run")));
    }
    println!(
        "\n{:<12} {:>14} {:>14}  unit",
        "benchmark", "kernel", "bpftime-run"
    );
    for (k, (v, unit)) in &kernel {
        let (w, _) = ours
            .get(k)
            .unwrap_or_else(|| panic!("no bpftime figure for {k}"));
        println!("{k:<12} {v:>14.1} {w:>14.1}  {unit}");
        assert!(*w > 0.0, "{k}: {w}");
    }
    assert_eq!(kernel.len(), 4, "{kernel:?}");
}
