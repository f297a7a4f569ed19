//! ns per run of every corpus program: bpftime's VM (BPF_PROG_TEST_RUN semantics, in
//! process) against the kernel's JIT (BPF_PROG_TEST_RUN with repeat), averaged over the
//! fixed packet set, with the ratio and its geometric mean.
//!
//! `cargo bench -p bpftime-tests --bench vm_vs_kernel` (as root). Env: BENCH_REPEAT
//! (kernel repeat per packet, default 20000), BENCH_VM_REPEAT (default 2000),
//! BENCH_FLAVOUR (v3 or v4, default both), BENCH_ONLY (one program's file name),
//! BENCH_TRIALS (best of how many runs per packet and side, default 3).

use bpftime_tests::corpus::{self, Flavour};
use bpftime_tests::oracle::KernelObject;
use bpftime_tests::packets;
use bpftime_tests::privilege::{missing, Need};
use bpftime_tests::vmload::VmObject;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then only say how to run
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("vm_vs_kernel: run it with `cargo bench -p bpftime-tests --bench vm_vs_kernel`");
        return;
    }
    for need in [Need::Root, Need::Bpf] {
        if let Some(why) = missing(need) {
            eprintln!("vm_vs_kernel: skipped: {why}");
            return;
        }
    }
    let k_repeat = env_u32("BENCH_REPEAT", 20_000);
    let vm_repeat = env_u32("BENCH_VM_REPEAT", 2_000);
    let trials = env_u32("BENCH_TRIALS", 3).max(1);
    let flavours: Vec<Flavour> = match std::env::var("BENCH_FLAVOUR").as_deref() {
        Ok("v3") => vec![Flavour::V3],
        Ok("v4") => vec![Flavour::V4],
        _ => Flavour::ALL.to_vec(),
    };
    let set: Vec<_> = packets::fixed_set()
        .into_iter()
        .filter(|(_, p)| p.len() >= packets::MIN_TEST_RUN_LEN)
        .collect();
    println!(
        "{:<18} {:>3} {:>10} {:>10} {:>8} {:>18}",
        "program", "cpu", "vm ns/run", "kernel ns", "vm/kern", "pkt/stk/val/checked"
    );
    let mut log_sum = 0f64;
    let mut n = 0;
    let only = std::env::var("BENCH_ONLY").ok();
    for prog in corpus::all() {
        if only.as_deref().is_some_and(|o| o != prog.file) {
            continue;
        }
        for &fl in &flavours {
            let vm = match VmObject::load(prog, fl) {
                Ok(vm) => vm,
                Err(e) => {
                    println!(
                        "{:<18} {:>3} not loadable in the VM: {e}",
                        prog.file,
                        fl.as_str()
                    );
                    continue;
                }
            };
            let k = KernelObject::load(prog, fl).expect("kernel load");
            let (mut vm_ns, mut k_ns) = (0f64, 0f64);
            let mut ok = true;
            for (_, p) in &set {
                // Best of `trials` alternating runs of each side: the machine is
                // shared and noisy, and the minimum is the least disturbed figure.
                let (mut best_vm, mut best_k) = (f64::MAX, f64::MAX);
                for _ in 0..trials {
                    match (
                        vm.run(prog.prog, p, vm_repeat),
                        k.run_repeat(prog.prog, p, k_repeat),
                    ) {
                        (Ok(v), Ok(kr)) => {
                            best_vm = best_vm.min(v.duration_ns as f64);
                            best_k = best_k.min(kr.duration_ns as f64);
                        }
                        _ => ok = false,
                    }
                }
                vm_ns += best_vm;
                k_ns += best_k;
            }
            if !ok {
                println!("{:<18} {:>3} a run failed", prog.file, fl.as_str());
                continue;
            }
            let (vm_ns, k_ns) = (vm_ns / set.len() as f64, (k_ns / set.len() as f64).max(1.0));
            let ratio = vm_ns / k_ns;
            log_sum += ratio.ln();
            n += 1;
            // Memory accesses emitted without a check (packet, stack, map value) and checked.
            let acc = vm
                .memory_accesses(prog.prog)
                .map(|a| {
                    format!(
                        "{}/{}/{}/{}",
                        a.packet_proven, a.stack_proven, a.value_proven, a.checked
                    )
                })
                .unwrap_or_default();
            println!(
                "{:<18} {:>3} {:>10.1} {:>10.1} {:>8.2} {acc:>18}",
                prog.file,
                fl.as_str(),
                vm_ns,
                k_ns,
                ratio
            );
        }
    }
    if n > 0 {
        println!(
            "geometric mean vm/kernel over {n} program/flavour pairs: {:.2}",
            (log_sum / n as f64).exp()
        );
    }
}
