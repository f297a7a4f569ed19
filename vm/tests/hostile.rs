//! Invalid and malicious programs: refused at load with the kernel's errno, or
//! aborted safely at run time; plus a seeded random-program test showing that no
//! input panics the loader or the interpreter.
//!
//! The expected errnos were checked against the kernel (6.18) by loading the same
//! instructions as XDP programs with bpf(BPF_PROG_LOAD); `VMCORE_DUMP=1` prints the
//! table as JSON for such a comparison.

use bpftime_vm::asm::assemble;
use bpftime_vm::insn::{encode, Insn};
use bpftime_vm::program::{prog_type, NoMaps, ProgLoadSpec, Program};
use bpftime_vm::run::{Fault, NoHost, XDP_ABORTED};

fn a(src: &str) -> Vec<Insn> {
    assemble(src).unwrap_or_else(|e| panic!("asm {src}: {e}"))
}

fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn::new(code, dst, src, off, imm)
}

fn spec(insns: &[Insn], ptype: u32, eat: u32) -> ProgLoadSpec {
    ProgLoadSpec {
        prog_type: ptype,
        expected_attach_type: eat,
        insns: encode(insns),
        license: "GPL".into(),
        name: "hostile".into(),
        ..Default::default()
    }
}

fn load_xdp(insns: &[Insn]) -> Result<Program, i32> {
    Program::load(spec(insns, prog_type::XDP, 37), &NoMaps).map_err(|e| e.errno)
}

const EINVAL: i32 = libc::EINVAL;
const EACCES: i32 = libc::EACCES;
const E2BIG: i32 = libc::E2BIG;
const EBADF: i32 = libc::EBADF;

/// (name, program, prog type, expected attach type, errno)
fn rejected() -> Vec<(&'static str, Vec<Insn>, u32, u32, i32)> {
    let x = prog_type::XDP;
    let mut v: Vec<(&'static str, Vec<Insn>, u32, u32, i32)> = vec![
        ("empty", vec![], x, 37, E2BIG),
        ("no exit", a("mov %r0, 0"), x, 37, EINVAL),
        ("jump out of range", a("ja +5\nexit"), x, 37, EINVAL),
        ("jump backwards out", a("mov %r0, 0\nja -3\nexit"), x, 37, EINVAL),
        ("jump into ld_imm64", a("mov %r0, 0\nja +1\nlddw %r1, 5\nexit"), x, 37, EINVAL),
        ("unreachable", a("mov %r0, 0\nexit\nmov %r0, 1\nexit"), x, 37, EINVAL),
        ("write r10", a("mov %r10, 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("load into r10", a("ldxdw %r10, [%r1+0]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("unknown opcode", vec![i(0xff, 0, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("register 11", vec![i(0xb7, 11, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("reserved field in mov imm", vec![i(0xb7, 0, 3, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("reserved field in exit", vec![i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 1)], x, 37, EINVAL),
        ("ld_imm64 at end", vec![i(0xb7, 0, 0, 0, 0), i(0x18, 1, 0, 0, 0)], x, 37, EINVAL),
        ("ld_imm64 bad second half", vec![i(0x18, 1, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("ld_imm64 btf_id", vec![i(0x18, 1, 3, 0, 1), i(0, 0, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("ld_imm64 src 7", vec![i(0x18, 1, 7, 0, 1), i(0, 0, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("ld_imm64 bad map fd", vec![i(0x18, 1, 1, 0, 9999), i(0, 0, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EBADF),
        ("ld_imm64 bad map value fd", vec![i(0x18, 1, 2, 0, 9999), i(0, 0, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EBADF),
        ("unknown helper", a("call 99999\nmov %r0, 0\nexit"), x, 37, EINVAL),
        ("negative helper", a("call -1\nmov %r0, 0\nexit"), x, 37, EINVAL),
        ("call out of range", vec![i(0x85, 0, 1, 0, 10), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("ctx write", a("stw [%r1+0], 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx store reg", a("stxw [%r1+12], %r1\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx 64-bit load", a("ldxdw %r2, [%r1+0]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx 16-bit load", a("ldxh %r2, [%r1+0]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx misaligned", a("ldxw %r2, [%r1+2]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx past end", a("ldxw %r2, [%r1+24]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx negative", a("ldxw %r2, [%r1-4]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("egress_ifindex outside devmap", a("ldxw %r2, [%r1+20]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx atomic", a("mov %r2, 1\nlock add32 [%r1+0], %r2\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("modified ctx deref", a("add %r1, 4\nldxw %r2, [%r1+0]\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("ctx 32-bit arithmetic", a("add32 %r1, 4\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("pointer and", a("and %r1, 0xff\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("pointer multiply", a("mov %r2, %r10\nmul %r2, 2\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("pointer or pointer", a("mov %r2, %r10\nor %r2, %r1\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("scalar minus pointer", a("mov %r2, 5\nsub %r2, %r10\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("scalar times pointer", a("mov %r2, 5\nmul %r2, %r10\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("scalar plus pointer 32-bit", a("mov %r2, 5\nadd32 %r2, %r10\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("pointer plus pointer", a("mov %r2, %r10\nadd %r2, %r1\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("scalar deref", a("mov %r2, 4096\nldxw %r0, [%r2+0]\nexit"), x, 37, EACCES),
        ("scalar store", a("mov %r2, 4096\nstw [%r2+0], 1\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("uninit read", a("mov %r0, %r2\nexit"), x, 37, EACCES),
        ("uninit r0 at exit", a("exit"), x, 37, EACCES),
        ("uninit after call clobber", a("mov %r2, 1\ncall 5\nmov %r0, %r2\nexit"), x, 37, EACCES),
        ("infinite loop", a("mov %r0, 0\nl: ja l\nexit"), x, 37, EINVAL),
        ("stack below frame", a("stdw [%r10-520], 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("stack above frame", a("stdw [%r10+0], 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("stack misaligned", a("stdw [%r10-12], 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("stack via copy far out of bounds", a("mov %r2, %r10\nadd %r2, 0x7ffffff0\nstb [%r2+0x7fff], 0\nmov %r0, 0\nexit"), x, 37, EINVAL),
        ("stack offset past the frame, large", a("mov %r2, %r10\nadd %r2, 0x1000000\nstb [%r2+0], 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("stack via copy out of bounds", a("mov %r2, %r10\nadd %r2, -600\nstb [%r2+0], 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("mixed ctx and stack pointer", a("ldxw %r2, [%r1+12]\nmov %r3, %r1\njeq %r2, 0, +2\nmov %r3, %r10\nadd %r3, -8\nldxw %r0, [%r3+0]\nexit"), x, 37, EINVAL),
        ("loop without exit, same state", a("mov %r0, 0\nl: ja l"), x, 37, EINVAL),
        ("loop without exit, changing state", a("mov %r0, 0\nl: add %r0, 1\nja l"), x, 37, E2BIG),
        ("ctx sign-extending load", a("ldxsw %r0, [%r1+0]\nexit"), x, 37, EACCES),
        ("stack pointer add unknown then oob", a("ldxw %r2, [%r1+12]\nmov %r3, %r10\nadd %r3, -8\nadd %r3, 16\nstb [%r3+0], 0\nmov %r0, 0\nexit"), x, 37, EACCES),
        ("div by zero imm", a("mov %r0, 1\ndiv %r0, 0\nexit"), x, 37, EINVAL),
        ("mod32 by zero imm", a("mov %r0, 1\nmod32 %r0, 0\nexit"), x, 37, EINVAL),
        ("shift too far", a("mov %r0, 1\nlsh %r0, 64\nexit"), x, 37, EINVAL),
        ("shift32 too far", a("mov %r0, 1\nrsh32 %r0, 32\nexit"), x, 37, EINVAL),
        ("ld_abs in xdp", vec![i(0xbf, 6, 1, 0, 0), i(0x30, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("callx", vec![i(0xb7, 2, 0, 0, 5), i(0x8d, 2, 0, 0, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("kfunc", vec![i(0x85, 0, 2, 0, 1), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("bad atomic op", vec![i(0xb7, 1, 0, 0, 0), i(0x7b, 10, 1, -8, 0), i(0xdb, 10, 1, -8, 0x10), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("atomic byte size", vec![i(0xb7, 1, 0, 0, 0), i(0xd3, 10, 1, -8, 0), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("ldx dw sign-extend", vec![i(0x99, 0, 10, -8, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("bad end imm", vec![i(0xb7, 0, 0, 0, 0), i(0xdc, 0, 0, 0, 8), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("jmp32 call", vec![i(0x86, 0, 0, 0, 5), i(0xb7, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)], x, 37, EINVAL),
        ("unsupported prog type", a("mov %r0, 0\nexit"), 2, 0, EINVAL),
    ];
    let mut big = vec![i(0xb7, 0, 0, 0, 0); 1_000_001];
    big.push(i(0x95, 0, 0, 0, 0));
    v.push(("too many insns", big, x, 37, E2BIG));
    v
}

fn x_type() -> u32 {
    prog_type::XDP
}

#[test]
fn hostile_programs_are_rejected_with_kernel_errnos() {
    let dump = std::env::var_os("VMCORE_DUMP").is_some();
    let mut bad = Vec::new();
    for (name, insns, pt, eat, want) in rejected() {
        if dump && insns.len() < 1000 && pt == x_type() {
            let hex: Vec<String> = encode(&insns)
                .chunks(8)
                .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            println!(
                "DUMP {}",
                format_args!("[{name:?}, {hex:?}, {pt}, {eat}, {want}]")
            );
        }
        match Program::load(spec(&insns, pt, eat), &NoMaps) {
            Ok(_) => bad.push(format!("{name}: loaded, want errno {want}")),
            Err(e) if e.errno != want => bad.push(format!(
                "{name}: errno {} want {want}: {}",
                e.errno,
                e.log.trim()
            )),
            Err(e) => assert!(!e.log.is_empty(), "{name}: empty log"),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn valid_programs_load() {
    let ok = [
        ("pointer minus pointer 32-bit (privileged)", "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nsub32 %r3, %r2\nmov %r0, %r3\nexit"),
        ("pointer minus pointer", "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nsub %r3, %r2\nmov %r0, %r3\nexit"),
        ("scalar plus pointer", "ldxw %r2, [%r1+0]\nmov %r3, 1\nadd %r3, %r2\nmov %r0, 0\nexit"),
        ("scalar minus pointer 32-bit (privileged)", "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov32 %r4, %r3\nsub32 %r4, %r2\nmov %r0, %r4\nexit"),
        ("pointer minus scalar 32-bit (privileged)", "ldxw %r2, [%r1+0]\nsub32 %r2, 1\nmov %r0, %r2\nexit"),
        ("pointer neg (privileged)", "mov %r2, %r10\nneg %r2\nmov %r0, 0\nexit"),
        ("ctx fields", "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nldxw %r4, [%r1+8]\nldxw %r5, [%r1+12]\nldxw %r0, [%r1+16]\nexit"),
        ("bounded loop", "mov %r0, 0\nl: add %r0, 1\njlt %r0, 10, l\nexit"),
        ("stack spill", "stxdw [%r10-8], %r1\nldxdw %r6, [%r10-8]\nldxw %r0, [%r6+16]\nexit"),
        ("pointer compare", "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 14\nmov %r0, 1\njgt %r4, %r3, +1\nmov %r0, 2\nexit"),
        ("bpf2bpf", "mov %r1, 3\ncall local f\nexit\nf:\nmov %r0, %r1\nexit"),
        ("helper ktime", "call 5\nmov %r0, 2\nexit"),
    ];
    for (name, src) in ok {
        if std::env::var_os("VMCORE_DUMP").is_some() {
            let hex: Vec<String> = encode(&a(src))
                .chunks(8)
                .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            println!("DUMP {}", format_args!("[{name:?}, {hex:?}, 6, 37, 0]"));
        }
        let p = load_xdp(&a(src));
        if name == "helper ktime" && bpftime_vm::helpers::get(5).is_none() {
            assert_eq!(
                p.err(),
                Some(EINVAL),
                "{name}: helper table has no ktime_get_ns yet"
            );
            continue;
        }
        assert!(p.is_ok(), "{name}: {:?}", p.err());
    }
    // egress_ifindex in a DEVMAP program.
    let p = Program::load(
        spec(&a("ldxw %r0, [%r1+20]\nexit"), prog_type::XDP, 38),
        &NoMaps,
    );
    assert!(p.is_ok());
    // libbpf's probe: SOCKET_FILTER `r0 = 0; exit`.
    let p = Program::load(
        spec(&a("mov %r0, 0\nexit"), prog_type::SOCKET_FILTER, 0),
        &NoMaps,
    );
    assert!(p.is_ok());
    // LD_ABS in a socket filter needs the skb in r6; reads past the (empty in tests)
    // packet end the program with 0.
    let sf = |src: &[Insn]| Program::load(spec(src, prog_type::SOCKET_FILTER, 0), &NoMaps);
    let ld_abs = [
        i(0xbf, 6, 1, 0, 0),
        i(0x30, 0, 0, 0, 20),
        i(0x95, 0, 0, 0, 0),
    ];
    let p = sf(&ld_abs).expect("ld_abs with r6 = skb");
    let out = p.test_run_generic(&[0x45; 40], 1, 0, &NoHost).expect("run");
    assert_eq!(out.retval, 0x45);
    let out = p.test_run_generic(&[0x45; 30], 1, 0, &NoHost).expect("run");
    assert_eq!(out.retval, 0, "past the packet");
    assert_eq!(
        sf(&ld_abs[1..]).err().map(|e| e.errno),
        Some(EACCES),
        "r6 uninitialised"
    );
    let r6_scalar = [
        i(0xb7, 6, 0, 0, 0),
        i(0x30, 0, 0, 0, 20),
        i(0x95, 0, 0, 0, 0),
    ];
    assert_eq!(
        sf(&r6_scalar).err().map(|e| e.errno),
        Some(EINVAL),
        "r6 not the skb"
    );
    // SOCKET_FILTER context access is refused.
    let p = Program::load(
        spec(&a("ldxw %r0, [%r1+0]\nexit"), prog_type::SOCKET_FILTER, 0),
        &NoMaps,
    );
    assert_eq!(p.err().map(|e| e.errno), Some(EACCES));
}

fn pkt() -> Vec<u8> {
    (0..64u8).collect()
}

fn run_aborts(src: &str) -> Fault {
    let p = load_xdp(&a(src)).unwrap_or_else(|e| panic!("{src}: load errno {e}"));
    let out = p
        .test_run_xdp(&pkt(), None, 1, 0, &NoHost)
        .expect("test run");
    assert_eq!(out.retval, XDP_ABORTED, "{src}");
    let mut ctx = bpftime_vm::run::XdpCtx::default();
    // The frame sits at the start of a page of its own, as a data-plane frame in its
    // UMEM chunk: a read past its end must land in that page, not in whatever the
    // allocator put after a 64-byte buffer (the run's stack is a legal place to read).
    let mut buf = vec![0u8; 4096];
    buf[..64].copy_from_slice(&pkt());
    ctx.data = buf.as_mut_ptr() as u64;
    ctx.data_meta = ctx.data;
    ctx.data_end = ctx.data + 64;
    let r = p.run_xdp(&mut ctx, 0, &NoHost);
    assert_eq!(r.verdict, XDP_ABORTED);
    r.fault
        .unwrap_or_else(|| panic!("no fault recorded: {src}"))
}

/// The run-time aborts on both back ends: JIT-compiled code must fault exactly where
/// the interpreter does.
#[test]
fn hostile_programs_abort_safely() {
    for jit in [true, false] {
        bpftime_vm::jit::scoped(jit, || {
            let p = load_xdp(&a("mov %r0, 2\nexit")).expect("load");
            assert_eq!(p.is_jitted(), jit);
            hostile_programs_abort_safely_on_backend();
        });
    }
}

fn hostile_programs_abort_safely_on_backend() {
    // Packet accesses at constant offsets outside what a bounds check proved are
    // refused at load, as the kernel refuses them (EACCES).
    for src in [
        "ldxw %r2, [%r1+0]\nldxw %r0, [%r2+64]\nexit",
        "ldxw %r2, [%r1+0]\nstb [%r2-1], 0\nmov %r0, 2\nexit",
    ] {
        assert_eq!(load_xdp(&a(src)).err(), Some(EACCES), "{src}");
    }
    // What the verifier does not follow (variable offsets) is checked at run time.
    // CHECKED: r2 = data, r3 = pkt[0] (0 in `pkt()`) after a one-byte bounds check.
    const CHECKED: &str = "ldxw %r2, [%r1+0]\nldxw %r4, [%r1+4]\nmov %r5, %r2\nadd %r5, 8\n\
                           jgt %r5, %r4, out\nldxb %r3, [%r2+5]\n";
    // Packet read past data_end.
    let f = run_aborts(&format!(
        "{CHECKED}ldxb %r3, [%r2+0]\nadd %r2, %r3\nldxw %r0, [%r2+64]\nexit\nout: mov %r0, 1\nexit"
    ));
    assert!(matches!(f, Fault::OutOfBounds { .. }), "{f:?}");
    // Packet write before data_meta (into the headroom).
    run_aborts(&format!(
        "{CHECKED}ldxb %r3, [%r2+0]\nadd %r2, %r3\nstb [%r2-1], 0\nmov %r0, 2\nexit\nout: mov %r0, 1\nexit"
    ));
    // A bound read back from the stack proves nothing at run time: here the spilled
    // data_end is overwritten through a packet pointer moved onto the stack (a checked
    // access the analysis does not see land there), then "proves" 1,000 bytes. The read
    // stays checked and faults instead of reading past the packet.
    let f = run_aborts(
        "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nstxdw [%r10-8], %r3\n\
         mov %r4, %r10\nsub %r4, %r2\nmov %r5, %r2\nadd %r5, %r4\n\
         lddw %r6, 0x7fffffffffffffff\nstxdw [%r5-8], %r6\n\
         ldxdw %r6, [%r10-8]\nmov %r7, %r2\nadd %r7, 1000\njgt %r7, %r6, out\n\
         ldxb %r0, [%r2+999]\nexit\nout: mov %r0, 1\nexit",
    );
    assert!(matches!(f, Fault::OutOfBounds { .. }), "{f:?}");
    // Nor one read back and moved by arithmetic (`add 0` keeps the taint): the spilled
    // `data` is replaced by an unmapped address the same way, then "proven".
    let f = run_aborts(
        "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nstxdw [%r10-8], %r2\n\
         mov %r4, %r10\nsub %r4, %r2\nmov %r5, %r2\nadd %r5, %r4\n\
         lddw %r6, 0x1000\nstxdw [%r5-8], %r6\n\
         ldxdw %r7, [%r10-8]\nadd %r7, 0\nmov %r8, %r2\nadd %r8, 8\njgt %r8, %r3, out\n\
         ldxdw %r0, [%r7+0]\nexit\nout: mov %r0, 1\nexit",
    );
    assert!(matches!(f, Fault::OutOfBounds { .. }), "{f:?}");
    // A packet pointer held across a call that moved the packet (the callee grows it at
    // the front by 32 bytes): a new bound proves nothing for the old pointer, whose read
    // lands 24 bytes past the new end and stays checked.
    let f = run_aborts(
        "mov %r6, %r1\nldxw %r7, [%r6+0]\nmov %r1, %r6\ncall local g\n\
         ldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r4, %r2\nadd %r4, 96\njgt %r4, %r3, out\n\
         ldxdw %r0, [%r7+88]\nexit\nout: mov %r0, 1\nexit\n\
         g: mov %r2, -32\ncall 44\nmov %r0, 0\nexit",
    );
    assert!(matches!(f, Fault::OutOfBounds { .. }), "{f:?}");
    // A callback must be an `ld_imm64 FUNC`: a number that looks like one is refused.
    let forged = "mov %r1, 1\nlddw %r2, 0x1234\nmov %r3, 0\nmov %r4, 0\ncall 181\nmov %r0, 2\nexit";
    assert_eq!(load_xdp(&a(forged)).err(), Some(EACCES), "{forged}");
    // A pointer derived from the packet with a huge scalar.
    run_aborts("ldxw %r2, [%r1+0]\nlddw %r3, 0x100000000\nadd %r2, %r3\nldxb %r0, [%r2+0]\nexit");
    // Stack access through a variable offset outside the stack.
    run_aborts(&format!(
        "{CHECKED}lsh %r3, 20\nmov %r4, %r10\nadd %r4, %r3\nstdw [%r4-8], 1\nmov %r0, 2\nexit\nout: mov %r0, 1\nexit"
    ));
    // A loop whose exit is never taken (the kernel proves this at load by state
    // equivalence; bpftime aborts the run when its budget is spent).
    let f = run_aborts("mov %r0, 0\nl: jeq %r0, 0, l\nexit");
    assert!(matches!(f, Fault::Budget { .. }), "{f:?}");
    // A runaway loop whose exit is never taken.
    let f = run_aborts("mov %r0, 1\nl: add %r0, 1\njne %r0, 0, l\nexit");
    assert!(matches!(f, Fault::Budget { .. }), "{f:?}");
    // Unbounded recursion.
    let f = run_aborts("call local f\nexit\nf:\ncall local f\nmov %r0, 1\nexit");
    assert!(matches!(f, Fault::CallDepth { .. }), "{f:?}");
    // Reading ctx through a pointer forged from the spilled ctx pointer's slot
    // after a packet-derived write cannot reach anything but the real context.
    let p = load_xdp(&a(
        "stxdw [%r10-8], %r1\nldxdw %r6, [%r10-8]\nldxw %r0, [%r6+16]\nexit",
    ))
    .expect("load");
    assert_eq!(
        p.test_run_xdp(&pkt(), None, 1, 0, &NoHost)
            .expect("run")
            .retval,
        0
    );
}

/// xorshift64*, seeded: reproducible random programs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const ALU_OPS: &[u8] = &[
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0,
];
const JMP_OPS: &[u8] = &[
    0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
];
const SIZES: &[u8] = &[0x00, 0x08, 0x10, 0x18];
const HELPERS: &[i32] = &[1, 2, 3, 5, 7, 8, 28, 44, 54, 65, 160, 188];

/// Mostly well-formed instructions (so that programs get past the loader and
/// exercise the interpreter), sometimes garbage. `left`: instructions after this one.
fn random_insn(r: &mut Rng, left: usize) -> Vec<Insn> {
    let x = r.next();
    let y = r.next();
    let pick = |v: u64, n: usize| (v % n as u64) as usize;
    let dst = if x >> 60 == 0 {
        (x >> 8) as u8 & 0xf
    } else {
        pick(x >> 8, 10) as u8
    };
    let src = pick(x >> 16, 11) as u8;
    let imm = match y & 7 {
        0 => (y >> 8) as i32,
        1 | 2 => pick(y >> 8, 64) as i32,
        3 => pick(y >> 8, 600) as i32 - 300,
        4 => [0, 1, 16, 32, 64, -1, 8, 4][pick(y >> 8, 8)],
        _ => pick(y >> 8, 20) as i32,
    };
    let off = match (x >> 24) & 3 {
        0 => -(pick(x >> 28, 530) as i16),
        1 => pick(x >> 28, 70) as i16,
        2 => (x >> 28) as i16,
        _ => -(8 * pick(x >> 28, 66) as i16),
    };
    let fwd = pick(y >> 40, left + 1) as i16;
    match x % 32 {
        0 => vec![Insn::new(
            (x >> 32) as u8,
            (x >> 40) as u8 & 0xf,
            (x >> 44) as u8 & 0xf,
            off,
            imm,
        )],
        1..=8 => {
            let class = if x & (1 << 50) != 0 { 0x07 } else { 0x04 };
            let op = ALU_OPS[pick(x >> 32, ALU_OPS.len())];
            let k = x & (1 << 51) == 0;
            let off = if matches!(op, 0x30 | 0x90) && x & (1 << 52) != 0 {
                1
            } else {
                0
            };
            match op {
                0x80 => vec![Insn::new(class | op, dst, 0, 0, 0)],
                0xd0 => vec![Insn::new(
                    class | op | if k { 0 } else { 8 } & if class == 7 { 0 } else { 8 },
                    dst,
                    0,
                    0,
                    [16, 32, 64][pick(y, 3)],
                )],
                0xb0 if !k && x & (1 << 53) != 0 => vec![Insn::new(
                    class | op | 8,
                    dst,
                    src,
                    [8, 16, 32][pick(y, 3)],
                    0,
                )],
                _ if k => vec![Insn::new(class | op, dst, 0, off, imm)],
                _ => vec![Insn::new(class | op | 8, dst, src, off, 0)],
            }
        }
        9..=12 => {
            let sx = x & (1 << 54) != 0;
            let size = SIZES[pick(x >> 32, if sx { 3 } else { 4 })];
            vec![Insn::new(
                if sx { 0x81 } else { 0x61 } | size,
                dst,
                src,
                off,
                0,
            )]
        }
        13..=14 => vec![Insn::new(
            0x62 | SIZES[pick(x >> 32, 4)],
            src.min(10),
            0,
            off,
            imm,
        )],
        15..=17 => vec![Insn::new(
            0x63 | SIZES[pick(x >> 32, 4)],
            src.min(10),
            dst,
            off,
            0,
        )],
        18 => {
            let ops = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];
            vec![Insn::new(
                if x & (1 << 55) != 0 { 0xdb } else { 0xc3 },
                src.min(10),
                dst,
                off,
                ops[pick(y, ops.len())],
            )]
        }
        19..=24 => {
            let class = if x & (1 << 56) != 0 { 0x06 } else { 0x05 };
            let op = JMP_OPS[pick(x >> 32, JMP_OPS.len())];
            if x & (1 << 57) != 0 {
                vec![Insn::new(class | op, dst, 0, fwd, imm)]
            } else {
                vec![Insn::new(class | op | 8, dst, src, fwd, 0)]
            }
        }
        25 => vec![Insn::new(0x05, 0, 0, fwd.min(1), 0)],
        26 => vec![
            Insn::new(0x18, dst, 0, 0, imm),
            Insn::new(0, 0, 0, 0, (y >> 32) as i32),
        ],
        27..=28 => vec![Insn::new(
            0x85,
            0,
            0,
            0,
            HELPERS[pick(y >> 16, HELPERS.len())],
        )],
        29 => vec![Insn::new(0xb7, 0, 0, 0, imm), Insn::new(0x95, 0, 0, 0, 0)],
        30 => vec![Insn::new(0xe5, 0, 0, fwd, 0)],
        _ => vec![Insn::new(0xbf, dst, [1, 6, 7, 8, 9, 10][pick(y, 6)], 0, 0)],
    }
}

#[test]
fn random_programs_never_panic() {
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let (mut loaded, mut ran, mut jitted) = (0u32, 0u32, 0u32);
    let mut stat = std::collections::BTreeMap::new();
    let prefix = a("ldxw %r6, [%r1+0]\nldxw %r7, [%r1+4]\nmov %r8, %r10\nmov %r9, %r1\nmov %r0, 1\nmov %r2, 2\nmov %r3, %r6\nmov %r4, 4\nmov %r5, %r10\nadd %r5, -16");
    for n in 0..20_000u32 {
        let len = 1 + (r.next() % 24) as usize;
        let mut insns = if n % 8 != 0 {
            prefix.clone()
        } else {
            Vec::new()
        };
        for k in 0..len {
            insns.extend(random_insn(&mut r, len - k));
        }
        if !r.next().is_multiple_of(4) {
            insns.push(Insn::new(0xb7, 0, 0, 0, 2));
            insns.push(Insn::new(0x95, 0, 0, 0, 0));
        }
        // Every 16th program also runs compiled: same verdict, packet and fault (but not
        // programs calling clock or random helpers, whose results differ run to run).
        let jit = n % 16 == 1
            && !insns
                .iter()
                .any(|x| x.code == 0x85 && matches!(x.imm, 5 | 7 | 160));
        for mode in 0..2 {
            let load = || {
                if mode == 0 {
                    load_xdp(&insns).ok()
                } else {
                    Program::load_raw(&insns, bpftime_vm::helpers::get).ok()
                }
            };
            let p = bpftime_vm::jit::scoped(false, load);
            if jit {
                if let Some(p) = &p {
                    let c = bpftime_vm::jit::scoped(true, load).expect("loads again");
                    compare_backends(p, &c, mode == 0, &insns);
                    jitted += c.is_jitted() as u32;
                }
            }
            let Some(p) = p else {
                if std::env::var_os("VMCORE_RSTAT").is_some() && mode == 0 {
                    if let Err(e) = Program::load(spec(&insns, prog_type::XDP, 37), &NoMaps) {
                        let l = e.log.lines().next().unwrap_or("").to_string();
                        let l: String = l
                            .split(':')
                            .nth(1)
                            .unwrap_or(&l)
                            .chars()
                            .filter(|c| !c.is_ascii_digit())
                            .collect();
                        *stat.entry(l).or_insert(0u32) += 1;
                    }
                }
                continue;
            };
            loaded += 1;
            if mode == 0 {
                let out = p
                    .test_run_xdp(&pkt(), None, 1, 0, &NoHost)
                    .expect("test run");
                assert!(out.data_out.len() <= 4096);
            } else {
                let mut mem = pkt();
                let _ = p.run_raw(&mut mem, &NoHost);
            }
            ran += 1;
        }
    }
    println!("random programs: {loaded} loaded, {ran} ran, {jitted} also compiled");
    assert!(
        jitted > 50,
        "the JIT should compile random programs ({jitted})"
    );
    for (k, v) in &stat {
        println!("{v:6} {k}");
    }
    assert!(
        loaded > 1000,
        "the generator should produce loadable programs ({loaded})"
    );
}

/// Run `interp` (interpreted) and `compiled` (the same program, JIT) on the same input
/// at the same addresses (programs may compare pointers); everything observable must
/// match.
fn compare_backends(interp: &Program, compiled: &Program, xdp: bool, insns: &[Insn]) {
    assert!(!interp.is_jitted());
    let mut buf = pkt();
    if xdp {
        let mut run = |p: &Program| {
            buf.copy_from_slice(&pkt());
            let mut ctx = bpftime_vm::run::XdpCtx::default();
            ctx.data = buf.as_mut_ptr() as u64;
            ctx.data_meta = ctx.data;
            ctx.data_end = ctx.data + buf.len() as u64;
            let r = p.run_xdp(&mut ctx, 0, &NoHost);
            (
                r.verdict,
                r.fault.map(fault_key),
                ctx.data,
                ctx.data_end,
                buf.clone(),
            )
        };
        let a = run(interp);
        assert_eq!(a, run(compiled), "{insns:?}");
    } else {
        let mut run = |p: &Program| {
            buf.copy_from_slice(&pkt());
            let r = p.run_raw(&mut buf, &NoHost).map_err(fault_key);
            (r, buf.clone())
        };
        let a = run(interp);
        assert_eq!(a, run(compiled), "{insns:?}");
    }
}

/// A fault without its address (defensive: a faulting address may be derived from
/// allocator-dependent values).
fn fault_key(f: Fault) -> Fault {
    match f {
        Fault::OutOfBounds { kind, len, pc, .. } => Fault::OutOfBounds {
            kind,
            addr: 0,
            len,
            pc,
        },
        f => f,
    }
}
