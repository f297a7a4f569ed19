//! Unit tests of the map types through the `Map` trait (no root needed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::batch::BatchReq;
use super::update_flags::*;
use super::*;
use crate::helpers::testctx::TestCtx;

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

/// `r0 = 0; exit`.
pub(crate) fn test_prog() -> crate::program::Program {
    use crate::insn::Insn;
    let insns = [Insn::new(0xb7, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
    crate::program::Program::load_raw(&insns, crate::helpers::get).expect("trivial program loads")
}

fn k4(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

#[test]
fn array_semantics() {
    let m = create(&attr(map_type::ARRAY, 4, 12, 4, 0)).unwrap();
    let mut v = [0u8; 12];
    m.sys_lookup(&k4(3), &mut v, 0).unwrap();
    assert_eq!(v, [0; 12]);
    assert_eq!(m.sys_lookup(&k4(4), &mut v, 0), Err(MapError::NoEnt));
    assert_eq!(m.sys_update(&k4(4), &[1; 12], 0), Err(MapError::TooBig));
    assert_eq!(
        m.sys_update(&k4(1), &[1; 12], BPF_NOEXIST),
        Err(MapError::Exist)
    );
    assert_eq!(m.sys_update(&k4(1), &[1; 12], 3), Err(MapError::Inval));
    assert_eq!(
        m.sys_update(&k4(1), &[1; 12], BPF_F_LOCK),
        Err(MapError::Inval)
    );
    m.sys_update(&k4(1), &[7; 12], BPF_EXIST).unwrap();
    m.sys_lookup(&k4(1), &mut v, 0).unwrap();
    assert_eq!(v, [7; 12]);
    assert_eq!(m.sys_delete(&k4(1)), Err(MapError::Inval));
    let mut n = [0u8; 4];
    m.sys_get_next_key(None, &mut n).unwrap();
    assert_eq!(n, k4(0));
    m.sys_get_next_key(Some(&k4(99)), &mut n).unwrap();
    assert_eq!(n, k4(0));
    m.sys_get_next_key(Some(&k4(2)), &mut n).unwrap();
    assert_eq!(n, k4(3));
    assert_eq!(
        m.sys_get_next_key(Some(&k4(3)), &mut n),
        Err(MapError::NoEnt)
    );
    assert_eq!(
        m.sys_lookup_and_delete(&k4(1), &mut v, 0),
        Err(MapError::NotSupp)
    );
    m.freeze().unwrap();
    assert_eq!(m.freeze(), Err(MapError::Perm));
    assert_eq!(m.sys_update(&k4(1), &[1; 12], 0), Err(MapError::Perm));
    // Programs may still write a frozen map.
    let mut ctx = TestCtx::new();
    let h = ctx.add(m.clone());
    let _ = h;
    assert_eq!(m.prog_update(&mut ctx, &k4(1), &[9; 12], 0), 0);
    let p = m.prog_lookup(&mut ctx, &k4(1));
    assert_ne!(p, 0);
    assert_eq!(ctx.get(p, 12), vec![9; 12]);
    assert_eq!(m.prog_lookup(&mut ctx, &k4(4)), 0);
    // Create checks.
    assert_eq!(
        create(&attr(map_type::ARRAY, 8, 4, 1, 0)).err(),
        Some(MapError::Inval)
    );
    assert_eq!(
        create(&attr(map_type::ARRAY, 4, 0, 1, 0)).err(),
        Some(MapError::Inval)
    );
    assert_eq!(
        create(&attr(map_type::ARRAY, 4, 4, 0, 0)).err(),
        Some(MapError::Inval)
    );
    assert_eq!(
        create(&attr(map_type::ARRAY, 4, 4, 1, 1)).err(),
        Some(MapError::Inval)
    );
    assert_eq!(
        create(&attr(map_type::ARRAY, 4, 1 << 20, 1 << 30, 0)).err(),
        Some(MapError::NoMem)
    );
    assert_eq!(
        create(&attr(map_type::PERCPU_ARRAY, 4, 40000, 1, 0)).err(),
        Some(MapError::TooBig)
    );
    assert_eq!(
        create(&attr(
            map_type::ARRAY,
            4,
            4,
            1,
            map_flags::BPF_F_RDONLY | map_flags::BPF_F_WRONLY
        ))
        .err(),
        Some(MapError::Inval)
    );
}

#[test]
fn array_flags_and_mmap() {
    use std::os::fd::AsRawFd;
    let m = create(&attr(map_type::ARRAY, 4, 5, 3, map_flags::BPF_F_MMAPABLE)).unwrap();
    m.sys_update(&k4(2), b"hello", 0).unwrap();
    let fd = m.mmap_fd().unwrap();
    let mut b = [0u8; 5];
    // SAFETY: pread into a local buffer from the map's memfd.
    let n = unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), 5, 16) };
    assert_eq!(n, 5);
    assert_eq!(&b, b"hello");
    // Direct value access (global data) only for single-element arrays.
    assert!(m.direct_value().is_none());
    let one = create(&attr(map_type::ARRAY, 4, 5, 1, map_flags::BPF_F_MMAPABLE)).unwrap();
    assert!(one.direct_value().unwrap().writable);
    let ro = create(&attr(
        map_type::ARRAY,
        4,
        8,
        1,
        map_flags::BPF_F_RDONLY_PROG,
    ))
    .unwrap();
    assert!(!ro.direct_value().unwrap().writable);
    let mut ctx = TestCtx::new();
    assert_eq!(
        ro.prog_update(&mut ctx, &k4(0), &[0; 8], 0),
        -(libc::EPERM as i64)
    );
    // BPF_F_RDONLY/WRONLY are the creating fd's mode (checked by the supervisor):
    // the map itself stays writable and readable until frozen.
    let rd = create(&attr(map_type::ARRAY, 4, 8, 1, map_flags::BPF_F_RDONLY)).unwrap();
    assert_eq!(rd.sys_update(&k4(0), &[0; 8], 0), Ok(()));
    assert_eq!(rd.freeze(), Ok(()));
    assert_eq!(rd.sys_update(&k4(0), &[0; 8], 0), Err(MapError::Perm));
    let wr = create(&attr(map_type::ARRAY, 4, 8, 1, map_flags::BPF_F_WRONLY)).unwrap();
    assert_eq!(wr.sys_lookup(&k4(0), &mut [0; 8], 0), Ok(()));
    assert_eq!(
        create(&attr(
            map_type::PERCPU_ARRAY,
            4,
            8,
            1,
            map_flags::BPF_F_MMAPABLE
        ))
        .err(),
        Some(MapError::Inval)
    );
}

#[test]
fn percpu_array_slots() {
    let ncpu = possible_cpus();
    let m = create(&attr(map_type::PERCPU_ARRAY, 4, 4, 2, 0)).unwrap();
    assert_eq!(m.sys_value_size(), 8 * ncpu);
    let mut val = vec![0u8; 8 * ncpu];
    for c in 0..ncpu {
        val[c * 8..c * 8 + 4].copy_from_slice(&(c as u32 + 10).to_ne_bytes());
    }
    m.sys_update(&k4(1), &val, 0).unwrap();
    let mut ctx = TestCtx::new();
    for c in 0..ncpu {
        ctx.cpu = c as u32;
        let p = m.prog_lookup(&mut ctx, &k4(1));
        assert_eq!(ctx.get(p, 4), (c as u32 + 10).to_ne_bytes());
    }
    ctx.cpu = 0;
    assert_eq!(m.prog_update(&mut ctx, &k4(1), &99u32.to_ne_bytes(), 0), 0);
    let mut out = vec![0u8; 8 * ncpu];
    m.sys_lookup(&k4(1), &mut out, 0).unwrap();
    assert_eq!(&out[..4], &99u32.to_ne_bytes());
    if ncpu > 1 {
        assert_eq!(&out[8..12], &11u32.to_ne_bytes());
    }
}

#[test]
fn hash_semantics() {
    for t in [
        map_type::HASH,
        map_type::PERCPU_HASH,
        map_type::LRU_HASH,
        map_type::LRU_PERCPU_HASH,
    ] {
        let m = create(&attr(t, 4, 8, 4, 0)).unwrap();
        let vs = m.sys_value_size();
        let val = |x: u8| vec![x; vs];
        let mut out = vec![0u8; vs];
        assert_eq!(m.sys_lookup(&k4(1), &mut out, 0), Err(MapError::NoEnt));
        assert_eq!(m.sys_delete(&k4(1)), Err(MapError::NoEnt));
        assert_eq!(
            m.sys_update(&k4(1), &val(1), BPF_EXIST),
            Err(MapError::NoEnt)
        );
        m.sys_update(&k4(1), &val(1), BPF_NOEXIST).unwrap();
        assert_eq!(
            m.sys_update(&k4(1), &val(1), BPF_NOEXIST),
            Err(MapError::Exist)
        );
        m.sys_update(&k4(1), &val(2), BPF_EXIST).unwrap();
        m.sys_lookup(&k4(1), &mut out, 0).unwrap();
        assert_eq!(&out[..8], &[2; 8]);
        assert_eq!(m.sys_update(&k4(1), &val(1), 4), Err(MapError::Inval));
        assert_eq!(m.sys_update(&k4(1), &val(1), 8), Err(MapError::Inval));
        for i in 2..=4 {
            m.sys_update(&k4(i), &val(i as u8), 0).unwrap();
        }
        let lru = matches!(t, map_type::LRU_HASH | map_type::LRU_PERCPU_HASH);
        let r = m.sys_update(&k4(5), &val(5), 0);
        if lru {
            assert_eq!(r, Ok(()));
            assert_eq!(m.len(), 4);
        } else {
            assert_eq!(r, Err(MapError::TooBig));
            // Replacing an existing key of a full map works.
            m.sys_update(&k4(4), &val(9), 0).unwrap();
        }
        let mut keys = vec![];
        let mut prev: Option<[u8; 4]> = None;
        let mut n = [0u8; 4];
        while m
            .sys_get_next_key(prev.as_ref().map(|k| &k[..]), &mut n)
            .is_ok()
        {
            keys.push(u32::from_ne_bytes(n));
            prev = Some(n);
        }
        keys.sort();
        assert_eq!(keys.len(), 4, "{t}");
        m.sys_get_next_key(Some(&k4(1000)), &mut n).unwrap();
        let k = u32::from_ne_bytes(n);
        m.sys_lookup_and_delete(&k4(k), &mut out, 0).unwrap();
        assert_eq!(m.sys_lookup(&k4(k), &mut out, 0), Err(MapError::NoEnt));
        assert_eq!(
            m.sys_lookup_and_delete(&k4(k), &mut out, 0),
            Err(MapError::NoEnt)
        );
        assert_eq!(
            m.sys_lookup_and_delete(&k4(k), &mut out, 8),
            Err(MapError::Inval)
        );
    }
    assert_eq!(
        create(&attr(map_type::HASH, 0, 4, 1, 0)).err(),
        Some(MapError::Inval)
    );
    assert_eq!(
        create(&attr(map_type::HASH, 4, 1 << 22, 1, 0)).err(),
        Some(MapError::TooBig)
    );
    assert_eq!(
        create(&attr(
            map_type::LRU_HASH,
            4,
            4,
            1,
            map_flags::BPF_F_NO_PREALLOC
        ))
        .err(),
        Some(MapError::NotSupp)
    );
    assert_eq!(
        create(&attr(
            map_type::HASH,
            4,
            4,
            1,
            map_flags::BPF_F_NO_COMMON_LRU
        ))
        .err(),
        Some(MapError::Inval)
    );
    assert_eq!(
        create(&attr(map_type::HASH, 4, 4, u32::MAX, 0)).err(),
        Some(MapError::TooBig)
    );
}

#[test]
fn hash_prog_ops_and_lru_reference() {
    let m = create(&attr(map_type::LRU_HASH, 4, 8, 64, 0)).unwrap();
    let mut ctx = TestCtx::new();
    for i in 0..64 {
        assert_eq!(
            m.prog_update(&mut ctx, &k4(i), &(i as u64).to_ne_bytes(), 0),
            0
        );
    }
    // Key 7 is used by the program all the time: it must survive eviction.
    for i in 64..1000 {
        assert_ne!(m.prog_lookup(&mut ctx, &k4(7)), 0, "hot key evicted at {i}");
        assert_eq!(
            m.prog_update(&mut ctx, &k4(i), &(i as u64).to_ne_bytes(), 0),
            0
        );
        assert!(m.len() <= 64);
    }
    let p = m.prog_lookup(&mut ctx, &k4(7));
    assert_eq!(ctx.get(p, 8), 7u64.to_ne_bytes());
    assert_eq!(m.prog_delete(&mut ctx, &k4(7)), 0);
    // The pointer stays readable for the rest of the run (epoch guard held).
    assert_eq!(ctx.get(p, 8), 7u64.to_ne_bytes());
    assert_eq!(m.prog_delete(&mut ctx, &k4(7)), -(libc::ENOENT as i64));
}

#[test]
fn hash_batches() {
    let m = create(&attr(map_type::HASH, 4, 4, 100, 0)).unwrap();
    let keys: Vec<u8> = (0..50u32).flat_map(|i| i.to_ne_bytes()).collect();
    let vals: Vec<u8> = (0..50u32).flat_map(|i| (i * 10).to_ne_bytes()).collect();
    let r = batch::update(
        &*m,
        &BatchReq {
            count: 50,
            keys: &keys,
            values: &vals,
            ..Default::default()
        },
    );
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.count, Some(50));
    let mut got = std::collections::BTreeMap::new();
    let mut token: Option<Vec<u8>> = None;
    loop {
        let r = batch::lookup(
            &*m,
            &BatchReq {
                in_batch: token.as_deref(),
                count: 16,
                ..Default::default()
            },
            false,
        );
        let n = r.count.unwrap() as usize;
        for i in 0..n {
            let k = u32::from_ne_bytes(r.keys[i * 4..i * 4 + 4].try_into().unwrap());
            let v = u32::from_ne_bytes(r.values[i * 4..i * 4 + 4].try_into().unwrap());
            got.insert(k, v);
        }
        token = r.out_batch.clone();
        match r.result {
            Ok(()) => continue,
            Err(MapError::NoEnt) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|(k, v)| *v == k * 10));
    let r = batch::lookup(
        &*m,
        &BatchReq {
            count: 1000,
            ..Default::default()
        },
        true,
    );
    assert_eq!(r.result, Err(MapError::NoEnt));
    assert_eq!(r.count, Some(50));
    assert_eq!(m.len(), 0);
    let r = batch::delete(
        &*m,
        &BatchReq {
            count: 2,
            keys: &keys,
            ..Default::default()
        },
    );
    assert_eq!(r.result, Err(MapError::NoEnt));
    assert_eq!(r.count, Some(0));
    // Arrays: generic lookup batch, no delete batch.
    let a = create(&attr(map_type::ARRAY, 4, 4, 5, 0)).unwrap();
    let r = batch::lookup(
        &*a,
        &BatchReq {
            count: 3,
            ..Default::default()
        },
        false,
    );
    assert_eq!((r.result, r.count), (Ok(()), Some(3)));
    assert_eq!(r.out_batch, Some(k4(2).to_vec()));
    let r = batch::lookup(
        &*a,
        &BatchReq {
            in_batch: Some(&k4(2)),
            count: 3,
            ..Default::default()
        },
        false,
    );
    assert_eq!((r.result, r.count), (Err(MapError::NoEnt), Some(2)));
    assert_eq!(
        batch::delete(
            &*a,
            &BatchReq {
                count: 1,
                keys: &keys,
                ..Default::default()
            }
        )
        .result,
        Err(MapError::NotSupp)
    );
}

#[test]
fn spin_lock_values() {
    let opts = CreateOpts {
        spin_lock_off: Some(0),
        ..Default::default()
    };
    let m = create_with(&attr(map_type::HASH, 4, 16, 4, 0), opts.clone()).unwrap();
    let mut v = [1u8; 16];
    m.sys_update(&k4(1), &v, BPF_F_LOCK).unwrap();
    m.sys_lookup(&k4(1), &mut v, BPF_F_LOCK).unwrap();
    assert_eq!(&v[..4], &[0; 4]);
    assert_eq!(&v[4..], &[1; 12]);
    assert_eq!(m.freeze(), Err(MapError::NotSupp));
    assert_eq!(
        create_with(&attr(map_type::PERCPU_HASH, 4, 16, 4, 0), opts).err(),
        Some(MapError::OpNotSupp)
    );
}

#[test]
fn unsupported_types_fail() {
    for t in [0, map_type::XSKMAP, 15, 18, 200] {
        assert_eq!(
            create(&attr(t, 4, 4, 1, 0)).err(),
            Some(MapError::Inval),
            "type {t}"
        );
    }
}

#[test]
fn queue_stack() {
    let q = create(&attr(map_type::QUEUE, 0, 4, 2, 0)).unwrap();
    let s = create(&attr(map_type::STACK, 0, 4, 2, 0)).unwrap();
    for m in [&q, &s] {
        m.sys_update(&[], &k4(1), 0).unwrap();
        m.sys_update(&[], &k4(2), 0).unwrap();
        assert_eq!(m.sys_update(&[], &k4(3), 0), Err(MapError::TooBig));
        assert_eq!(m.sys_update(&[], &k4(3), BPF_NOEXIST), Err(MapError::Inval));
        m.sys_update(&[], &k4(3), BPF_EXIST).unwrap();
    }
    let mut v = [0u8; 4];
    q.sys_lookup_and_delete(&[], &mut v, 0).unwrap();
    assert_eq!(v, k4(2));
    s.sys_lookup(&[], &mut v, 0).unwrap();
    assert_eq!(v, k4(3));
    let mut ctx = TestCtx::new();
    assert_eq!(s.prog_pop(&mut ctx, &mut v, true), 0);
    assert_eq!(v, k4(3));
    assert_eq!(s.prog_pop(&mut ctx, &mut v, true), 0);
    assert_eq!(s.prog_pop(&mut ctx, &mut v, true), -(libc::ENOENT as i64));
}

#[test]
fn devmap_and_prog_array() {
    let d = create(&attr(map_type::DEVMAP, 4, 8, 4, 0)).unwrap();
    assert_ne!(d.attr().map_flags & map_flags::BPF_F_RDONLY_PROG, 0);
    let mut val = [0u8; 8];
    val[..4].copy_from_slice(&k4(3));
    d.sys_update(&k4(1), &val, 0).unwrap();
    assert_eq!(
        d.sys_update(&k4(1), &val, BPF_NOEXIST),
        Err(MapError::Exist)
    );
    assert_eq!(d.sys_update(&k4(9), &val, 0), Err(MapError::TooBig));
    let mut out = [0u8; 8];
    d.sys_lookup(&k4(1), &mut out, 0).unwrap();
    assert_eq!(out, val);
    assert_eq!(d.sys_lookup(&k4(2), &mut out, 0), Err(MapError::NoEnt));
    d.sys_delete(&k4(2)).unwrap();
    assert_eq!(d.sys_delete(&k4(9)), Err(MapError::Inval));
    let dh = create(&attr(map_type::DEVMAP_HASH, 4, 4, 1, 0)).unwrap();
    dh.sys_update(&k4(100), &k4(3), 0).unwrap();
    assert_eq!(dh.sys_update(&k4(101), &k4(3), 0), Err(MapError::TooBig));
    assert_eq!(dh.sys_update(&k4(100), &k4(0), 0), Err(MapError::Inval));
    assert_eq!(dh.sys_delete(&k4(5)), Err(MapError::NoEnt));
    let pa = create(&attr(map_type::PROG_ARRAY, 4, 4, 2, 0)).unwrap();
    let pat = pa.as_any().downcast_ref::<prog_array::ProgArray>().unwrap();
    let prog = || Arc::new(test_prog());
    pat.set(1, 42, prog(), 0).unwrap();
    assert_eq!(pat.set(2, 42, prog(), 0), Err(MapError::TooBig));
    assert_eq!(pat.set(1, 42, prog(), 1), Err(MapError::Inval));
    let mut v = [0u8; 4];
    pa.sys_lookup(&k4(1), &mut v, 0).unwrap();
    assert_eq!(v, k4(42));
    assert_eq!(pa.sys_lookup(&k4(0), &mut v, 0), Err(MapError::NoEnt));
    pa.sys_delete(&k4(1)).unwrap();
    assert_eq!(pa.sys_delete(&k4(1)), Err(MapError::NoEnt));
    assert_eq!(
        create(&attr(map_type::PROG_ARRAY, 4, 8, 2, 0)).err(),
        Some(MapError::Inval)
    );
}

#[test]
fn map_in_map() {
    let inner = create(&attr(map_type::ARRAY, 4, 4, 2, 0)).unwrap();
    let other = create(&attr(map_type::ARRAY, 4, 4, 3, 0)).unwrap();
    assert_eq!(
        create(&attr(map_type::ARRAY_OF_MAPS, 4, 4, 2, 0)).err(),
        Some(MapError::BadFd)
    );
    let opts = CreateOpts {
        inner_map: Some(inner.clone()),
        ..Default::default()
    };
    let aom = create_with(&attr(map_type::ARRAY_OF_MAPS, 4, 4, 2, 0), opts.clone()).unwrap();
    let t = aom
        .as_any()
        .downcast_ref::<map_in_map::MapOfMaps>()
        .unwrap();
    t.set(&k4(0), 7, inner.clone(), 0).unwrap();
    assert_eq!(t.set(&k4(1), 8, other.clone(), 0), Err(MapError::Inval));
    assert_eq!(t.set(&k4(2), 8, inner.clone(), 0), Err(MapError::TooBig));
    let mut v = [0u8; 4];
    aom.sys_lookup(&k4(0), &mut v, 0).unwrap();
    assert_eq!(v, k4(7));
    let mut ctx = TestCtx::new();
    let h = aom.prog_lookup(&mut ctx, &k4(0));
    assert_eq!(h, map_handle(&inner));
    assert!(ctx.map(h).is_some());
    assert_eq!(aom.prog_lookup(&mut ctx, &k4(1)), 0);
    let hom = create_with(&attr(map_type::HASH_OF_MAPS, 8, 4, 2, 0), opts).unwrap();
    let ht = hom
        .as_any()
        .downcast_ref::<map_in_map::MapOfMaps>()
        .unwrap();
    ht.set(&[1; 8], 1, inner.clone(), BPF_NOEXIST).unwrap();
    assert_eq!(
        ht.set(&[1; 8], 1, inner.clone(), BPF_NOEXIST),
        Err(MapError::Exist)
    );
    assert_eq!(
        ht.set(&[2; 8], 1, inner.clone(), BPF_EXIST),
        Err(MapError::NoEnt)
    );
    hom.sys_delete(&[1; 8]).unwrap();
    assert_eq!(hom.sys_delete(&[1; 8]), Err(MapError::NoEnt));
}

/// Programs on several threads increment counters (atomically, as `lock xadd`) and
/// insert/delete keys while another thread updates, deletes and iterates from the
/// syscall side. Invariants: no lost atomic increments, values never torn (each
/// value is 4 copies of one u64), memory bounded by max_entries.
#[test]
fn concurrent_stress() {
    const WORKERS: usize = 3;
    const ITERS: u64 = 20_000;
    let arr = create(&attr(map_type::ARRAY, 4, 8, 1, 0)).unwrap();
    let h = create(&attr(map_type::HASH, 4, 32, 64, 0)).unwrap();
    let lru = create(&attr(map_type::LRU_HASH, 4, 32, 32, 0)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctl = {
        let (h, lru, stop) = (h.clone(), lru.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            let mut out = [0u8; 32];
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = k4((i % 100) as u32);
                let v: Vec<u8> = std::iter::repeat_n(i.to_ne_bytes(), 4).flatten().collect();
                for m in [&h, &lru] {
                    let _ = m.sys_update(&k, &v, 0);
                    if i.is_multiple_of(3) {
                        let _ = m.sys_delete(&k4(((i * 7) % 100) as u32));
                    }
                    if m.sys_lookup(&k, &mut out, 0).is_ok() {
                        let w = &out[..8];
                        assert!(
                            out.chunks(8).all(|c| c == w),
                            "torn value from syscall lookup"
                        );
                    }
                    let mut n = [0u8; 4];
                    let mut prev: Option<[u8; 4]> = None;
                    let mut steps = 0;
                    while m
                        .sys_get_next_key(prev.as_ref().map(|p| &p[..]), &mut n)
                        .is_ok()
                        && steps < 200
                    {
                        prev = Some(n);
                        steps += 1;
                    }
                    assert!(m.len() <= m.attr().max_entries as usize);
                }
            }
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (arr, h, lru) = (arr.clone(), h.clone(), lru.clone());
            std::thread::spawn(move || {
                for i in 0..ITERS {
                    let mut ctx = TestCtx::new();
                    ctx.cpu = w as u32;
                    let p = arr.prog_lookup(&mut ctx, &k4(0));
                    let b = ctx.read(p, 8).unwrap();
                    // SAFETY: `b` is an 8-aligned map value of 8 bytes, live for the run.
                    let a = unsafe { &*(b.as_ptr() as *const AtomicU64) };
                    a.fetch_add(1, Ordering::Relaxed);
                    let k = k4(((i * 13 + w as u64) % 100) as u32);
                    let v: Vec<u8> = std::iter::repeat_n((i + 1000 * w as u64).to_ne_bytes(), 4)
                        .flatten()
                        .collect();
                    for m in [&h, &lru] {
                        let _ = m.prog_update(&mut ctx, &k, &v, 0);
                        // Programs read values without synchronisation (as in the
                        // kernel): only check that the pointer stays readable.
                        let p = m.prog_lookup(&mut ctx, &k);
                        if p != 0 {
                            let _ = ctx.get(p, 32);
                        }
                        if i % 5 == 0 {
                            let _ = m.prog_delete(&mut ctx, &k);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    ctl.join().unwrap();
    let mut v = [0u8; 8];
    arr.sys_lookup(&k4(0), &mut v, 0).unwrap();
    assert_eq!(u64::from_ne_bytes(v), WORKERS as u64 * ITERS);
    assert!(h.len() <= 64 && lru.len() <= 32);
}
