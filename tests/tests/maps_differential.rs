//! Kernel-differential test of bpftime's maps: the same seeded random sequences of
//! userspace map operations run against a real kernel map (raw bpf() syscalls, the
//! self-contained wrapper below shares no code with bpftime) and against bpftime's
//! map; return values, errnos, returned bytes and final contents must agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use bpftime_tests::privilege::{self, Need};
use bpftime_vm::maps::batch::{self, BatchReq};
use bpftime_vm::maps::{self, map_type as mt, Map, MapAttr};

// ---------------------------------------------------------------- kernel side

use bpftime_tests::sysbpf::{self as kernel, bpf, ptr, Attr, Fd};

fn kcreate(a: &MapAttr, inner_fd: u32) -> Result<Fd, i32> {
    let mut at = Attr::new();
    at.u32(0, a.map_type)
        .u32(4, a.key_size)
        .u32(8, a.value_size)
        .u32(12, a.max_entries)
        .u32(16, a.map_flags)
        .u32(20, inner_fd)
        .u32(24, a.numa_node);
    bpf(kernel::cmd::MAP_CREATE, &mut at).map(|fd| Fd(fd as i32))
}

/// One implementation under test: the kernel (by fd) or bpftime's map.
trait Side {
    fn lookup(&self, key: Option<&[u8]>, val: &mut [u8], flags: u64) -> Result<(), i32>;
    fn update(&self, key: Option<&[u8]>, val: &[u8], flags: u64) -> Result<(), i32>;
    fn delete(&self, key: Option<&[u8]>) -> Result<(), i32>;
    fn next(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), i32>;
    fn lookup_delete(&self, key: Option<&[u8]>, val: &mut [u8], flags: u64) -> Result<(), i32>;
    fn freeze(&self) -> Result<(), i32>;
    /// (result, count, out_batch, keys, values)
    fn lookup_batch(
        &self,
        inb: Option<&[u8]>,
        count: u32,
        del: bool,
        ef: u64,
        tok: usize,
    ) -> BatchRes;
    fn update_batch(&self, keys: &[u8], vals: &[u8], count: u32, ef: u64)
        -> (Result<(), i32>, u32);
    fn delete_batch(&self, keys: &[u8], count: u32, ef: u64) -> (Result<(), i32>, u32);
}

type BatchRes = (Result<(), i32>, u32, Vec<u8>, Vec<u8>, Vec<u8>);

struct K {
    fd: Fd,
    ks: usize,
    vs: usize,
}

fn kelem(cmd: u32, fd: i32, key: Option<&[u8]>, val: u64, flags: u64) -> Result<(), i32> {
    let mut a = Attr::new();
    a.u32(0, fd as u32)
        .u64(8, ptr(key))
        .u64(16, val)
        .u64(24, flags);
    bpf(cmd, &mut a).map(|_| ())
}

impl Side for K {
    fn lookup(&self, key: Option<&[u8]>, val: &mut [u8], flags: u64) -> Result<(), i32> {
        kelem(
            kernel::cmd::LOOKUP,
            self.fd.0,
            key,
            val.as_mut_ptr() as u64,
            flags,
        )
    }
    fn update(&self, key: Option<&[u8]>, val: &[u8], flags: u64) -> Result<(), i32> {
        kelem(
            kernel::cmd::UPDATE,
            self.fd.0,
            key,
            val.as_ptr() as u64,
            flags,
        )
    }
    fn delete(&self, key: Option<&[u8]>) -> Result<(), i32> {
        kelem(kernel::cmd::DELETE, self.fd.0, key, 0, 0)
    }
    fn next(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), i32> {
        kelem(
            kernel::cmd::NEXT_KEY,
            self.fd.0,
            key,
            next.as_mut_ptr() as u64,
            0,
        )
    }
    fn lookup_delete(&self, key: Option<&[u8]>, val: &mut [u8], flags: u64) -> Result<(), i32> {
        kelem(
            kernel::cmd::LOOKUP_AND_DELETE,
            self.fd.0,
            key,
            val.as_mut_ptr() as u64,
            flags,
        )
    }
    fn freeze(&self) -> Result<(), i32> {
        kelem(kernel::cmd::FREEZE, self.fd.0, None, 0, 0)
    }
    fn lookup_batch(
        &self,
        inb: Option<&[u8]>,
        count: u32,
        del: bool,
        ef: u64,
        tok: usize,
    ) -> BatchRes {
        let mut out = vec![0u8; tok.max(4)];
        let mut keys = vec![0u8; self.ks * count as usize + 1];
        let mut vals = vec![0u8; self.vs * count as usize + 1];
        let mut a = Attr::new();
        a.u64(0, ptr(inb))
            .u64(8, out.as_mut_ptr() as u64)
            .u64(16, keys.as_mut_ptr() as u64)
            .u64(24, vals.as_mut_ptr() as u64)
            .u32(32, count)
            .u32(36, self.fd.0 as u32)
            .u64(40, ef);
        let cmd = if del {
            kernel::cmd::LOOKUP_AND_DELETE_BATCH
        } else {
            kernel::cmd::LOOKUP_BATCH
        };
        let r = bpf(cmd, &mut a).map(|_| ());
        let n = a.get_u32(32);
        keys.truncate(self.ks * n as usize);
        vals.truncate(self.vs * n as usize);
        out.truncate(tok);
        if !matches!(r, Ok(()) | Err(libc::ENOENT)) {
            // Nothing is copied out on other errors.
            keys.clear();
            vals.clear();
        }
        (r, n, out, keys, vals)
    }
    fn update_batch(
        &self,
        keys: &[u8],
        vals: &[u8],
        count: u32,
        ef: u64,
    ) -> (Result<(), i32>, u32) {
        let mut a = Attr::new();
        a.u64(16, keys.as_ptr() as u64)
            .u64(24, vals.as_ptr() as u64)
            .u32(32, count)
            .u32(36, self.fd.0 as u32)
            .u64(40, ef);
        let r = bpf(kernel::cmd::UPDATE_BATCH, &mut a).map(|_| ());
        (r, a.get_u32(32))
    }
    fn delete_batch(&self, keys: &[u8], count: u32, ef: u64) -> (Result<(), i32>, u32) {
        let mut a = Attr::new();
        a.u64(16, keys.as_ptr() as u64)
            .u32(32, count)
            .u32(36, self.fd.0 as u32)
            .u64(40, ef);
        let r = bpf(kernel::cmd::DELETE_BATCH, &mut a).map(|_| ());
        (r, a.get_u32(32))
    }
}

struct O(Arc<dyn Map>);

fn e<T>(r: Result<T, maps::MapError>) -> Result<T, i32> {
    r.map_err(|e| e.errno())
}

/// bpftime's side, with the syscall layer's rule for maps without keys
/// (`__bpf_copy_key`: a non-NULL key pointer for key_size 0 is EINVAL).
impl Side for O {
    fn lookup(&self, key: Option<&[u8]>, val: &mut [u8], flags: u64) -> Result<(), i32> {
        if self.0.attr().key_size == 0 && key.is_some() {
            return Err(libc::EINVAL);
        }
        e(self.0.sys_lookup(key.unwrap_or(&[]), val, flags))
    }
    fn update(&self, key: Option<&[u8]>, val: &[u8], flags: u64) -> Result<(), i32> {
        if self.0.attr().key_size == 0 && key.is_some() {
            return Err(libc::EINVAL);
        }
        e(self.0.sys_update(key.unwrap_or(&[]), val, flags))
    }
    fn delete(&self, key: Option<&[u8]>) -> Result<(), i32> {
        if self.0.attr().key_size == 0 && key.is_some() {
            return Err(libc::EINVAL);
        }
        e(self.0.sys_delete(key.unwrap_or(&[])))
    }
    fn next(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), i32> {
        if self.0.attr().key_size == 0 && key.is_some() {
            return Err(libc::EINVAL);
        }
        e(self.0.sys_get_next_key(key, next))
    }
    fn lookup_delete(&self, key: Option<&[u8]>, val: &mut [u8], flags: u64) -> Result<(), i32> {
        if self.0.attr().key_size == 0 && key.is_some() {
            return Err(libc::EINVAL);
        }
        e(self.0.sys_lookup_and_delete(key.unwrap_or(&[]), val, flags))
    }
    fn freeze(&self) -> Result<(), i32> {
        e(self.0.freeze())
    }
    fn lookup_batch(
        &self,
        inb: Option<&[u8]>,
        count: u32,
        del: bool,
        ef: u64,
        tok: usize,
    ) -> BatchRes {
        let r = batch::lookup(
            &*self.0,
            &BatchReq {
                in_batch: inb,
                count,
                elem_flags: ef,
                ..Default::default()
            },
            del,
        );
        let mut ob = r.out_batch.unwrap_or_else(|| vec![0; tok]);
        ob.resize(tok, 0);
        let (mut keys, mut vals) = (r.keys, r.values);
        if !matches!(r.result, Ok(()) | Err(maps::MapError::NoEnt)) {
            keys.clear();
            vals.clear();
        }
        (e(r.result), r.count.unwrap_or(count), ob, keys, vals)
    }
    fn update_batch(
        &self,
        keys: &[u8],
        vals: &[u8],
        count: u32,
        ef: u64,
    ) -> (Result<(), i32>, u32) {
        let r = batch::update(
            &*self.0,
            &BatchReq {
                keys,
                values: vals,
                count,
                elem_flags: ef,
                ..Default::default()
            },
        );
        (e(r.result), r.count.unwrap_or(count))
    }
    fn delete_batch(&self, keys: &[u8], count: u32, ef: u64) -> (Result<(), i32>, u32) {
        let r = batch::delete(
            &*self.0,
            &BatchReq {
                keys,
                count,
                elem_flags: ef,
                ..Default::default()
            },
        );
        (e(r.result), r.count.unwrap_or(count))
    }
}

// ---------------------------------------------------------------- driver

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

fn possible_cpus() -> usize {
    maps::possible_cpus()
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// get_next_key order is defined (arrays): compare exactly.
    Exact,
    /// Hash order: compare only errnos when the result does not depend on order.
    Any,
}

struct Case {
    name: &'static str,
    attr: MapAttr,
    /// Userspace value size.
    uvs: usize,
    order: Order,
    key: fn(&mut Rng) -> Vec<u8>,
    /// Token size of lookup batches (key size for generic, 4 for hash).
    tok: usize,
    batches: bool,
}

fn key4_small(r: &mut Rng) -> Vec<u8> {
    (r.below(24) as u32).to_ne_bytes().to_vec()
}
fn key8_small(r: &mut Rng) -> Vec<u8> {
    let mut k = (r.below(40)).to_ne_bytes().to_vec();
    k[7] = 0x5a;
    k
}
fn key_lpm(r: &mut Rng) -> Vec<u8> {
    let plen = r.pick(&[0u32, 8, 12, 16, 24, 32, 32, 33]);
    let mut k = plen.to_ne_bytes().to_vec();
    k.extend_from_slice(&[
        10,
        r.pick(&[0u8, 1, 2]),
        r.pick(&[0u8, 7, 128]),
        r.below(3) as u8,
    ]);
    k
}

/// The full contents, as a sorted map (iterating with get_next_key from NULL).
fn contents(s: &dyn Side, ks: usize, vs: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut prev: Option<Vec<u8>> = None;
    let mut n = vec![0u8; ks];
    let mut guard = 0;
    while s.next(prev.as_deref(), &mut n).is_ok() && guard < 100_000 {
        guard += 1;
        let mut v = vec![0u8; vs];
        if s.lookup(Some(&n), &mut v, 0).is_ok() {
            out.insert(n.clone(), v);
        }
        prev = Some(n.clone());
    }
    out
}

fn run_case(c: &Case, seed: u64, ops: usize) {
    let k = match kcreate(&c.attr, 0) {
        Ok(fd) => K {
            fd,
            ks: c.attr.key_size as usize,
            vs: c.uvs,
        },
        Err(e) => panic!("{}: kernel refused the map: errno {e}", c.name),
    };
    let o =
        O(maps::create(&c.attr).unwrap_or_else(|e| panic!("{}: bpftime refused: {e:?}", c.name)));
    assert_eq!(
        o.0.sys_value_size(),
        c.uvs,
        "{}: userspace value size",
        c.name
    );
    let sides: [&dyn Side; 2] = [&k, &o];
    let mut r = Rng(seed);
    let ks = c.attr.key_size as usize;
    let vs = c.uvs;
    let nokey = ks == 0;
    let mut log = Vec::new();
    for step in 0..ops {
        let key = (c.key)(&mut r);
        let kopt = if nokey { None } else { Some(&key[..]) };
        let mut val = vec![0u8; vs];
        for b in val.iter_mut() {
            *b = r.next() as u8;
        }
        let flags = r.pick(&[0u64, 0, 0, 1, 1, 2, 2, 3, 4, 8]);
        let op = r.below(if c.batches { 10 } else { 7 });
        let what = format!("step {step} op {op} key {key:?} flags {flags}");
        log.push(what.clone());
        match op {
            0 | 1 => {
                let res: Vec<_> = sides.iter().map(|s| s.update(kopt, &val, flags)).collect();
                assert_eq!(res[0], res[1], "{}: update, {what}", c.name);
            }
            2 => {
                let lf = r.pick(&[0u64, 0, 0, 4, 1]);
                let mut outs = vec![vec![0u8; vs]; 2];
                let res: Vec<_> = sides
                    .iter()
                    .zip(outs.iter_mut())
                    .map(|(s, v)| s.lookup(kopt, v, lf))
                    .collect();
                assert_eq!(res[0], res[1], "{}: lookup flags {lf}, {what}", c.name);
                if res[0].is_ok() {
                    assert_eq!(outs[0], outs[1], "{}: lookup value, {what}", c.name);
                }
            }
            3 => {
                let res: Vec<_> = sides.iter().map(|s| s.delete(kopt)).collect();
                assert_eq!(res[0], res[1], "{}: delete, {what}", c.name);
            }
            4 => {
                let none = r.below(4) == 0;
                let kk = if none || nokey { None } else { Some(&key[..]) };
                // With hash order, the answer for a present key depends on order.
                let present = kk.is_some() && {
                    let mut v = vec![0u8; vs];
                    k.lookup(kk, &mut v, 0).is_ok()
                };
                let mut outs = vec![vec![0u8; ks.max(1)]; 2];
                let res: Vec<_> = sides
                    .iter()
                    .zip(outs.iter_mut())
                    .map(|(s, n)| s.next(kk, &mut n[..ks]))
                    .collect();
                if c.order == Order::Exact || !present {
                    assert_eq!(res[0], res[1], "{}: get_next_key {kk:?}, {what}", c.name);
                    if c.order == Order::Exact && res[0].is_ok() {
                        assert_eq!(outs[0], outs[1], "{}: next key, {what}", c.name);
                    }
                }
            }
            5 => {
                let lf = r.pick(&[0u64, 0, 4, 8]);
                let mut outs = vec![vec![0u8; vs]; 2];
                let res: Vec<_> = sides
                    .iter()
                    .zip(outs.iter_mut())
                    .map(|(s, v)| s.lookup_delete(kopt, v, lf))
                    .collect();
                assert_eq!(
                    res[0], res[1],
                    "{}: lookup_and_delete flags {lf}, {what}",
                    c.name
                );
                if res[0].is_ok() {
                    assert_eq!(
                        outs[0], outs[1],
                        "{}: lookup_and_delete value, {what}",
                        c.name
                    );
                }
            }
            6 => {
                // Whole-map comparison.
                if !nokey {
                    assert_eq!(
                        contents(&k, ks, vs),
                        contents(&o, ks, vs),
                        "{}: contents, {what}",
                        c.name
                    );
                }
            }
            7 => {
                let n = 1 + r.below(4) as u32;
                let keys: Vec<u8> = (0..n).flat_map(|_| (c.key)(&mut r)).collect();
                let vals: Vec<u8> = (0..n as usize * vs).map(|_| r.next() as u8).collect();
                let ef = r.pick(&[0u64, 0, 1, 2, 4]);
                let res: Vec<_> = sides
                    .iter()
                    .map(|s| s.update_batch(&keys, &vals, n, ef))
                    .collect();
                assert_eq!(
                    res[0], res[1],
                    "{}: update_batch n {n} ef {ef}, {what}",
                    c.name
                );
            }
            8 => {
                let n = 1 + r.below(4) as u32;
                let keys: Vec<u8> = (0..n).flat_map(|_| (c.key)(&mut r)).collect();
                let ef = r.pick(&[0u64, 0, 4, 1]);
                let res: Vec<_> = sides.iter().map(|s| s.delete_batch(&keys, n, ef)).collect();
                assert_eq!(
                    res[0], res[1],
                    "{}: delete_batch n {n} ef {ef}, {what}",
                    c.name
                );
            }
            _ => {
                let del = r.below(3) == 0;
                let ef = r.pick(&[0u64, 0, 0, 4, 1]);
                if c.order == Order::Exact {
                    let count = r.below(6) as u32;
                    let inb = if r.below(2) == 0 {
                        None
                    } else {
                        Some(key.clone())
                    };
                    let res: Vec<_> = sides
                        .iter()
                        .map(|s| s.lookup_batch(inb.as_deref(), count, del, ef, c.tok))
                        .collect();
                    assert_eq!(
                        res[0], res[1],
                        "{}: lookup_batch del {del} count {count} in {inb:?}, {what}",
                        c.name
                    );
                } else {
                    // Hash batches walk buckets: with room for everything, the result is
                    // the whole map and ENOENT; compare as sets.
                    let count = c.attr.max_entries.max(64);
                    let res: Vec<_> = sides
                        .iter()
                        .map(|s| s.lookup_batch(None, count, del, ef, c.tok))
                        .collect();
                    assert_eq!(
                        res[0].0, res[1].0,
                        "{}: lookup_batch del {del}, {what}",
                        c.name
                    );
                    assert_eq!(res[0].1, res[1].1, "{}: lookup_batch count, {what}", c.name);
                    let set = |x: &BatchRes| -> BTreeMap<Vec<u8>, Vec<u8>> {
                        x.3.chunks(ks)
                            .map(|k| k.to_vec())
                            .zip(x.4.chunks(vs).map(|v| v.to_vec()))
                            .collect()
                    };
                    assert_eq!(
                        set(&res[0]),
                        set(&res[1]),
                        "{}: lookup_batch contents, {what}",
                        c.name
                    );
                }
            }
        }
    }
    if !nokey {
        assert_eq!(
            contents(&k, ks, vs),
            contents(&o, ks, vs),
            "{}: final contents",
            c.name
        );
    }
    if !c.batches {
        // Types without batch support answer alike.
        let key = (c.key)(&mut r);
        let val = vec![0u8; vs];
        let res: Vec<_> = sides
            .iter()
            .map(|s| s.lookup_batch(None, 4, false, 0, c.tok).0)
            .collect();
        assert_eq!(res[0], res[1], "{}: lookup_batch", c.name);
        let res: Vec<_> = sides
            .iter()
            .map(|s| s.lookup_batch(None, 4, true, 0, c.tok).0)
            .collect();
        assert_eq!(res[0], res[1], "{}: lookup_and_delete_batch", c.name);
        let res: Vec<_> = sides
            .iter()
            .map(|s| s.update_batch(&key, &val, 1, 0).0)
            .collect();
        assert_eq!(res[0], res[1], "{}: update_batch", c.name);
        let res: Vec<_> = sides.iter().map(|s| s.delete_batch(&key, 1, 0).0).collect();
        assert_eq!(res[0], res[1], "{}: delete_batch", c.name);
    }
    // Freeze: the second freeze and later updates fail alike.
    let res: Vec<_> = sides.iter().map(|s| s.freeze()).collect();
    assert_eq!(res[0], res[1], "{}: freeze", c.name);
    let res: Vec<_> = sides.iter().map(|s| s.freeze()).collect();
    assert_eq!(res[0], res[1], "{}: freeze twice", c.name);
    let key = (c.key)(&mut r);
    let kopt = if nokey { None } else { Some(&key[..]) };
    let val = vec![1u8; vs];
    let res: Vec<_> = sides.iter().map(|s| s.update(kopt, &val, 0)).collect();
    assert_eq!(res[0], res[1], "{}: update after freeze", c.name);
    let res: Vec<_> = sides.iter().map(|s| s.delete(kopt)).collect();
    assert_eq!(res[0], res[1], "{}: delete after freeze", c.name);
}

fn a(t: u32, k: u32, v: u32, n: u32, f: u32) -> MapAttr {
    MapAttr {
        map_type: t,
        key_size: k,
        value_size: v,
        max_entries: n,
        map_flags: f,
        ..Default::default()
    }
}

#[test]
fn userspace_ops_match_the_kernel() {
    if !privilege::require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let pc = possible_cpus();
    let cases = [
        Case {
            name: "ARRAY",
            attr: a(mt::ARRAY, 4, 12, 16, 0),
            uvs: 12,
            order: Order::Exact,
            key: key4_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "ARRAY mmapable",
            attr: a(mt::ARRAY, 4, 8, 20, 1 << 10),
            uvs: 8,
            order: Order::Exact,
            key: key4_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "PERCPU_ARRAY",
            attr: a(mt::PERCPU_ARRAY, 4, 12, 16, 0),
            uvs: 16 * pc,
            order: Order::Exact,
            key: key4_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "HASH",
            attr: a(mt::HASH, 8, 12, 16, 0),
            uvs: 12,
            order: Order::Any,
            key: key8_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "HASH no-prealloc",
            attr: a(mt::HASH, 8, 4, 10, 1),
            uvs: 4,
            order: Order::Any,
            key: key8_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "PERCPU_HASH",
            attr: a(mt::PERCPU_HASH, 4, 4, 12, 0),
            uvs: 8 * pc,
            order: Order::Any,
            key: key4_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "LRU_HASH",
            attr: a(mt::LRU_HASH, 4, 16, 4096, 0),
            uvs: 16,
            order: Order::Any,
            key: key4_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "LRU_PERCPU_HASH",
            attr: a(mt::LRU_PERCPU_HASH, 4, 8, 4096, 0),
            uvs: 8 * pc,
            order: Order::Any,
            key: key4_small,
            tok: 4,
            batches: true,
        },
        Case {
            name: "LPM_TRIE",
            attr: a(mt::LPM_TRIE, 8, 4, 12, 1),
            uvs: 4,
            order: Order::Any,
            key: key_lpm,
            tok: 8,
            batches: false,
        },
        Case {
            name: "QUEUE",
            attr: a(mt::QUEUE, 0, 8, 6, 0),
            uvs: 8,
            order: Order::Exact,
            key: |_| vec![],
            tok: 0,
            batches: false,
        },
        Case {
            name: "STACK",
            attr: a(mt::STACK, 0, 8, 6, 0),
            uvs: 8,
            order: Order::Exact,
            key: |_| vec![],
            tok: 0,
            batches: false,
        },
    ];
    for c in &cases {
        for seed in [1u64, 0x9e3779b97f4a7c15, 12345] {
            run_case(c, seed, 1500);
        }
        eprintln!("{}: ok", c.name);
    }
}

#[test]
fn devmap_ops_match_the_kernel() {
    if !privilege::require(&[Need::Root, Need::Bpf]) {
        return;
    }
    // ifindex 1 (lo) exists in every namespace; bpftime's raw sys_update trusts the
    // ifindex (the supervisor validates it), so only valid or zero ifindexes here.
    for (name, t, vs) in [
        ("DEVMAP", mt::DEVMAP, 4u32),
        ("DEVMAP 8", mt::DEVMAP, 8),
        ("DEVMAP_HASH", mt::DEVMAP_HASH, 4),
    ] {
        let at = a(t, 4, vs, 8, 0);
        let k = K {
            fd: kcreate(&at, 0).unwrap(),
            ks: 4,
            vs: vs as usize,
        };
        let o = O(maps::create(&at).unwrap());
        let sides: [&dyn Side; 2] = [&k, &o];
        let mut r = Rng(77);
        for step in 0..1500 {
            let key = (r.below(12) as u32).to_ne_bytes();
            let mut val = vec![0u8; vs as usize];
            val[..4].copy_from_slice(&(r.pick(&[0u32, 1, 1]).to_ne_bytes()));
            let flags = r.pick(&[0u64, 1, 2, 3, 4]);
            match r.below(4) {
                0 | 1 => {
                    let res: Vec<_> = sides
                        .iter()
                        .map(|s| s.update(Some(&key), &val, flags))
                        .collect();
                    assert_eq!(
                        res[0], res[1],
                        "{name} step {step}: update {key:?} {val:?} {flags}"
                    );
                }
                2 => {
                    let mut outs = vec![vec![0u8; vs as usize]; 2];
                    let res: Vec<_> = sides
                        .iter()
                        .zip(outs.iter_mut())
                        .map(|(s, v)| s.lookup(Some(&key), v, 0))
                        .collect();
                    assert_eq!(res[0], res[1], "{name} step {step}: lookup");
                    if res[0].is_ok() {
                        assert_eq!(outs[0], outs[1], "{name} step {step}: lookup value");
                    }
                }
                _ => {
                    let res: Vec<_> = sides.iter().map(|s| s.delete(Some(&key))).collect();
                    assert_eq!(res[0], res[1], "{name} step {step}: delete {key:?}");
                }
            }
        }
        assert_eq!(
            contents(&k, 4, vs as usize),
            contents(&o, 4, vs as usize),
            "{name}: final contents"
        );
    }
}

#[test]
fn ringbuf_userspace_ops_match_the_kernel() {
    if !privilege::require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let at = a(mt::RINGBUF, 0, 0, 4096, 0);
    let k = K {
        fd: kcreate(&at, 0).unwrap(),
        ks: 0,
        vs: 0,
    };
    let o = O(maps::create(&at).unwrap());
    let sides: [&dyn Side; 2] = [&k, &o];
    let key = [0u8; 4];
    for kk in [None, Some(&key[..])] {
        let mut v = [0u8; 8];
        let r: Vec<_> = sides.iter().map(|s| s.lookup(kk, &mut v, 0)).collect();
        assert_eq!(r[0], r[1], "lookup key {kk:?}");
        let r: Vec<_> = sides.iter().map(|s| s.update(kk, &v, 0)).collect();
        assert_eq!(r[0], r[1], "update key {kk:?}");
        let r: Vec<_> = sides.iter().map(|s| s.delete(kk)).collect();
        assert_eq!(r[0], r[1], "delete key {kk:?}");
        let r: Vec<_> = sides.iter().map(|s| s.next(kk, &mut v)).collect();
        assert_eq!(r[0], r[1], "get_next_key key {kk:?}");
        let r: Vec<_> = sides
            .iter()
            .map(|s| s.lookup_delete(kk, &mut v, 0))
            .collect();
        assert_eq!(r[0], r[1], "lookup_and_delete key {kk:?}");
    }
    let r: Vec<_> = sides
        .iter()
        .map(|s| s.lookup_batch(None, 4, false, 0, 4).0)
        .collect();
    assert_eq!(r[0], r[1], "lookup_batch");
    let r: Vec<_> = sides.iter().map(|s| s.freeze()).collect();
    assert_eq!(r[0], r[1], "freeze");
}

#[test]
fn map_create_errnos_match_the_kernel() {
    if !privilege::require(&[Need::Root, Need::Bpf]) {
        return;
    }
    const NP: u32 = 1; // BPF_F_NO_PREALLOC
    let cases = [
        a(mt::ARRAY, 4, 4, 1, 0),
        a(mt::ARRAY, 8, 4, 1, 0),
        a(mt::ARRAY, 4, 0, 1, 0),
        a(mt::ARRAY, 4, 4, 0, 0),
        a(mt::ARRAY, 4, 4, 1, NP),
        a(mt::ARRAY, 4, 4, 1, 1 << 10),
        a(mt::ARRAY, 4, 4, 1, (1 << 3) | (1 << 4)),
        a(mt::ARRAY, 4, 4, 1, (1 << 7) | (1 << 8)),
        a(mt::ARRAY, 4, 4, 1, 1 << 7),
        a(mt::ARRAY, 4, 4, 1, 1 << 11),
        a(mt::ARRAY, 4, 4, 1, 1 << 12),
        a(mt::ARRAY, 4, 1 << 20, 1 << 30, 0),
        a(mt::ARRAY, 4, u32::MAX, 1, 0),
        a(mt::PERCPU_ARRAY, 4, 32768, 1, 0),
        a(mt::PERCPU_ARRAY, 4, 32769, 1, 0),
        a(mt::PERCPU_ARRAY, 4, 4, 1, 1 << 10),
        a(mt::HASH, 4, 4, 1, 0),
        a(mt::HASH, 0, 4, 1, 0),
        a(mt::HASH, 4, 0, 1, 0),
        a(mt::HASH, 4, 4, 0, 0),
        a(mt::HASH, 600, 4, 1, 0),
        a(mt::HASH, 4, (1 << 22) - 60, 1, 0),
        a(mt::HASH, 4, (1 << 22) - 40, 1, 0),
        a(mt::HASH, 4, 4, 1, 1 << 1),
        a(mt::HASH, 4, 4, 1, 1 << 10),
        a(mt::HASH, 4, 4, 1, 1 << 6),
        a(mt::HASH, 4, 4, u32::MAX, NP),
        a(mt::HASH, 4, 4, 1 << 29, NP),
        a(mt::PERCPU_HASH, 4, 32769, 1, 0),
        a(mt::LRU_HASH, 4, 4, 1, NP),
        a(mt::LRU_HASH, 4, 4, 5, 1 << 1),
        a(mt::LRU_PERCPU_HASH, 4, 4, 1, 1 << 1),
        a(mt::LPM_TRIE, 8, 4, 1, 0),
        a(mt::LPM_TRIE, 8, 4, 1, NP),
        a(mt::LPM_TRIE, 4, 4, 1, NP),
        a(mt::LPM_TRIE, 261, 4, 1, NP),
        a(mt::LPM_TRIE, 260, 4, 1, NP),
        a(mt::LPM_TRIE, 8, 0, 1, NP),
        a(mt::PROG_ARRAY, 4, 4, 1, 0),
        a(mt::PROG_ARRAY, 4, 8, 1, 0),
        a(mt::PROG_ARRAY, 4, 4, 1, 1 << 7),
        a(mt::DEVMAP, 4, 4, 1, 0),
        a(mt::DEVMAP, 4, 8, 1, 0),
        a(mt::DEVMAP, 4, 6, 1, 0),
        a(mt::DEVMAP, 4, 4, 1, NP),
        a(mt::DEVMAP_HASH, 4, 4, 1, 0),
        a(mt::DEVMAP_HASH, 8, 4, 1, 0),
        a(mt::QUEUE, 0, 4, 1, 0),
        a(mt::QUEUE, 4, 4, 1, 0),
        a(mt::QUEUE, 0, 0, 1, 0),
        a(mt::STACK, 0, 4, 0, 0),
        a(mt::RINGBUF, 0, 0, 4096, 0),
        a(mt::RINGBUF, 0, 0, 4096 * 3, 0),
        a(mt::RINGBUF, 0, 0, 1024, 0),
        a(mt::RINGBUF, 4, 0, 4096, 0),
        a(mt::RINGBUF, 0, 0, 4096, NP),
        a(0, 4, 4, 1, 0),
        a(200, 4, 4, 1, 0),
    ];
    let mut bad = vec![];
    for c in &cases {
        let kr = kcreate(c, 0).map(|_| ());
        let or = maps::create(c).map(|_| ()).map_err(|e| e.errno());
        if kr != or {
            bad.push(format!("{c:?}: kernel {kr:?} bpftime {or:?}"));
        }
    }
    assert!(bad.is_empty(), "create mismatches:\n{}", bad.join("\n"));
}
