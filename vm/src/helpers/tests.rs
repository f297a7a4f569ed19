//! Unit tests of the helpers through a test `HelperCtx`.

use std::sync::{Arc, Mutex};

use super::testctx::{TestCtx, TraceHost};
use super::*;
use crate::maps::{self, map_type as mt, MapAttr};
use crate::run::{Fault, HelperCtx, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT};

fn attr(t: u32, k: u32, v: u32, n: u32, f: u32) -> MapAttr {
    MapAttr {
        map_type: t,
        key_size: k,
        value_size: v,
        max_entries: n,
        map_flags: f,
        ..Default::default()
    }
}

fn call(ctx: &mut TestCtx, id: u32, a: [u64; 5]) -> Result<u64, Fault> {
    (get(id).unwrap_or_else(|| panic!("helper {id}")).func)(ctx, a)
}

fn neg(e: i32) -> u64 {
    -(e as i64) as u64
}

#[test]
fn table_is_consistent() {
    for (i, h) in all().iter().enumerate() {
        assert!(
            all()[..i].iter().all(|o| o.id != h.id),
            "duplicate helper {}",
            h.id
        );
        assert!(get_for(h.id, PROG_TYPE_XDP).is_some());
    }
    assert!(get(id::CSUM_UPDATE).is_none(), "csum_update is skb-only");
    assert!(get_for(id::XDP_ADJUST_HEAD, 1).is_none());
    assert!(get_for(id::MAP_LOOKUP_ELEM, 1).is_some());
    assert!(get(9999).is_none());
}

#[test]
fn map_helpers() {
    let mut ctx = TestCtx::new();
    let h = ctx.add(maps::create(&attr(mt::HASH, 4, 8, 4, 0)).unwrap());
    let k = ctx.put(0, &7u32.to_ne_bytes());
    let v = ctx.put(8, &42u64.to_ne_bytes());
    assert_eq!(
        call(&mut ctx, id::MAP_LOOKUP_ELEM, [h, k, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(
        call(&mut ctx, id::MAP_UPDATE_ELEM, [h, k, v, 0, 0]).unwrap(),
        0
    );
    assert_eq!(
        call(&mut ctx, id::MAP_UPDATE_ELEM, [h, k, v, 1, 0]).unwrap(),
        neg(libc::EEXIST)
    );
    let p = call(&mut ctx, id::MAP_LOOKUP_ELEM, [h, k, 0, 0, 0]).unwrap();
    assert_eq!(ctx.get(p, 8), 42u64.to_ne_bytes());
    // The value is writable by the program.
    ctx.write(p, 8)
        .unwrap()
        .copy_from_slice(&43u64.to_ne_bytes());
    assert!(ctx.write(p + 8, 1).is_err(), "only the value is accessible");
    assert_eq!(
        call(&mut ctx, id::MAP_DELETE_ELEM, [h, k, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(
        call(&mut ctx, id::MAP_DELETE_ELEM, [h, k, 0, 0, 0]).unwrap(),
        neg(libc::ENOENT)
    );
    // Bad key pointer: a fault, not a read.
    assert!(call(&mut ctx, id::MAP_LOOKUP_ELEM, [h, 16, 0, 0, 0]).is_err());
    assert!(matches!(
        call(&mut ctx, id::MAP_LOOKUP_ELEM, [12345, k, 0, 0, 0]),
        Err(Fault::BadMap { .. })
    ));
    // Queue helpers.
    let q = ctx.add(maps::create(&attr(mt::QUEUE, 0, 8, 2, 0)).unwrap());
    assert_eq!(
        call(&mut ctx, id::MAP_PUSH_ELEM, [q, v, 0, 0, 0]).unwrap(),
        0
    );
    let out = ctx.scratch_addr(64);
    assert_eq!(
        call(&mut ctx, id::MAP_PEEK_ELEM, [q, out, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(ctx.get(out, 8), 42u64.to_ne_bytes());
    assert_eq!(
        call(&mut ctx, id::MAP_POP_ELEM, [q, out, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(
        call(&mut ctx, id::MAP_POP_ELEM, [q, out, 0, 0, 0]).unwrap(),
        neg(libc::ENOENT)
    );
}

#[test]
fn for_each_and_loop() {
    let mut ctx = TestCtx::new();
    let m = maps::create(&attr(mt::ARRAY, 4, 8, 5, 0)).unwrap();
    let h = ctx.add(m.clone());
    let seen = Arc::new(Mutex::new(vec![]));
    let s2 = seen.clone();
    ctx.callback = Box::new(move |func, a| {
        assert_eq!(func, 77);
        s2.lock().unwrap().push(a);
        u64::from(s2.lock().unwrap().len() == 3)
    });
    assert_eq!(
        call(&mut ctx, id::FOR_EACH_MAP_ELEM, [h, 77, 5, 0, 0]).unwrap(),
        3
    );
    let s = seen.lock().unwrap().clone();
    assert_eq!(s.len(), 3);
    assert!(s.iter().all(|a| a[0] == h && a[3] == 5));
    assert_eq!(ctx.get(s[2][1], 4), 2u32.to_ne_bytes());
    assert_eq!(
        call(&mut ctx, id::FOR_EACH_MAP_ELEM, [h, 77, 5, 1, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    ctx.callback = Box::new(|_, a| u64::from(a[0] == 9));
    assert_eq!(call(&mut ctx, id::LOOP, [100, 1, 0, 0, 0]).unwrap(), 10);
    assert_eq!(call(&mut ctx, id::LOOP, [5, 1, 0, 0, 0]).unwrap(), 5);
    assert_eq!(
        call(&mut ctx, id::LOOP, [(1 << 23) + 1, 1, 0, 0, 0]).unwrap(),
        neg(libc::E2BIG)
    );
    assert_eq!(
        call(&mut ctx, id::LOOP, [5, 1, 0, 1, 0]).unwrap(),
        neg(libc::EINVAL)
    );
}

#[test]
fn tail_call_and_redirects() {
    let mut ctx = TestCtx::new();
    let pa = maps::create(&attr(mt::PROG_ARRAY, 4, 4, 4, 0)).unwrap();
    let t = pa
        .as_any()
        .downcast_ref::<maps::prog_array::ProgArray>()
        .unwrap();
    t.set(2, 5, Arc::new(crate::maps::unit_tests::test_prog()), 0)
        .unwrap();
    let h = ctx.add(pa.clone());
    assert_eq!(
        call(&mut ctx, id::TAIL_CALL, [0, h, 1, 0, 0]).unwrap(),
        neg(libc::ENOENT)
    );
    assert!(ctx.tail.is_none());
    assert_eq!(
        call(&mut ctx, id::TAIL_CALL, [0, h, 99, 0, 0]).unwrap(),
        neg(libc::ENOENT)
    );
    assert_eq!(call(&mut ctx, id::TAIL_CALL, [0, h, 2, 0, 0]).unwrap(), 0);
    assert!(ctx.tail.is_some());

    assert_eq!(
        call(&mut ctx, id::REDIRECT, [3, 1, 0, 0, 0]).unwrap(),
        XDP_ABORTED as u64
    );
    assert_eq!(
        call(&mut ctx, id::REDIRECT, [3, 0, 0, 0, 0]).unwrap(),
        XDP_REDIRECT as u64
    );
    assert_eq!(ctx.redirect.ifindex, 3);
    let dm = maps::create(&attr(mt::DEVMAP, 4, 4, 4, 0)).unwrap();
    dm.sys_update(&1u32.to_ne_bytes(), &7u32.to_ne_bytes(), 0)
        .unwrap();
    let d = ctx.add(dm);
    assert_eq!(
        call(&mut ctx, id::REDIRECT_MAP, [d, 0, XDP_PASS as u64, 0, 0]).unwrap(),
        XDP_PASS as u64
    );
    assert!(ctx.redirect.map.is_none());
    assert_eq!(
        call(&mut ctx, id::REDIRECT_MAP, [d, 0, 64, 0, 0]).unwrap(),
        XDP_ABORTED as u64
    );
    assert_eq!(
        call(&mut ctx, id::REDIRECT_MAP, [d, 1, XDP_DROP as u64, 0, 0]).unwrap(),
        XDP_REDIRECT as u64
    );
    assert_eq!(
        (ctx.redirect.ifindex, ctx.redirect.key, ctx.redirect.flags),
        (7, 1, 0)
    );
    assert!(ctx.redirect.map.is_some());
    let f = redirect::BPF_F_BROADCAST | redirect::BPF_F_EXCLUDE_INGRESS;
    assert_eq!(
        call(&mut ctx, id::REDIRECT_MAP, [d, 3, f, 0, 0]).unwrap(),
        XDP_REDIRECT as u64
    );
    assert_eq!(ctx.redirect.flags, f);
}

#[test]
fn xdp_adjust() {
    let pkt: Vec<u8> = (0..64u8).collect();
    let mut ctx = TestCtx::new().with_packet(&pkt);
    let x0 = ctx.xdp;
    // Head: may not go below hard_start + 40 (xdp_frame), nor leave < 14 bytes.
    assert_eq!(
        call(
            &mut ctx,
            id::XDP_ADJUST_HEAD,
            [0, (-(256 - 40) as i64 - 1) as u64, 0, 0, 0]
        )
        .unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_HEAD, [0, 51, 0, 0, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_HEAD, [0, 50, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(ctx.xdp.data, x0.data + 50);
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_HEAD, [0, (-50i64) as u64, 0, 0, 0]).unwrap(),
        0
    );
    // Meta: 4-aligned, at most 255.
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_META, [0, (-3i64) as u64, 0, 0, 0]).unwrap(),
        neg(libc::EACCES)
    );
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_META, [0, 4, 0, 0, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_META, [0, (-8i64) as u64, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(ctx.xdp.data_meta, x0.data - 8);
    ctx.write(ctx.xdp.data_meta, 8)
        .unwrap()
        .copy_from_slice(b"metadata");
    // adjust_head moves the metadata along.
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_HEAD, [0, (-16i64) as u64, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(ctx.get(ctx.xdp.data_meta, 8), b"metadata");
    assert_eq!(ctx.xdp.data_meta, ctx.xdp.data - 8);
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_HEAD, [0, 16, 0, 0, 0]).unwrap(),
        0
    );
    // Tail: grow zero-fills, bounded by frame_end; shrink keeps 14 bytes.
    ctx.write(ctx.xdp.data_end, 8).unwrap().fill(0xff);
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_TAIL, [0, 8, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(ctx.get(ctx.xdp.data_end - 8, 8), vec![0; 8]);
    let room = ctx.xdp.frame_end - ctx.xdp.data_end;
    assert_eq!(
        call(&mut ctx, id::XDP_ADJUST_TAIL, [0, room + 1, 0, 0, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(
            &mut ctx,
            id::XDP_ADJUST_TAIL,
            [0, (-(72 - 13) as i64) as u64, 0, 0, 0]
        )
        .unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(
            &mut ctx,
            id::XDP_ADJUST_TAIL,
            [0, (-(72 - 14) as i64) as u64, 0, 0, 0]
        )
        .unwrap(),
        0
    );
    assert_eq!(call(&mut ctx, id::XDP_GET_BUFF_LEN, [0; 5]).unwrap(), 14);
    // load/store bytes.
    let buf = ctx.scratch_addr(0);
    assert_eq!(
        call(&mut ctx, id::XDP_LOAD_BYTES, [0, 2, buf, 4, 0]).unwrap(),
        0
    );
    assert_eq!(ctx.get(buf, 4), vec![2, 3, 4, 5]);
    assert_eq!(
        call(&mut ctx, id::XDP_LOAD_BYTES, [0, 12, buf, 4, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::XDP_LOAD_BYTES, [0, 0x10000, buf, 4, 0]).unwrap(),
        neg(libc::EFAULT)
    );
    ctx.put(0, &[9, 9]);
    assert_eq!(
        call(&mut ctx, id::XDP_STORE_BYTES, [0, 0, buf, 2, 0]).unwrap(),
        0
    );
    assert_eq!(ctx.get(ctx.xdp.data, 3), vec![9, 9, 2]);
}

#[test]
fn trace_printk_formats() {
    let host = Arc::new(TraceHost(Mutex::new(vec![])));
    struct H(Arc<TraceHost>);
    impl crate::run::HostEnv for H {
        fn trace_printk(&self, m: &str) {
            self.0.trace_printk(m)
        }
        fn mtu(&self, i: u32) -> Option<u32> {
            self.0.mtu(i)
        }
    }
    let mut ctx = TestCtx::new();
    ctx.host = Box::new(H(host.clone()));
    let s = ctx.put(256, b"str\0");
    let pr = |ctx: &mut TestCtx, f: &[u8], a: [u64; 3]| {
        let p = ctx.put(0, f);
        call(ctx, id::TRACE_PRINTK, [p, f.len() as u64, a[0], a[1], a[2]]).unwrap()
    };
    let n = pr(
        &mut ctx,
        b"a %d %u %x|%5d|%-4x|%05d\0",
        [-5i64 as u64, u64::MAX, 255],
    );
    assert_eq!(n as i64, -(libc::EINVAL as i64), "more than 3 args");
    let n = pr(&mut ctx, b"a %d %u %x\0", [-5i64 as u64, u64::MAX, 255]);
    assert_eq!(host.0.lock().unwrap().last().unwrap(), "a -5 4294967295 ff");
    assert_eq!(n, 18);
    pr(&mut ctx, b"%lld %llx %s\0", [-5i64 as u64, u64::MAX, s]);
    assert_eq!(
        host.0.lock().unwrap().last().unwrap(),
        "-5 ffffffffffffffff str"
    );
    pr(&mut ctx, b"[%5d][%-3u][%03d] %%\0", [42, 7, 5]);
    assert_eq!(
        host.0.lock().unwrap().last().unwrap(),
        "[   42][7  ][005] %"
    );
    assert_eq!(pr(&mut ctx, b"%q\0", [0; 3]) as i64, -(libc::EINVAL as i64));
    assert_eq!(
        pr(&mut ctx, b"no nul", [0; 3]) as i64,
        -(libc::EINVAL as i64)
    );
    pr(&mut ctx, b"%c\0", [b'x' as u64, 0, 0]);
    assert_eq!(host.0.lock().unwrap().last().unwrap(), "x");
}

#[test]
fn spin_lock_and_ringbuf_helpers() {
    let mut ctx = TestCtx::new();
    let l = ctx.scratch_addr(0);
    assert_eq!(call(&mut ctx, id::SPIN_LOCK, [l, 0, 0, 0, 0]).unwrap(), 0);
    assert_eq!(ctx.get(l, 4), 1u32.to_ne_bytes());
    assert_eq!(call(&mut ctx, id::SPIN_UNLOCK, [l, 0, 0, 0, 0]).unwrap(), 0);
    assert!(call(&mut ctx, id::SPIN_LOCK, [l + 1, 0, 0, 0, 0]).is_err());
    let rb = ctx.add(maps::create(&attr(mt::RINGBUF, 0, 0, 4096, 0)).unwrap());
    let p = call(&mut ctx, id::RINGBUF_RESERVE, [rb, 16, 0, 0, 0]).unwrap();
    assert_ne!(p, 0);
    ctx.write(p, 16).unwrap().fill(7);
    assert_eq!(
        call(&mut ctx, id::RINGBUF_QUERY, [rb, 0, 0, 0, 0]).unwrap(),
        24
    );
    assert_eq!(
        call(&mut ctx, id::RINGBUF_SUBMIT, [p, 0, 0, 0, 0]).unwrap(),
        0
    );
    assert!(
        call(&mut ctx, id::RINGBUF_SUBMIT, [p, 0, 0, 0, 0]).is_err(),
        "double submit"
    );
    assert_eq!(
        call(&mut ctx, id::RINGBUF_RESERVE, [rb, 16, 1, 0, 0]).unwrap(),
        0
    );
    let d = ctx.put(64, &[1, 2, 3]);
    assert_eq!(
        call(&mut ctx, id::RINGBUF_OUTPUT, [rb, d, 3, 0, 0]).unwrap(),
        0
    );
    assert_eq!(
        call(&mut ctx, id::RINGBUF_OUTPUT, [rb, d, 3, 4, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::RINGBUF_OUTPUT, [rb, d, 5000, 0, 0]).map_err(|_| ()),
        Err(())
    );
    assert_eq!(
        call(&mut ctx, id::RINGBUF_QUERY, [rb, 3, 0, 0, 0]).unwrap(),
        40
    );
}

#[test]
fn misc_helpers() {
    let mut ctx = TestCtx::new().with_packet(&[0u8; 100]);
    ctx.cpu = 1;
    assert_eq!(call(&mut ctx, id::GET_SMP_PROCESSOR_ID, [0; 5]).unwrap(), 1);
    let a = call(&mut ctx, id::GET_PRANDOM_U32, [0; 5]).unwrap();
    let b = call(&mut ctx, id::GET_PRANDOM_U32, [0; 5]).unwrap();
    assert!(a <= u32::MAX as u64 && a != b);
    let t0 = call(&mut ctx, id::KTIME_GET_NS, [0; 5]).unwrap();
    let t1 = call(&mut ctx, id::KTIME_GET_NS, [0; 5]).unwrap();
    assert!(t1 >= t0 && t0 > 0);
    assert!(call(&mut ctx, id::KTIME_GET_BOOT_NS, [0; 5]).unwrap() > 0);
    assert!(call(&mut ctx, id::KTIME_GET_COARSE_NS, [0; 5]).unwrap() > 0);
    // perf_event_output on a map that is no PERF_EVENT_ARRAY: -EINVAL; on an empty
    // slot: -ENOENT; unknown flag bits: -EINVAL; more context than packet: -EFAULT.
    let pa = ctx.add(maps::create(&attr(mt::PERF_EVENT_ARRAY, 4, 4, 2, 0)).unwrap());
    let other = ctx.add(maps::create(&attr(mt::ARRAY, 4, 4, 2, 0)).unwrap());
    let d = ctx.put(0, &[1, 2, 3, 4]);
    assert_eq!(
        call(&mut ctx, id::PERF_EVENT_OUTPUT, [0, other, 0, d, 4]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::PERF_EVENT_OUTPUT, [0, pa, 1, d, 4]).unwrap(),
        neg(libc::ENOENT)
    );
    assert_eq!(
        call(&mut ctx, id::PERF_EVENT_OUTPUT, [0, pa, 1 << 60, d, 4]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::PERF_EVENT_OUTPUT, [0, pa, 7, d, 4]).unwrap(),
        neg(libc::E2BIG)
    );
    assert_eq!(
        call(
            &mut ctx,
            id::PERF_EVENT_OUTPUT,
            [0, pa, 0xf_ffff << 32, d, 4]
        )
        .unwrap(),
        neg(libc::EFAULT)
    );
    // fib_lookup without a routing service: -EOPNOTSUPP; bad size: -EINVAL.
    let p = ctx.put(0, &[libc::AF_INET as u8; 64]);
    assert_eq!(
        call(&mut ctx, id::FIB_LOOKUP, [0, p, 64, 0, 0]).unwrap(),
        neg(libc::EOPNOTSUPP)
    );
    assert_eq!(
        call(&mut ctx, id::FIB_LOOKUP, [0, p, 63, 0, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    assert_eq!(
        call(&mut ctx, id::FIB_LOOKUP, [0, p, 64, 64, 0]).unwrap(),
        neg(libc::EINVAL)
    );
    // check_mtu against ifindex 1 (mtu 1500 in TraceHost).
    ctx.host = Box::new(TraceHost(Mutex::new(vec![])));
    let m = ctx.put(128, &0u32.to_ne_bytes());
    assert_eq!(call(&mut ctx, id::CHECK_MTU, [0, 0, m, 0, 0]).unwrap(), 0);
    assert_eq!(ctx.get(m, 4), 1500u32.to_ne_bytes());
    ctx.put(128, &0u32.to_ne_bytes());
    assert_eq!(
        call(&mut ctx, id::CHECK_MTU, [0, 0, m, 1415, 0]).unwrap(),
        1
    );
    assert_eq!(
        call(&mut ctx, id::CHECK_MTU, [0, 2, m, 0, 0]).unwrap(),
        neg(libc::ENODEV)
    );
    assert_eq!(
        call(&mut ctx, id::CHECK_MTU, [0, 0, m, 0, 1]).unwrap(),
        neg(libc::EINVAL)
    );
    // csum_diff through the helper.
    let f = ctx.put(0, &[1, 2, 3, 4]);
    let t = ctx.put(8, &[1, 2, 3, 5]);
    let r = call(&mut ctx, id::CSUM_DIFF, [f, 4, t, 4, 0]).unwrap();
    assert_eq!(r, 0x0100);
}

/// ns per `bpf_map_lookup_elem` helper call (no interpreter), for profiling:
/// `cargo test -p bpftime-vm --release --lib helper_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn helper_cost() {
    for (name, t) in [
        ("ARRAY", mt::ARRAY),
        ("HASH", mt::HASH),
        ("LRU_HASH", mt::LRU_HASH),
    ] {
        let mut ctx = TestCtx::new();
        let m = maps::create(&attr(t, 4, 8, 64, 0)).unwrap();
        m.sys_update(&0u32.to_ne_bytes(), &[0; 8], 0).unwrap();
        let h = ctx.add(m);
        let k = ctx.put(0, &0u32.to_ne_bytes());
        let v = ctx.put(8, &[1; 8]);
        let n = 1_000_000;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(call(&mut ctx, id::MAP_LOOKUP_ELEM, [h, k, 0, 0, 0]).unwrap());
            ctx.regions.truncate(2);
        }
        let l = t0.elapsed().as_nanos() as f64 / n as f64;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(call(&mut ctx, id::MAP_UPDATE_ELEM, [h, k, v, 0, 0]).unwrap());
        }
        let u = t0.elapsed().as_nanos() as f64 / n as f64;
        println!("{name:<10} lookup {l:>7.1} ns  update {u:>7.1} ns");
    }
}
