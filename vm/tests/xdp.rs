//! XDP programs through the whole pipeline: the context rewrite (ctx pointer
//! tracked through moves and stack spills), packet access, BPF_PROG_TEST_RUN
//! semantics (headroom, metadata, ctx_in validation, data_out/ctx_out, repeat).

use bpftime_vm::asm::assemble;
use bpftime_vm::insn::{encode, Insn};
use bpftime_vm::program::{calc_tag, prog_type, NoMaps, ProgLoadSpec, Program};
use bpftime_vm::run::{NoHost, XdpCtx, XDP_PASS};

fn load(src: &str) -> Program {
    load_eat(src, 37)
}

fn load_eat(src: &str, eat: u32) -> Program {
    let insns = assemble(src).expect("asm");
    let spec = ProgLoadSpec {
        prog_type: prog_type::XDP,
        expected_attach_type: eat,
        insns: encode(&insns),
        license: "GPL".into(),
        name: "t".into(),
        log_level: 1,
        ..Default::default()
    };
    Program::load(spec, &NoMaps).unwrap_or_else(|e| panic!("load: {e}"))
}

fn md(data: u32, data_end: u32, meta: u32, ifx: u32, q: u32, egress: u32) -> Vec<u8> {
    [data, data_end, meta, ifx, q, egress]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect()
}

/// Reads data/data_end through a ctx pointer spilled to the stack and filled into
/// another register, checks bounds like clang's code, swaps the MAC addresses.
const MAC_SWAP: &str = "
    mov %r6, %r1
    stxdw [%r10-16], %r6
    mov %r1, 0
    ldxdw %r7, [%r10-16]
    ldxw %r2, [%r7+0]
    ldxw %r3, [%r7+4]
    mov %r4, %r2
    add %r4, 14
    jgt %r4, %r3, drop
    ldxw %r5, [%r2+0]
    ldxh %r8, [%r2+4]
    ldxw %r9, [%r2+6]
    stxw [%r2+0], %r9
    ldxh %r9, [%r2+10]
    stxh [%r2+4], %r9
    stxw [%r2+6], %r5
    stxh [%r2+10], %r8
    mov %r0, 3
    exit
drop:
    mov %r0, 1
    exit";

#[test]
fn ctx_rewrite_through_spill_and_packet_write() {
    let p = load(MAC_SWAP);
    assert!(p.log().contains("processed"), "log: {}", p.log());
    // Its eight packet accesses lie inside the 14 bytes the bounds check proved: they
    // run without a check (the context was spilled, but loads of it read the real one).
    assert_eq!(
        p.memory_accesses().packet_proven,
        8,
        "{:?}",
        p.memory_accesses()
    );
    let pkt: Vec<u8> = (1..=60u8).collect();
    let out = p.test_run_xdp(&pkt, None, 1, 0, &NoHost).expect("run");
    assert_eq!(out.retval, 3);
    let mut want = pkt.clone();
    want[..6].copy_from_slice(&pkt[6..12]);
    want[6..12].copy_from_slice(&pkt[..6]);
    assert_eq!(out.data_out, want);
    assert!(out.ctx_out.is_empty());
}

#[test]
fn ctx_fields_and_metadata() {
    // r0 = data - data_meta + ingress_ifindex*256 + rx_queue_index*65536 + (data_end - data)<<24
    let src = "
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        ldxw %r4, [%r1+8]
        ldxw %r5, [%r1+12]
        ldxw %r6, [%r1+16]
        mov %r0, %r2
        sub %r0, %r4
        lsh %r5, 8
        add %r0, %r5
        lsh %r6, 16
        add %r0, %r6
        sub %r3, %r2
        lsh %r3, 24
        add %r0, %r3
        exit";
    let p = load(src);
    let pkt = vec![0xabu8; 40];
    // No ctx: loopback (1), queue 0, no metadata.
    let out = p.test_run_xdp(&pkt, None, 1, 0, &NoHost).expect("run");
    assert_eq!(out.retval, (40 << 24) | (1 << 8));
    // ctx with 8 bytes of metadata at the front of data_in.
    let ctx = md(8, 40, 0, 7, 3, 0);
    let out = p
        .test_run_xdp(&pkt, Some(&ctx), 1, 0, &NoHost)
        .expect("run");
    assert_eq!(out.retval, 8 | (7 << 8) | (3 << 16) | (32 << 24));
    assert_eq!(out.data_out, pkt);
    assert_eq!(out.ctx_out, md(8, 40, 0, 7, 3, 0));
}

#[test]
fn test_run_xdp_validation() {
    let p = load("mov %r0, 2\nexit");
    let pkt = vec![0u8; 64];
    let e = |r: Result<bpftime_vm::TestRunOut, i32>| r.err();
    assert_eq!(
        e(p.test_run_xdp(&pkt[..13], None, 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    assert!(p.test_run_xdp(&pkt[..14], None, 1, 0, &NoHost).is_ok());
    assert_eq!(
        e(p.test_run_xdp(&pkt, Some(&md(0, 64, 4, 0, 0, 0)), 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    assert_eq!(
        e(p.test_run_xdp(&pkt, Some(&md(0, 63, 0, 0, 0, 0)), 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    assert_eq!(
        e(p.test_run_xdp(&pkt, Some(&md(6, 64, 0, 0, 0, 0)), 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    assert_eq!(
        e(p.test_run_xdp(&pkt, Some(&md(36, 64, 0, 0, 0, 0)), 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    assert_eq!(
        e(p.test_run_xdp(&pkt, Some(&md(0, 64, 0, 0, 0, 2)), 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    assert_eq!(
        e(p.test_run_xdp(&pkt, Some(&md(0, 64, 0, 0, 1, 0)), 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    let mut long = md(0, 64, 0, 0, 0, 0);
    long.extend_from_slice(&[0, 0, 0, 1]);
    assert_eq!(
        e(p.test_run_xdp(&pkt, Some(&long), 1, 0, &NoHost)),
        Some(libc::E2BIG)
    );
    long.truncate(24);
    long.extend_from_slice(&[0; 8]);
    assert!(p.test_run_xdp(&pkt, Some(&long), 1, 0, &NoHost).is_ok());
    let out = p
        .test_run_xdp(&pkt, None, 1000, 0, &NoHost)
        .expect("repeat");
    assert_eq!(out.retval, XDP_PASS);
    assert_eq!(out.data_out, pkt);
    // DEVMAP programs cannot be test-run (EINVAL), but may read egress_ifindex.
    let d = load_eat("ldxw %r0, [%r1+20]\nexit", 38);
    assert_eq!(
        e(d.test_run_xdp(&pkt, None, 1, 0, &NoHost)),
        Some(libc::EINVAL)
    );
    let mut buf = pkt.clone();
    let mut ctx = XdpCtx {
        egress_ifindex: 9,
        ..Default::default()
    };
    ctx.data = buf.as_mut_ptr() as u64;
    ctx.data_meta = ctx.data;
    ctx.data_end = ctx.data + 64;
    assert_eq!(d.run_xdp(&mut ctx, 0, &NoHost).verdict, 9);
}

#[test]
fn bpf_to_bpf_calls_with_stack_frames() {
    // The callee writes its own frame; the caller's spilled value survives; a pointer
    // to the caller's stack passed as an argument is writable by the callee.
    let src = "
        stdw [%r10-8], 11
        mov %r1, %r10
        add %r1, -16
        stdw [%r10-16], 0
        call local f
        ldxdw %r2, [%r10-8]
        ldxdw %r3, [%r10-16]
        add %r0, %r2
        add %r0, %r3
        exit
    f:
        stdw [%r10-8], 99
        stdw [%r1+0], 5
        mov %r0, 100
        exit";
    let p = load(src);
    assert_eq!(
        p.test_run_xdp(&[0u8; 20], None, 1, 0, &NoHost)
            .expect("run")
            .retval,
        116
    );
}

#[test]
fn tag_matches_kernel_algorithm() {
    // `r0 = 2; exit` has this tag on the kernel (bpftool prog show).
    let insns: Vec<Insn> = assemble("mov %r0, 2\nexit").expect("asm");
    let p = load("mov %r0, 2\nexit");
    assert_eq!(p.tag(), calc_tag(&insns));
    assert_eq!(p.tag(), [0x61, 0x4b, 0x43, 0x4c, 0xd8, 0x32, 0x4e, 0xcc]);
    // With a map reference the fd and offset immediates are zeroed (kernel: 2d00ef086dd753ef
    // for `r1 = map[fd] ll; r0 = 2; exit`, whatever the fd).
    let m = |fd: i32| {
        calc_tag(&[
            Insn::new(0x18, 1, 1, 0, fd),
            Insn::new(0, 0, 0, 0, 0),
            Insn::new(0xb7, 0, 0, 0, 2),
            Insn::new(0x95, 0, 0, 0, 0),
        ])
    };
    assert_eq!(m(3), [0x2d, 0x00, 0xef, 0x08, 0x6d, 0xd7, 0x53, 0xef]);
    assert_eq!(m(3), m(17));
    assert_eq!(p.insn_cnt(), 2);
    assert_eq!(p.xlated(), encode(&insns));
    assert!(p.gpl_compatible());
}

#[test]
fn verifier_log_names_the_instruction() {
    let insns = assemble("mov %r0, 0\nstw [%r1+0], 0\nexit").expect("asm");
    let spec = ProgLoadSpec {
        prog_type: prog_type::XDP,
        insns: encode(&insns),
        license: "GPL".into(),
        ..Default::default()
    };
    let e = Program::load(spec, &NoMaps).expect_err("ctx write");
    assert_eq!(e.errno, libc::EACCES);
    assert!(
        e.log
            .starts_with("1: (62) *(u32 *)(r1 +0) = 0\ninvalid bpf_context access off=0 size=4"),
        "{}",
        e.log
    );
}

#[test]
fn prog_flags_as_the_kernel() {
    let insns = encode(&assemble("mov %r0, 2\nexit").expect("asm"));
    for (flags, ok) in [
        (0x1, true),
        (0x8, true),
        (0x20, true),
        (0x40, true),
        (0x10, false),
        (0x100, false),
        (1 << 16, false),
    ] {
        let spec = ProgLoadSpec {
            prog_type: prog_type::XDP,
            insns: insns.clone(),
            prog_flags: flags,
            license: "GPL".into(),
            ..Default::default()
        };
        let r = Program::load(spec, &NoMaps)
            .map(|_| ())
            .map_err(|e| e.errno);
        assert_eq!(
            r,
            if ok { Ok(()) } else { Err(libc::EINVAL) },
            "flags {flags:#x}"
        );
    }
}

/// Packet accesses checked at run time, at every size, right at the edges: the
/// last bytes before data_end load, one byte further faults (XDP_ABORTED), and so
/// does one byte before data (no metadata). Same on the JIT and the interpreter.
#[test]
fn packet_bounds_at_the_edges() {
    for (size, ldx) in [(1u32, "ldxb"), (2, "ldxh"), (4, "ldxw"), (8, "ldxdw")] {
        // r2 = data + pkt[0] - pkt[1] (read after a bounds check); load `size` bytes
        // there: a variable offset, checked at run time.
        let src = format!(
            "ldxw %r2, [%r1+0]\nldxw %r6, [%r1+4]\nmov %r7, %r2\nadd %r7, 2\njgt %r7, %r6, out\n\
             ldxb %r3, [%r2+0]\nldxb %r4, [%r2+1]\nadd %r2, %r3\nsub %r2, %r4\n\
             {ldx} %r5, [%r2+0]\nmov %r0, 2\nexit\nout: mov %r0, 1\nexit"
        );
        let mut p = load(&src);
        for jit in [true, false] {
            if !jit {
                p.disable_jit();
            }
            let run = |off: u8, back: u8| {
                let mut pkt = [0u8; 60];
                pkt[0] = off;
                pkt[1] = back;
                p.test_run_xdp(&pkt, None, 1, 0, &NoHost).unwrap().retval
            };
            let last = 60 - size as u8;
            assert_eq!(run(last, 0), 2, "size {size} at the end (jit {jit})");
            assert_eq!(run(last + 1, 0), 0, "size {size} past the end (jit {jit})");
            assert_eq!(run(0, 0), 2, "size {size} at data (jit {jit})");
            assert_eq!(run(0, 1), 0, "size {size} before data (jit {jit})");
            assert_eq!(run(200, 0), 0, "size {size} far past the end (jit {jit})");
        }
    }
}
