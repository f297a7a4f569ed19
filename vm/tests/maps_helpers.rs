//! Programs that use maps and helpers: ld_imm64 map references (MAP_FD, MAP_VALUE
//! global data, fd_array), map helpers from the crate's helper table, bpf_loop
//! callbacks, tail calls through PROG_ARRAY.

use std::sync::Arc;

use bpftime_vm::asm::assemble;
use bpftime_vm::insn::{encode, Insn};
use bpftime_vm::maps::{self, map_type, prog_array::ProgArray, Map, MapAttr};
use bpftime_vm::program::{prog_type, MapResolver, ProgLoadSpec, Program};
use bpftime_vm::run::NoHost;

/// Fds 10.. are `maps[fd - 10]`; fd_array index i is `maps[i]`.
struct Fds(Vec<Arc<dyn Map>>);
impl MapResolver for Fds {
    fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>> {
        self.0.get(usize::try_from(fd - 10).ok()?).cloned()
    }
    fn fd_array(&self, idx: u32) -> Option<Arc<dyn Map>> {
        self.0.get(idx as usize).cloned()
    }
}

fn array(value_size: u32, max_entries: u32) -> Arc<dyn Map> {
    maps::create(&MapAttr {
        map_type: map_type::ARRAY,
        key_size: 4,
        value_size,
        max_entries,
        ..Default::default()
    })
    .expect("array")
}

fn spec(insns: &[Insn]) -> ProgLoadSpec {
    ProgLoadSpec {
        prog_type: prog_type::XDP,
        expected_attach_type: 37,
        insns: encode(insns),
        license: "GPL".into(),
        ..Default::default()
    }
}

fn ld_map(dst: u8, src: u8, fd: i32, off: i32) -> [Insn; 2] {
    [Insn::new(0x18, dst, src, 0, fd), Insn::new(0, 0, 0, 0, off)]
}

/// `prefix` then the assembled `rest`.
fn prog(prefix: &[Insn], rest: &str) -> Vec<Insn> {
    let mut v = prefix.to_vec();
    v.extend(assemble(rest).expect("asm"));
    v
}

fn u32_at(map: &Arc<dyn Map>, idx: u32) -> u32 {
    let mut v = vec![0u8; map.attr().value_size as usize];
    map.sys_lookup(&idx.to_ne_bytes(), &mut v, 0)
        .expect("lookup");
    u32::from_ne_bytes(v[..4].try_into().expect("4"))
}

#[test]
fn global_data_through_map_value() {
    let data = array(16, 1);
    let fds = Fds(vec![data.clone()]);
    // r1 = &value + 4; *(u32 *)r1 += 5 (atomic); r0 = *(u32 *)(r1 + 0)
    let p = prog(
        &ld_map(1, 2, 10, 4),
        "mov %r2, 5\nlock add32 [%r1+0], %r2\nldxw %r0, [%r1+0]\nexit",
    );
    let p = Program::load(spec(&p), &fds).expect("load");
    assert_eq!(p.maps().len(), 1);
    for want in [5, 10, 15] {
        assert_eq!(
            p.test_run_xdp(&[0u8; 14], None, 1, 0, &NoHost)
                .expect("run")
                .retval,
            want
        );
    }
    let mut v = [0u8; 16];
    data.sys_lookup(&0u32.to_ne_bytes(), &mut v, 0)
        .expect("lookup");
    assert_eq!(&v[4..8], &15u32.to_ne_bytes());
    // Past the value: the run aborts instead of touching other memory.
    let bad = prog(&ld_map(1, 2, 10, 12), "ldxdw %r0, [%r1+0]\nexit");
    let bad = Program::load(spec(&bad), &fds).expect("load");
    assert_eq!(
        bad.test_run_xdp(&[0u8; 14], None, 1, 0, &NoHost)
            .expect("run")
            .retval,
        0
    );
}

#[test]
fn map_value_refusals() {
    let fds = Fds(vec![array(16, 1), array(16, 2), {
        maps::create(&MapAttr {
            map_type: map_type::HASH,
            key_size: 4,
            value_size: 4,
            max_entries: 4,
            ..Default::default()
        })
        .expect("hash")
    }]);
    let load = |fd: i32, off: i32| {
        Program::load(
            spec(&prog(&ld_map(1, 2, fd, off), "mov %r0, 0\nexit")),
            &fds,
        )
        .err()
        .map(|e| e.errno)
    };
    assert_eq!(load(10, 15), None);
    assert_eq!(load(10, 16), Some(libc::EINVAL));
    assert_eq!(load(11, 0), Some(524)); // ENOTSUPP: max_entries != 1
    assert_eq!(load(12, 0), Some(libc::EINVAL)); // no direct value access for HASH
    assert_eq!(load(13, 0), Some(libc::EBADF));
    // MAP_FD with a non-zero second immediate.
    assert_eq!(
        Program::load(spec(&prog(&ld_map(1, 1, 10, 1), "mov %r0, 0\nexit")), &fds)
            .err()
            .map(|e| e.errno),
        Some(libc::EINVAL)
    );
    // fd_array forms.
    assert!(Program::load(spec(&prog(&ld_map(1, 5, 2, 0), "mov %r0, 0\nexit")), &fds).is_ok());
    assert!(Program::load(spec(&prog(&ld_map(1, 6, 0, 8), "mov %r0, 0\nexit")), &fds).is_ok());
}

/// Count packets per first byte in an ARRAY with map_lookup_elem, as clang emits it.
#[test]
fn map_lookup_helper_counts() {
    let counts = array(8, 256);
    let fds = Fds(vec![counts.clone()]);
    let a = assemble(
        "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, +10\n\
         ldxb %r5, [%r2+0]\nstxw [%r10-4], %r5",
    )
    .expect("asm");
    let b =
        "mov %r2, %r10\nadd %r2, -4\ncall 1\njeq %r0, 0, out\nmov %r1, 1\nlock add [%r0+0], %r1\n\
             out:\nmov %r0, 2\nexit";
    let mut insns = a;
    insns.extend(ld_map(1, 1, 10, 0));
    insns.extend(assemble(b).expect("asm"));
    let p = Program::load(spec(&insns), &fds).expect("load");
    let mut pkt = [0u8; 60];
    for b in [3u8, 3, 7, 3] {
        pkt[0] = b;
        assert_eq!(
            p.test_run_xdp(&pkt, None, 1, 0, &NoHost)
                .expect("run")
                .retval,
            2
        );
    }
    assert_eq!(u32_at(&counts, 3), 3);
    assert_eq!(u32_at(&counts, 7), 1);
    assert_eq!(u32_at(&counts, 4), 0);
}

#[test]
fn bpf_loop_callback() {
    // r0 = sum of indexes 0..10 accumulated through the ctx pointer (a stack slot).
    let mut insns = assemble("stdw [%r10-8], 0\nmov %r1, 10").expect("asm");
    insns.extend([Insn::new(0x18, 2, 4, 0, 0), Insn::new(0, 0, 0, 0, 0)]); // r2 = callback (patched below)
    let tail = assemble(
        "mov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 181\nldxdw %r0, [%r10-8]\nexit\n\
         cb:\nldxdw %r3, [%r2+0]\nadd %r3, %r1\nstxdw [%r2+0], %r3\nmov %r0, 0\nexit",
    )
    .expect("asm");
    let cb_at = insns.len() + 6;
    insns.extend(tail);
    insns[2].imm = cb_at as i32 - 2 - 1;
    let p = Program::load(spec(&insns), &Fds(vec![])).expect("load");
    assert_eq!(
        p.test_run_xdp(&[0u8; 14], None, 1, 0, &NoHost)
            .expect("run")
            .retval,
        45
    );
}

#[test]
fn tail_calls() {
    let pa = maps::create(&MapAttr {
        map_type: map_type::PROG_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 4,
        ..Default::default()
    })
    .expect("prog array");
    let fds = Fds(vec![pa.clone()]);
    // Slot 1: returns 3 (XDP_TX). Entry: tail-calls slot 1, or returns 1 if that fails.
    let target =
        Program::load(spec(&assemble("mov %r0, 3\nexit").expect("asm")), &fds).expect("load");
    let entry = Program::load(
        spec(&prog(
            &ld_map(2, 1, 10, 0),
            "mov %r3, 1\ncall 12\nmov %r0, 1\nexit",
        )),
        &fds,
    )
    .expect("load");
    assert_eq!(
        entry
            .test_run_xdp(&[0u8; 14], None, 1, 0, &NoHost)
            .expect("run")
            .retval,
        1
    );
    let slots = pa.as_any().downcast_ref::<ProgArray>().expect("ProgArray");
    slots.set(1, 7, Arc::new(target), 0).expect("set");
    assert_eq!(
        entry
            .test_run_xdp(&[0u8; 14], None, 1, 0, &NoHost)
            .expect("run")
            .retval,
        3
    );
    // A program that tail-calls itself counts its runs on the stack of... nothing:
    // each tail call gets a fresh frame, the chain stops after 33 calls and the
    // last program falls through.
    let counter = array(8, 1);
    let fds2 = Fds(vec![pa.clone(), counter.clone()]);
    let mut selfcall = ld_map(1, 2, 11, 0).to_vec();
    selfcall.extend(assemble("mov %r2, 1\nlock add [%r1+0], %r2\nmov %r1, %r6").expect("asm"));
    let mut insns = assemble("mov %r6, %r1").expect("asm");
    insns.extend(selfcall);
    insns.extend(ld_map(2, 1, 10, 0));
    insns.extend(assemble("mov %r3, 2\ncall 12\nmov %r0, 2\nexit").expect("asm"));
    let me = Arc::new(Program::load(spec(&insns), &fds2).expect("load"));
    slots.set(2, 8, me.clone(), 0).expect("set");
    assert_eq!(
        me.test_run_xdp(&[0u8; 14], None, 1, 0, &NoHost)
            .expect("run")
            .retval,
        2
    );
    assert_eq!(u32_at(&counter, 0), 34, "1 run + 33 tail calls");
    slots.clear_all();
}

/// A looked-up value is accessible: in bounds works; past the end of the array's
/// values faults (XDP_ABORTED), on both back ends, also after the value was used
/// once (the JIT caches the region of the value a lookup returns). The values of
/// an array a program references are all regions of its runs (it could look any
/// of them up), as the kernel's inlined array lookups make them reachable.
#[test]
fn map_value_bounds_after_lookup() {
    let m = array(8, 4);
    let fds = Fds(vec![m.clone()]);
    // r7 = packet byte 0 (the extra offset), key 1 on the stack.
    let a = assemble(
        "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, +12\n\
         ldxb %r7, [%r2+0]\nand %r7, 8\nmov %r5, 3\nstxw [%r10-4], %r5",
    )
    .expect("asm");
    let b = "mov %r2, %r10\nadd %r2, -4\ncall 1\njeq %r0, 0, out\nmov %r1, 5\nstxw [%r0+0], %r1\n\
             add %r0, %r7\nstxw [%r0+4], %r1\nmov %r0, 2\nexit\nout:\nmov %r0, 1\nexit";
    let mut insns = a;
    insns.extend(ld_map(1, 1, 10, 0));
    insns.extend(assemble(b).expect("asm"));
    let mut p = Program::load(spec(&insns), &fds).expect("load");
    for jit in [true, false] {
        if !jit {
            p.disable_jit();
        }
        let mut pkt = [0u8; 60];
        let run = |pkt: &[u8]| {
            p.test_run_xdp(pkt, None, 1, 0, &NoHost)
                .expect("run")
                .retval
        };
        assert_eq!(run(&pkt), 2, "in bounds (jit {jit})");
        assert_eq!(u32_at(&m, 3), 5);
        pkt[0] = 8;
        assert_eq!(run(&pkt), 0, "past the value's end (jit {jit})");
    }
}

/// Array lookups resolved at load time (inlined by the JIT): the key from the
/// packet picks the element, an index past max_entries gives NULL, the padding
/// between 4-byte values (8 bytes apart) is not a region, and a key that is not on
/// the stack is region-checked. Same results on both back ends.
#[test]
fn resolved_array_lookups() {
    let m = array(4, 3);
    let fds = Fds(vec![m.clone()]);
    // r6 = data; key = packet word 0 (copied to the stack, or used in place when
    // byte 4 is 1); write 7 at value offset packet byte 5; return 2, or 1 on NULL.
    let a = assemble(
        "ldxw %r6, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r6\nadd %r4, 8\njgt %r4, %r3, +15\n\
         ldxw %r5, [%r6+0]\nstxw [%r10-4], %r5\nldxb %r8, [%r6+4]\nldxb %r7, [%r6+5]",
    )
    .expect("asm");
    let b = "mov %r2, %r10\nadd %r2, -4\njeq %r8, 0, +1\nmov %r2, %r6\n";
    let c =
        "call 1\njeq %r0, 0, null\nadd %r0, %r7\nmov %r1, 7\nstxb [%r0+0], %r1\nmov %r0, 2\nexit\n\
             null:\nmov %r0, 1\nexit";
    let mut insns = a;
    insns.extend(assemble(b).expect("asm"));
    insns.extend(ld_map(1, 1, 10, 0));
    insns.extend(assemble(c).expect("asm"));
    let mut p = Program::load(spec(&insns), &fds).expect("load");
    for jit in [true, false] {
        if !jit {
            p.disable_jit();
        }
        let run = |key: u32, in_place: u8, off: u8| {
            let mut pkt = [0u8; 60];
            pkt[..4].copy_from_slice(&key.to_ne_bytes());
            pkt[4] = in_place;
            pkt[5] = off;
            p.test_run_xdp(&pkt, None, 1, 0, &NoHost)
                .expect("run")
                .retval
        };
        for in_place in [0, 1] {
            assert_eq!(run(2, in_place, 3), 2, "jit {jit}");
            assert_eq!(u32_at(&m, 2), 7 << 24);
            assert_eq!(run(3, in_place, 0), 1, "NULL past max_entries (jit {jit})");
            assert_eq!(run(u32::MAX, in_place, 0), 1, "jit {jit}");
            assert_eq!(run(1, in_place, 4), 0, "padding after value 1 (jit {jit})");
            assert_eq!(run(2, in_place, 8), 0, "past the array (jit {jit})");
        }
        m.sys_update(&2u32.to_ne_bytes(), &[0; 4], 0)
            .expect("reset");
    }
}
