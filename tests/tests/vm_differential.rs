//! Differential test: every corpus program (both flavours) runs on the whole packet set in
//! the real kernel (the oracle) and in bpftime's VM (loaded with aya-obj, no supervisor);
//! verdicts, output bytes (metadata included), errnos and map contents must be equal.

use bpftime_tests::corpus::{self, CorpusProg, Flavour};
use bpftime_tests::oracle::KernelObject;
use bpftime_tests::packets;
use bpftime_tests::privilege::{require, Need};
use bpftime_tests::vmload::VmObject;
use bpftime_vm::maps::map_type;

/// Corpus programs the VM does not yet run as the kernel does, with the reason (reported
/// to the VM's owners). They are still compared and their differences printed; one that
/// now matches is announced so its entry can be removed. Every other program must match.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Frames also run with repeat 3 (few: with repeat > 1 the kernel may reschedule, ~50 ms on a
/// busy machine).
const REPEAT_SET: &[&str] = &["ipv4_tcp_syn", "vlan100_ipv4_udp"];

/// Why `prog` cannot run in the VM yet (a helper it calls is missing), if so.
fn missing_helper(prog: &CorpusProg) -> Option<u32> {
    prog.helpers
        .iter()
        .copied()
        .find(|id| bpftime_vm::helpers::get_for(*id, 6).is_none())
}

/// Compares one program in one flavour; returns the differences found.
fn compare(prog: &CorpusProg, flavour: Flavour) -> Vec<String> {
    let mut diffs = Vec::new();
    let k = KernelObject::load(prog, flavour)
        .unwrap_or_else(|e| panic!("kernel: {} {flavour}: {e}", prog.file));
    let vm = match VmObject::load(prog, flavour) {
        Ok(vm) => vm,
        Err(e) => return vec![format!("VM load: {e}")],
    };
    for (name, input) in packets::fixed_set() {
        let kr = k.run(prog.prog, &input);
        let vr = vm.run(prog.prog, &input, 1);
        match (kr, vr) {
            (Ok(kr), Ok(vr)) => {
                if kr.retval != vr.retval {
                    diffs.push(format!(
                        "{name}: verdict kernel {} vm {}",
                        kr.retval, vr.retval
                    ));
                }
                if kr.data != vr.data_out {
                    diffs.push(format!(
                        "{name}: output\n  kernel {:02x?}\n  vm     {:02x?}",
                        kr.data, vr.data_out
                    ));
                }
                let vm_meta = vr
                    .ctx_out
                    .get(0..4)
                    .map(|b| u32::from_ne_bytes(b.try_into().unwrap()));
                if vm_meta != Some(kr.meta_len) {
                    diffs.push(format!(
                        "{name}: ctx_out.data kernel {} vm {vm_meta:?}",
                        kr.meta_len
                    ));
                }
            }
            (Err(ke), Err(ve)) => {
                if ke.errno() != Some(ve) {
                    diffs.push(format!("{name}: errno kernel {ke} vm {ve}"));
                }
            }
            (kr, vr) => diffs.push(format!(
                "{name}: kernel {:?} vm {:?}",
                kr.map(|r| r.retval),
                vr.map(|r| r.retval)
            )),
        }
    }
    // BPF_PROG_TEST_RUN with repeat runs the program again on the frame the previous run
    // left (the kernel does not reset the xdp_buff): compare a few frames with repeat 3.
    for (name, input) in packets::fixed_set()
        .into_iter()
        .filter(|(n, _)| REPEAT_SET.contains(n))
    {
        match (
            k.run_repeat(prog.prog, &input, 3),
            vm.run(prog.prog, &input, 3),
        ) {
            (Ok(kr), Ok(vr)) if kr.retval == vr.retval && kr.data == vr.data_out => {}
            (kr, vr) => diffs.push(format!(
                "{name} (repeat 3):\n  kernel {:02x?}\n  vm     {:02x?}",
                kr.map(|r| (r.retval, r.data)),
                vr.map(|r| (r.retval, r.data_out))
            )),
        }
    }
    for map in vm.map_names() {
        if prog.volatile_maps.contains(&map.as_str()) {
            continue;
        }
        let ty = vm.map(&map).unwrap().attr().map_type;
        match ty {
            // values are program/map ids and fds: compared through their effects
            map_type::PROG_ARRAY | map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS => continue,
            map_type::RINGBUF => {
                let (kv, vv) = (k.ringbuf_records(&map).unwrap(), vm.ringbuf_records(&map));
                match vv {
                    Ok(vv) if vv == kv => {}
                    vv => diffs.push(format!(
                        "ringbuf {map}:\n  kernel {kv:02x?}\n  vm     {vv:02x?}"
                    )),
                }
                continue;
            }
            _ => {}
        }
        let kd = k
            .dump(&map)
            .unwrap_or_else(|e| panic!("kernel dump {map}: {e}"));
        match vm.dump(&map) {
            Ok(vd) if vd == kd => {}
            vd => diffs.push(format!(
                "map {map}:\n  kernel {kd:02x?}\n  vm     {vd:02x?}"
            )),
        }
    }
    diffs
}

/// The JIT (the default back end).
#[test]
fn vm_matches_kernel_on_the_corpus() {
    bpftime_vm::jit::scoped(true, || corpus_against_kernel("jit"));
}

/// The interpreter (`BPFTIME_JIT=0`, and what runs the programs the JIT does not take).
#[test]
fn interpreter_matches_kernel_on_the_corpus() {
    bpftime_vm::jit::scoped(false, || corpus_against_kernel("interpreter"));
}

fn corpus_against_kernel(back_end: &str) {
    if !require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let mut report = Vec::new();
    let mut compared = 0;
    let mut matched = 0;
    for prog in corpus::all() {
        if let Some(h) = missing_helper(prog) {
            eprintln!(
                "vm_differential: {} skipped: helper {h} is not in the VM yet",
                prog.file
            );
            continue;
        }
        for flavour in Flavour::ALL {
            let d = compare(prog, flavour);
            compared += 1;
            let known = KNOWN_GAPS.iter().find(|(f, _)| *f == prog.file);
            match (d.is_empty(), known) {
                (true, None) => matched += 1,
                (true, Some(_)) => {
                    matched += 1;
                    eprintln!(
                        "vm_differential: {} ({flavour}) now matches: remove it from KNOWN_GAPS",
                        prog.file
                    )
                }
                (false, Some((_, why))) => {
                    eprintln!(
                        "vm_differential: known gap {} ({flavour}): {why}\n  {}",
                        prog.file,
                        d.join("\n  ")
                    )
                }
                (false, None) => {
                    report.push(format!("== {} ({flavour})\n{}", prog.file, d.join("\n")))
                }
            }
        }
    }
    eprintln!(
        "vm_differential ({back_end}): {matched} of {compared} program/flavour pairs match the kernel"
    );
    assert!(matched > 0);
    assert!(
        report.is_empty(),
        "{} of {compared} differ:\n{}",
        report.len(),
        report.join("\n")
    );
}
