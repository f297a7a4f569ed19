//! A bounded, seeded fuzzer run against the kernel and against bpftime
//! (`tests/clients/sv_fuzz.c`): random bpf() calls, BTF blobs mutated from a valid one,
//! rtnetlink IFLA_XDP messages, and random well-formed XDP programs (loaded and
//! test-run on both back ends). The same seed gives the same calls; each answer is
//! compared line by line. The daemon must answer every call (no crash, no hang), and
//! the answers must be the kernel's within the budgets below; the table printed shows
//! execs and divergences per mode.
//!
//! In CI it runs a few seconds. For hours: `BPFTIME_FUZZ_SCALE=100 cargo nextest run
//! -p bpftime-tests --test fuzz --no-capture` (the counts are multiplied) and
//! `BPFTIME_FUZZ_SEED=N` to start elsewhere.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use bpftime_tests::privilege::{require, Need};
use common::*;

/// One mode's comparison.
#[derive(Default)]
struct Tally {
    execs: usize,
    /// (kernel answer, bpftime answer) -> count, for lines that differ.
    diffs: BTreeMap<(String, String), usize>,
}

impl Tally {
    fn diverged(&self) -> usize {
        self.diffs.values().sum()
    }
}

/// `"<i> <what> <result...>"` -> `"<what> <result...>"` (what the answer is).
fn answer(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest)
}

fn compare(kernel: &str, ours: &str, t: &mut Tally) {
    let (k, o): (Vec<&str>, Vec<&str>) = (kernel.lines().collect(), ours.lines().collect());
    assert_eq!(
        k.len(),
        o.len(),
        "bpftime answered a different number of calls"
    );
    for (a, b) in k.iter().zip(o.iter()) {
        t.execs += 1;
        if a != b {
            *t.diffs
                .entry((answer(a).to_string(), answer(b).to_string()))
                .or_default() += 1;
        }
    }
}

fn scale() -> usize {
    std::env::var("BPFTIME_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn first_seed() -> u64 {
    std::env::var("BPFTIME_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

#[test]
fn fuzzed_calls_answer_as_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse, Need::Netns]) {
        return;
    }
    let tmp = TempDir::new("fuzz");
    let client = gcc(tmp.path(), "sv_fuzz.c", "fuzz", false, &[]);
    let client = client.to_str().unwrap();
    let n = scale();
    let seed0 = first_seed();
    // (mode, seeds, calls per seed)
    let plan: [(&str, u64, usize); 4] = [
        ("bpf", 4, 2500 * n),
        ("btf", 2, 2000 * n),
        ("rtnl", 1, 300 * n),
        ("prog", 2, 1000 * n),
    ];
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for jit in ["1", "0"] {
        // The daemon reads BPFTIME_JIT (each test is its own process under nextest).
        std::env::set_var("BPFTIME_JIT", jit);
        let d = Daemon::start();
        for (mode, seeds, count) in plan {
            // Only programs depend on the back end; the rest run once.
            if jit == "0" && mode != "prog" {
                continue;
            }
            let key = if mode == "prog" {
                format!("prog (JIT={jit})")
            } else {
                mode.to_string()
            };
            for seed in seed0..seed0 + seeds {
                let args = [client, mode, &seed.to_string(), &count.to_string()];
                let what = format!("{mode} seed {seed}");
                let kernel = stdout_within(
                    {
                        let mut c = Command::new(args[0]);
                        c.args(&args[1..]);
                        c
                    },
                    Duration::from_secs(120),
                    &format!("{what} (kernel)"),
                );
                let ours = stdout_within(
                    d.run_cmd(&args),
                    Duration::from_secs(300),
                    &format!("{what} under bpftime: {}", d.log()),
                );
                compare(&kernel, &ours, tallies.entry(key.clone()).or_default());
            }
        }
        // Still there, still answering.
        let _ = d.status();
    }

    println!("\n| mode | execs | diverged | top divergences (kernel -> bpftime) |");
    println!("|---|---|---|---|");
    for (mode, t) in &tallies {
        let mut top: Vec<_> = t.diffs.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = top
            .iter()
            .take(4)
            .map(|((k, o), c)| format!("{c}x `{k}` -> `{o}`"))
            .collect();
        println!(
            "| {mode} | {} | {} ({:.2}%) | {} |",
            t.execs,
            t.diverged(),
            100.0 * t.diverged() as f64 / t.execs.max(1) as f64,
            top.join("; ")
        );
    }

    // Budgets. bpf() attrs, BTF and rtnetlink: the kernel's answer, every time.
    for mode in ["bpf", "btf", "rtnl"] {
        let t = &tallies[mode];
        assert_eq!(t.diverged(), 0, "{mode}: {:?}", t.diffs);
    }
    // Programs: a program both load must give the kernel's r0; the loads may differ
    // only where bpftime's verifier cannot yet prune dead code the way the kernel's
    // constant tracking does (a division by the constant 0 on a branch never taken).
    for jit in ["1", "0"] {
        let t = &tallies[&format!("prog (JIT={jit})")];
        for ((k, o), c) in &t.diffs {
            let (kr, or) = (k.split_whitespace().nth(1), o.split_whitespace().nth(1));
            assert!(
                !(kr == Some("ran") && or == Some("ran")),
                "JIT={jit}: {c} programs gave another r0: kernel `{k}`, bpftime `{o}`"
            );
            assert!(
                !(kr != Some("ran") && or == Some("ran")),
                "JIT={jit}: {c} programs the kernel refuses ran under bpftime: `{k}`"
            );
        }
        assert!(
            t.diverged() * 100 <= t.execs * 6,
            "JIT={jit}: {} of {} programs loaded differently",
            t.diverged(),
            t.execs
        );
    }
}
