//! Programs that use maps and helpers: ld_imm64 map references (MAP_FD, MAP_VALUE
//! global data, fd_array), map helpers from the crate's helper table, bpf_loop
//! callbacks, tail calls through PROG_ARRAY.

use std::sync::Arc;

use bpftime_vm::asm::assemble;
use bpftime_vm::insn::{encode, Insn};
use bpftime_vm::maps::{self, map_type, prog_array::ProgArray, Map, MapAttr};
use bpftime_vm::program::{prog_type, MapResolver, ProgLoadSpec, Program};
use bpftime_vm::run::{Fault, NoHost};

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

fn prog_array(max_entries: u32) -> Arc<dyn Map> {
    maps::create(&MapAttr {
        map_type: map_type::PROG_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries,
        ..Default::default()
    })
    .expect("prog array")
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
    let pa = prog_array(4);
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

fn run_once(p: &Program, host: &dyn bpftime_vm::run::HostEnv) -> bpftime_vm::program::RunResult {
    let mut buf = [0u8; 64];
    let mut ctx = bpftime_vm::run::XdpCtx::default();
    ctx.data = buf.as_mut_ptr() as u64;
    ctx.data_meta = ctx.data;
    ctx.data_end = ctx.data + buf.len() as u64;
    p.run_xdp(&mut ctx, 0, host)
}

/// Drops what it holds when the program calls `bpf_trace_printk`: the loader closing
/// the last fds of a program and its map while that program runs.
struct DropOnTrace {
    slots: Arc<dyn Map>,
    held: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}
impl bpftime_vm::run::HostEnv for DropOnTrace {
    fn trace_printk(&self, _msg: &str) {
        let pa = self
            .slots
            .as_any()
            .downcast_ref::<ProgArray>()
            .expect("ProgArray");
        pa.clear(1).expect("clear");
        self.held.lock().expect("lock").clear();
    }
}

/// A tail call ends the program that made it: its target cannot use what the caller
/// derived (a map value it looked up), even through an address it finds in a map and
/// makes look like a pointer (a caller's stack slot read in a subprogram, which the
/// verifier does not follow); and the caller and its maps stay alive until the run ends
/// even when the loader drops them mid-run (they used to be freed at the tail call, and
/// the target wrote into the freed value). Both back ends.
#[test]
fn tail_call_targets_cannot_reach_their_callers_memory() {
    for jit in [true, false] {
        bpftime_vm::jit::scoped(jit, || {
            let pa = prog_array(4);
            // A hash map without preallocation: its values are regions a lookup adds
            // to the run (array and preallocated values are the program's own areas).
            let secret = maps::create(&MapAttr {
                map_type: map_type::HASH,
                key_size: 4,
                value_size: 8,
                max_entries: 1,
                map_flags: 1,
                ..Default::default()
            })
            .expect("hash");
            secret
                .sys_update(&0u32.to_ne_bytes(), &5u64.to_ne_bytes(), 0)
                .expect("update");
            let mailbox = array(8, 1);
            let weak_secret = Arc::downgrade(&secret);
            // B (slot 1): looks its map up, leaves the value's address in the mailbox,
            // prints (the host then drops B and `secret`), tail-calls C (slot 2).
            let fds_b = Fds(vec![pa.clone(), secret.clone(), mailbox.clone()]);
            let mut b =
                assemble("mov %r6, %r1\nstw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4").expect("asm");
            b.extend(ld_map(1, 1, 11, 0));
            b.extend(
                assemble("call 1\njne %r0, 0, +2\nmov %r0, 7\nexit\nmov %r7, %r0\nstdw [%r7+0], 5\nmov %r2, %r10\nadd %r2, -4")
                    .expect("asm"),
            );
            b.extend(ld_map(1, 1, 12, 0));
            b.extend(
                assemble("call 1\njne %r0, 0, +2\nmov %r0, 7\nexit\nstxdw [%r0+0], %r7\nstw [%r10-8], 120\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 2\ncall 6\nmov %r1, %r6")
                    .expect("asm"),
            );
            b.extend(ld_map(2, 1, 10, 0));
            b.extend(assemble("mov %r3, 2\ncall 12\nmov %r0, 8\nexit").expect("asm"));
            let b = Arc::new(Program::load(spec(&b), &fds_b).expect("load B"));
            drop(fds_b);
            // C (slot 2): reads the address from the mailbox (a number), spills it, and
            // a subprogram writes 0x41 through it; returns 3 if the write went through.
            let fds_c = Fds(vec![mailbox.clone()]);
            let mut c = assemble("stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4").expect("asm");
            c.extend(ld_map(1, 1, 10, 0));
            c.extend(
                assemble(
                    "call 1\njne %r0, 0, +2\nmov %r0, 7\nexit\nldxdw %r1, [%r0+0]\nstxdw [%r10-16], %r1\n\
                     mov %r1, %r10\nadd %r1, -16\ncall local sub\nmov %r0, 3\nexit\n\
                     sub:\nldxdw %r2, [%r1+0]\nstdw [%r2+0], 65\nmov %r0, 0\nexit",
                )
                .expect("asm"),
            );
            let c = Arc::new(Program::load(spec(&c), &fds_c).expect("load C"));
            // A (entry): tail-calls slot 1.
            let a = Program::load(
                spec(&prog(
                    &ld_map(2, 1, 10, 0),
                    "mov %r3, 1\ncall 12\nmov %r0, 9\nexit",
                )),
                &Fds(vec![pa.clone()]),
            )
            .expect("load A");
            let slots = pa.as_any().downcast_ref::<ProgArray>().expect("ProgArray");
            slots.set(2, 3, c, 0).expect("set C");

            // Without the drop: C's write through B's value is refused.
            slots.set(1, 2, b.clone(), 0).expect("set B");
            let host = DropOnTrace {
                slots: pa.clone(),
                held: std::sync::Mutex::new(Vec::new()),
            };
            let r = run_once(&a, &host);
            assert_eq!(
                r.verdict, 0,
                "jit={jit}: C wrote through B's value (XDP_ABORTED expected)"
            );
            assert!(
                matches!(r.fault, Some(Fault::OutOfBounds { kind: "write", .. })),
                "jit={jit}: {:?}",
                r.fault
            );
            let mut v = [0u8; 8];
            secret
                .sys_lookup(&0u32.to_ne_bytes(), &mut v, 0)
                .expect("lookup");
            assert_eq!(
                u64::from_ne_bytes(v),
                5,
                "jit={jit}: B's value was written by C"
            );

            // With B and its map dropped by the loader while B runs.
            slots.set(1, 2, b.clone(), 0).expect("set B");
            host.held.lock().expect("lock").push(Box::new(b));
            host.held.lock().expect("lock").push(Box::new(secret));
            let r = run_once(&a, &host);
            assert_eq!(r.verdict, 0, "jit={jit}: C wrote into B's freed value");
            assert!(
                matches!(r.fault, Some(Fault::OutOfBounds { kind: "write", .. })),
                "jit={jit}: {:?}",
                r.fault
            );
            assert!(
                weak_secret.upgrade().is_none(),
                "jit={jit}: B's map outlived the run"
            );
            slots.clear_all();
        });
    }
}

/// A ring buffer record belongs to the reader once submitted (or discarded): a write
/// to it afterwards faults, on both back ends. The verifier refuses a direct write (as
/// the kernel); this one goes through a copy a subprogram reads from its caller's
/// stack, which the verifier does not follow, so the run-time check must catch it.
#[test]
fn ringbuf_records_end_at_submit() {
    for jit in [true, false] {
        for commit in [132, 133] {
            bpftime_vm::jit::scoped(jit, || {
                let rb = maps::create(&MapAttr {
                    map_type: map_type::RINGBUF,
                    key_size: 0,
                    value_size: 0,
                    max_entries: 4096,
                    ..Default::default()
                })
                .expect("ringbuf");
                let fds = Fds(vec![rb]);
                let mut insns = ld_map(1, 1, 10, 0).to_vec();
                insns.extend(
                    assemble(&format!(
                        "mov %r2, 8\nmov %r3, 0\ncall 131\njne %r0, 0, +2\nmov %r0, 7\nexit\n\
                         mov %r6, %r0\nstdw [%r6+0], 1\nstxdw [%r10-8], %r6\nmov %r1, %r6\nmov %r2, 0\n\
                         call {commit}\nmov %r1, %r10\nadd %r1, -8\ncall local sub\nmov %r0, 2\nexit\n\
                         sub:\nldxdw %r2, [%r1+0]\nstdw [%r2+0], 2\nmov %r0, 0\nexit"
                    ))
                    .expect("asm"),
                );
                let p = Program::load(spec(&insns), &fds).expect("load");
                let r = run_once(&p, &NoHost);
                assert_eq!(r.verdict, 0, "jit={jit} helper {commit}");
                assert!(
                    matches!(r.fault, Some(Fault::OutOfBounds { kind: "write", .. })),
                    "jit={jit} helper {commit}: {:?}",
                    r.fault
                );
            });
        }
    }
}

/// Accesses through a map value pointer run unchecked only where the verifier proves
/// them inside the value: from a non-NULL lookup of a known array or hash map, at
/// constant offsets, never through a pointer read back from memory, and stores only
/// where programs may write. Everything else keeps its run-time check (and faults).
#[test]
fn map_value_accesses_proven_only_inside_the_value() {
    const RDONLY_PROG: u32 = 1 << 7;
    let mk = |map_type: u32, flags: u32| {
        maps::create(&MapAttr {
            map_type,
            key_size: 4,
            value_size: 8,
            max_entries: 4,
            map_flags: flags,
            ..Default::default()
        })
        .expect("map")
    };
    // Key 0 (an array lookup the verifier takes to succeed: proven only by the test
    // against 0 the program makes anyway) and key 1.
    let lookup =
        |key: u32| format!("mov %r1, {key}\nstxw [%r10-4], %r1\nmov %r2, %r10\nadd %r2, -4\n");
    let body = |rest: &str| {
        format!("call 1\njeq %r0, 0, out\nmov %r1, 5\n{rest}\nexit\nout:\nmov %r0, 1\nexit")
    };
    let load = |map: &Arc<dyn Map>, key: u32, rest: &str| {
        let mut insns = assemble(&lookup(key)).expect("asm");
        insns.extend(ld_map(1, 1, 10, 0));
        insns.extend(assemble(&body(rest)).expect("asm"));
        Program::load(spec(&insns), &Fds(vec![map.clone()])).expect("load")
    };
    let inside = "stxw [%r0+0], %r1\nadd %r0, 4\nstxw [%r0+0], %r1\nldxw %r0, [%r0+0]";
    let straddles = "stxw [%r0+0], %r1\nadd %r0, 4\nldxw %r0, [%r0+2]";
    let refilled = "stxdw [%r10-16], %r0\nldxdw %r0, [%r10-16]\nstxw [%r0+0], %r1\nmov %r0, 2";
    let store_load = "stxw [%r0+0], %r1\nldxw %r0, [%r0+0]";
    // Atomic ops: one inside the value (proven), one that straddles its end (checked:
    // faults), then the proven load.
    let atomic = "stdw [%r0+0], 0\nlock add [%r0+0], %r1\nldxw %r0, [%r0+0]";
    let atomic_past = "lock add32 [%r0+6], %r1\nldxw %r0, [%r0+0]";
    let arr = mk(map_type::ARRAY, 0);
    let hash = mk(map_type::HASH, 0);
    for k in [0u32, 1] {
        hash.sys_update(&k.to_ne_bytes(), &[0; 8], 0)
            .expect("hash element");
    }
    let ro = mk(map_type::ARRAY, RDONLY_PROG);
    let cases: [(&Arc<dyn Map>, &str, usize, u32); 8] = [
        (&arr, atomic, 3, 5),
        (&hash, atomic, 3, 5),
        (&arr, atomic_past, 1, 0),
        (&arr, inside, 3, 5),
        (&arr, straddles, 1, 0), // the load past the value faults: XDP_ABORTED
        (&arr, refilled, 0, 2),
        (&hash, inside, 3, 5),
        // Only the load is proven; the store stays checked and faults (the kernel
        // refuses it at load).
        (&ro, store_load, 1, 0),
    ];
    for key in [0, 1] {
        for (n, &(map, rest, proven, want)) in cases.iter().enumerate() {
            let what = format!("case {n} key {key}");
            check_value_proofs(load(map, key, rest), proven, Some(want), &what);
        }
    }
}

/// `src` assembled, its `lddw %rN, 10` / `lddw %rN, 11` turned into map references
/// (fds 10 and 11).
fn with_maps(src: &str) -> Vec<Insn> {
    let mut insns = assemble(src).expect("asm");
    for insn in insns.iter_mut() {
        if insn.code == 0x18 && matches!(insn.imm, 10 | 11) {
            insn.src = 1;
        }
    }
    insns
}

/// What the stack held is not trusted for a map value proof: a callee given a pointer
/// into its caller's frame overwrites a spilled map reference (map A becomes map B) or
/// a lookup key, behind the analysis. A lookup through a map read back from memory, or
/// one taken to succeed because its key bytes "are" zero, gives no proof: the accesses
/// through its result stay checked, instead of landing 4000 bytes past B's 8-byte
/// value or at address 0 unchecked.
#[test]
fn map_value_proofs_do_not_trust_the_stack() {
    let big = array(4096, 1);
    let small = array(8, 1);
    let fds = Fds(vec![big.clone(), small.clone()]);
    let swapped_map = "lddw %r1, 10\nstxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -8\n\
        call local sub\nldxdw %r1, [%r10-8]\nmov %r3, 0\nstxw [%r10-16], %r3\n\
        mov %r2, %r10\nadd %r2, -16\ncall 1\njeq %r0, 0, out\nmov %r1, 7\n\
        stxdw [%r0+4000], %r1\nout:\nmov %r0, 2\nexit\n\
        sub:\nlddw %r2, 11\nstxdw [%r1+0], %r2\nmov %r0, 0\nexit";
    let swapped_key = |test: &str, out: &str| {
        format!(
            "mov %r3, 0\nstxw [%r10-16], %r3\nmov %r3, 7\nstxw [%r10-24], %r3\n\
             mov %r2, %r10\nadd %r2, -16\nstxdw [%r10-8], %r2\nmov %r1, %r10\nadd %r1, -8\n\
             call local sub\nmov %r3, 0\nstxw [%r10-16], %r3\nldxdw %r2, [%r10-8]\n\
             lddw %r1, 11\ncall 1\n{test}mov %r1, 7\nstxdw [%r0+0], %r1\n\
             mov %r0, 2\nexit\n{out}\
             sub:\nmov %r2, %r1\nadd %r2, -16\nstxdw [%r1+0], %r2\nmov %r0, 0\nexit"
        )
    };
    let (untested, tested) = (
        swapped_key("", ""),
        swapped_key("jeq %r0, 0, out\n", "out:\nmov %r0, 3\nexit\n"),
    );
    // The swapped map's access is checked, and where it lands depends on where the
    // allocator put the two values (inside the big one is a legal access): only the
    // NULL-based one has a fixed outcome.
    // With the program's own test against 0, the access is proven on the edge where
    // the lookup succeeded; at run time the NULL takes the other one.
    for (name, src, proven, want) in [
        ("swapped map", swapped_map, 0, None),
        ("swapped key", untested.as_str(), 0, Some(0)),
        ("swapped key, tested", tested.as_str(), 1, Some(3)),
    ] {
        let p =
            Program::load(spec(&with_maps(src)), &fds).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        check_value_proofs(p, proven, want, name);
    }
}

/// A test against 0 of a copy read back from the stack proves nothing about the
/// register it was copied from: a callee may have replaced the spilled copy. Here a
/// hash lookup misses (NULL), its spilled copy is overwritten by the callee with a
/// non-zero number, and the refilled copy passes the test: the access through the
/// original stays checked and faults instead of writing at address 0.
#[test]
fn a_tested_refill_proves_nothing_about_the_original() {
    let hash = maps::create(&MapAttr {
        map_type: map_type::HASH,
        key_size: 4,
        value_size: 8,
        max_entries: 4,
        ..Default::default()
    })
    .expect("hash");
    let fds = Fds(vec![hash]);
    let src = "mov %r1, 9\nstxw [%r10-4], %r1\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, 10\n\
        call 1\nmov %r6, %r0\nstxdw [%r10-32], %r6\nmov %r1, %r10\nadd %r1, -32\n\
        call local sub\nldxdw %r7, [%r10-32]\njeq %r7, 0, out\nstdw [%r6+0], 7\n\
        mov %r0, 2\nexit\nout:\nmov %r0, 3\nexit\n\
        sub:\nmov %r2, %r1\nstxdw [%r1+0], %r2\nmov %r0, 0\nexit";
    let p = Program::load(spec(&with_maps(src)), &fds).expect("load");
    // The write through NULL faults.
    check_value_proofs(p, 0, Some(0), "tested refill");
}

/// `p` has `proven` map value accesses without a run-time check, and a test run on both
/// back ends returns `want` (when given).
fn check_value_proofs(mut p: Program, proven: usize, want: Option<u32>, what: &str) {
    assert_eq!(
        p.memory_accesses().value_proven,
        proven,
        "{what}: {:?}",
        p.memory_accesses()
    );
    for jit in [true, false] {
        if !jit {
            p.disable_jit();
        }
        let out = p
            .test_run_xdp(&[0u8; 60], None, 1, 0, &NoHost)
            .expect("run");
        if let Some(want) = want {
            assert_eq!(out.retval, want, "{what} (jit {jit})");
        }
    }
}
