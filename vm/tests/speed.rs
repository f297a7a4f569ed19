//! Interpreter speed on small XDP programs (not a test: run with
//! `cargo test --release -p bpftime-vm --test speed -- --ignored --nocapture`;
//! SPEED_ONLY=<name> runs one, SPEED_REPEAT=<n> sets the repeat).

use bpftime_vm::asm::assemble;
use bpftime_vm::insn::encode;
use bpftime_vm::program::{prog_type, NoMaps, ProgLoadSpec, Program};
use bpftime_vm::run::NoHost;

fn load(src: &str) -> Program {
    let spec = ProgLoadSpec {
        prog_type: prog_type::XDP,
        expected_attach_type: 37,
        insns: encode(&assemble(src).expect("asm")),
        license: "GPL".into(),
        ..Default::default()
    };
    Program::load(spec, &NoMaps).expect("load")
}

#[test]
#[ignore = "benchmark"]
fn interp_speed() {
    let progs = [
        ("pass", "mov %r0, 2\nexit"),
        (
            "mac_swap",
            "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, +10\n\
             ldxw %r5, [%r2+0]\nldxh %r8, [%r2+4]\nldxw %r9, [%r2+6]\nstxw [%r2+0], %r9\n\
             ldxh %r9, [%r2+10]\nstxh [%r2+4], %r9\nstxw [%r2+6], %r5\nstxh [%r2+10], %r8\n\
             mov %r0, 3\nexit\nmov %r0, 1\nexit",
        ),
        (
            "sum_loop_64",
            "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, 0\nmov %r4, 0\n\
             l: mov %r5, %r2\nadd %r5, %r4\nmov %r6, %r5\nadd %r6, 1\njgt %r6, %r3, done\n\
             ldxb %r7, [%r5+0]\nadd %r0, %r7\nadd %r4, 1\njlt %r4, 64, l\ndone: exit",
        ),
    ];
    let pkt = vec![7u8; 64];
    let only = std::env::var("SPEED_ONLY").ok();
    for (name, src) in progs {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let p = load(src);
        let repeat = std::env::var("SPEED_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let out = p.test_run_xdp(&pkt, None, repeat, 0, &NoHost).expect("run");
        println!(
            "{name:12} retval {:4} {:6} ns/run",
            out.retval, out.duration_ns
        );
    }
}

#[test]
#[ignore = "benchmark helper"]
fn dump_speed_programs() {
    for (name, src) in [
        ("pass", "mov %r0, 2\nexit"),
        (
            "sum_loop_64",
            "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, 0\nmov %r4, 0\n\
             l: mov %r5, %r2\nadd %r5, %r4\nmov %r6, %r5\nadd %r6, 1\njgt %r6, %r3, done\n\
             ldxb %r7, [%r5+0]\nadd %r0, %r7\nadd %r4, 1\njlt %r4, 64, l\ndone: exit",
        ),
    ] {
        let hex: Vec<String> = encode(&assemble(src).expect("asm"))
            .chunks(8)
            .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        println!("PROG {name} {}", hex.join(","));
    }
}

/// Load time of the largest programs the kernel accepts (straight line, all jumps).
#[test]
#[ignore = "benchmark"]
fn load_speed_large() {
    use bpftime_vm::insn::Insn;
    let n = 1_000_000 - 2;
    let mut straight = vec![Insn::new(0xb7, 0, 0, 0, 1); n];
    straight.push(Insn::new(0x95, 0, 0, 0, 0));
    let mut jumps = vec![Insn::new(0xb7, 0, 0, 0, 1)];
    jumps.extend(std::iter::repeat_n(Insn::new(0x15, 0, 0, 0, 7), n));
    jumps.push(Insn::new(0x95, 0, 0, 0, 0));
    for (name, p) in [("straight", straight), ("jumps", jumps)] {
        let spec = ProgLoadSpec {
            prog_type: prog_type::XDP,
            insns: encode(&p),
            license: "GPL".into(),
            ..Default::default()
        };
        let t = std::time::Instant::now();
        let r = Program::load(spec, &NoMaps);
        println!(
            "{name:10} {} insns: {:?} in {:?}",
            p.len(),
            r.map(|_| ()).map_err(|e| e.errno),
            t.elapsed()
        );
    }
}

/// ns per run of 8 map lookups (ARRAY, HASH, LRU_HASH) on the JIT and the interpreter.
#[test]
#[ignore = "benchmark"]
fn map_lookup_speed() {
    use bpftime_vm::insn::Insn;
    use bpftime_vm::maps::{self, map_type, Map, MapAttr};
    use bpftime_vm::program::MapResolver;
    use std::sync::Arc;
    struct One(Arc<dyn Map>);
    impl MapResolver for One {
        fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>> {
            (fd == 10).then(|| self.0.clone())
        }
        fn fd_array(&self, _idx: u32) -> Option<Arc<dyn Map>> {
            None
        }
    }
    let repeat = std::env::var("SPEED_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pkt = vec![7u8; 64];
    for (name, ty) in [
        ("array", map_type::ARRAY),
        ("hash", map_type::HASH),
        ("lru_hash", map_type::LRU_HASH),
    ] {
        let m = maps::create(&MapAttr {
            map_type: ty,
            key_size: 4,
            value_size: 8,
            max_entries: 256,
            ..Default::default()
        })
        .expect("map");
        for k in 0u32..8 {
            m.sys_update(&k.to_ne_bytes(), &[0u8; 8], 0)
                .expect("update");
        }
        // r6 = key counter; 8 times: lookup key r6 and atomically add 1 to the value.
        let mut insns = assemble("mov %r6, 0").expect("asm");
        let start = insns.len();
        insns.extend(assemble("stxw [%r10-4], %r6\nmov %r2, %r10\nadd %r2, -4").expect("asm"));
        insns.push(Insn::new(0x18, 1, 1, 0, 10));
        insns.push(Insn::new(0, 0, 0, 0, 0));
        insns.extend(
            assemble("call 1\njeq %r0, 0, +2\nmov %r1, 1\nlock add [%r0+0], %r1").expect("asm"),
        );
        insns.extend(assemble("add %r6, 1").expect("asm"));
        let back = start as i32 - insns.len() as i32 - 1;
        insns.push(Insn::new(0xa5, 6, 0, back as i16, 8)); // jlt r6, 8, start
        insns.extend(assemble("mov %r0, 2\nexit").expect("asm"));
        let spec = ProgLoadSpec {
            prog_type: prog_type::XDP,
            expected_attach_type: 37,
            insns: encode(&insns),
            license: "GPL".into(),
            ..Default::default()
        };
        let mut p = Program::load(spec, &One(m.clone())).expect("load");
        let jit = p.is_jitted();
        let out = p.test_run_xdp(&pkt, None, repeat, 0, &NoHost).expect("run");
        println!(
            "{name:10} jit={jit} retval {} {:6} ns/run",
            out.retval, out.duration_ns
        );
        p.disable_jit();
        let out = p.test_run_xdp(&pkt, None, repeat, 0, &NoHost).expect("run");
        println!(
            "{name:10} interp  retval {} {:6} ns/run",
            out.retval, out.duration_ns
        );
    }
}
