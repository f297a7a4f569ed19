//! The bpf_conformance suite (RFC 9669 / Linux cpu v1-v4) on both back ends: every
//! case once on the JIT (falling back to the interpreter for what it does not
//! compile) and once on the interpreter.
//! Data: `../shared/bpf_conformance/tests` relative to the workspace root.

use std::path::PathBuf;

use bpftime_vm::asm::assemble;
use bpftime_vm::helpers::{ArgKind, HelperSpec};
use bpftime_vm::insn::Insn;
use bpftime_vm::program::Program;
use bpftime_vm::run::{Fault, HelperCtx, NoHost};

/// The suite's helper 5 ("unwind"): returns r1; a zero return ends the program.
fn unwind(_ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    if a[0] == 0 {
        return Err(Fault::Helper {
            id: 5,
            why: "unwind",
        });
    }
    Ok(a[0])
}

static UNWIND: HelperSpec = HelperSpec {
    id: 5,
    name: "unwind",
    func: unwind,
    args: [
        ArgKind::Anything,
        ArgKind::None,
        ArgKind::None,
        ArgKind::None,
        ArgKind::None,
    ],
    gpl_only: false,
};

fn test_helpers(id: u32) -> Option<&'static HelperSpec> {
    (id == 5).then_some(&UNWIND)
}

struct Case {
    asm: String,
    mem: Vec<u8>,
    result: Option<u64>,
    error: Option<String>,
}

fn parse(text: &str) -> Case {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            sections.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let get = |n: &str| {
        sections
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    let mem = get("mem")
        .map(|m| {
            m.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect()
        })
        .unwrap_or_default();
    let result = get("result").map(|r| {
        let r = r.trim();
        u64::from_str_radix(r.trim_start_matches("0x"), 16).expect("hex result")
    });
    Case {
        asm: get("asm").unwrap_or_default(),
        mem,
        result,
        error: get("error").map(|e| e.trim().to_string()),
    }
}

/// Run one case; `jit`: keep the compiled code (else interpret). `compiled` counts
/// cases that really ran on the JIT.
fn run_case(text: &str, jit: bool, compiled: &mut usize) -> Result<(), String> {
    let case = parse(text);
    let insns: Vec<Insn> = assemble(&case.asm).map_err(|e| format!("asm: {e}"))?;
    // The back end is forced either way, whatever BPFTIME_JIT says.
    let prog = bpftime_vm::jit::scoped(jit, || Program::load_raw(&insns, test_helpers));
    let prog = match prog {
        Ok(p) => p,
        Err(_) if case.error.is_some() => return Ok(()),
        Err(e) => return Err(format!("load: {e}")),
    };
    assert!(jit || !prog.is_jitted(), "interpreted run compiled");
    if prog.is_jitted() {
        *compiled += 1;
        if prog.jited_len() == 0 {
            return Err("jitted program with no code".into());
        }
    }
    let mut mem = case.mem.clone();
    let r = match prog.run_raw(&mut mem, &NoHost) {
        Ok(v) => v,
        Err(Fault::Helper { id: 5, .. }) => 0,
        Err(_) if case.error.is_some() => return Ok(()),
        Err(f) => return Err(format!("fault: {f}")),
    };
    match case.result {
        Some(want) if want == r => Ok(()),
        Some(want) => Err(format!("result {r:#x}, want {want:#x}")),
        None => Err(format!("expected an error, got {r:#x}")),
    }
}

#[test]
fn bpf_conformance_suite() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bpf_conformance/tests");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        println!("SKIP: {} not found", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for (backend, jit) in [("jit", true), ("interpreter", false)] {
        let before = failures.len();
        let mut compiled = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).expect("read case");
            if let Err(e) = run_case(&text, jit, &mut compiled) {
                failures.push(format!(
                    "[{backend}] {}: {e}",
                    f.file_name().unwrap_or_default().to_string_lossy()
                ));
            }
        }
        let passed = files.len() - (failures.len() - before);
        println!(
            "bpf_conformance [{backend}]: {passed}/{} passed ({compiled} ran compiled)",
            files.len()
        );
        if jit {
            // Every case the suite loads must compile: only LD_ABS/LD_IND fall back.
            assert!(compiled > 250, "only {compiled} cases compiled");
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
