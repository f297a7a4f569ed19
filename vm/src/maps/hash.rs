//! BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH (kernel/bpf/hashtab.c).
//!
//! One core for the four types: `roundup_pow_of_two(max_entries)` buckets, each a
//! singly linked list published with release stores and read lock-free under an
//! epoch guard (the RCU analogue); writers take the bucket's lock. A removed or
//! replaced element is reclaimed only after every run that could hold a pointer
//! into it has unpinned its guard. LRU types evict with a second-chance clock over
//! the buckets (programs' lookups set the element's reference bit), so they never
//! fill up.

use std::any::Any;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use super::array::PCPU_MIN_UNIT_SIZE;
use super::batch::{self, BatchOut, BatchReq};
use super::shmem::{Shmem, Slab};
use super::update_flags::*;
use super::{map_flags as mf, map_type, round8, Common, CreateOpts, Map, MapAttr, MapError};
use crate::mem::Region;
use crate::run::{Fault, HelperCtx};

const CREATE_FLAG_MASK: u32 = mf::BPF_F_NO_PREALLOC
    | mf::BPF_F_NO_COMMON_LRU
    | mf::BPF_F_NUMA_NODE
    | mf::ACCESS_MASK
    | mf::BPF_F_ZERO_SEED;

/// KMALLOC_MAX_SIZE on x86_64 (4 MiB) and sizeof(struct htab_elem).
const KMALLOC_MAX_SIZE: u64 = 1 << 22;
const HTAB_ELEM_SIZE: u64 = 48;
/// sizeof(struct bucket) in the kernel.
const KBUCKET_SIZE: u64 = 16;

struct Node {
    next: Atomic<Node>,
    hash: u64,
    referenced: AtomicBool,
    /// Sequence count of in-place value updates (odd while one is in progress), so
    /// that syscall readers never see a value half old, half new.
    seq: AtomicU32,
    key: Box<[u8]>,
    val: Shmem,
}

impl Node {
    /// Update the value in place (the caller holds the bucket lock: one writer).
    fn seq_write(&self, f: impl FnOnce(&Shmem)) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        f(&self.val);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Read the value consistently with respect to `seq_write`.
    fn seq_read(&self, mut f: impl FnMut(&Shmem)) {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 != 0 {
                std::hint::spin_loop();
                continue;
            }
            f(&self.val);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return;
            }
        }
    }
}

struct Bucket {
    head: Atomic<Node>,
    lock: Mutex<()>,
}

/// A hash map of one of the four hash types.
pub struct HashMap {
    c: Common,
    percpu: bool,
    lru: bool,
    ncpus: usize,
    stride: usize,
    buckets: Box<[Bucket]>,
    mask: usize,
    count: AtomicUsize,
    seed: u64,
    clock: AtomicUsize,
    /// Values of preallocated maps (`None` with BPF_F_NO_PREALLOC).
    slab: Option<std::sync::Arc<Slab>>,
}

fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a key (a multiply-xorshift over 8-byte words, seeded per map).
#[inline]
fn hash_key(key: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ (key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // The remainder as a zero-padded little-endian word, without a memcpy call.
        let (mut w, tail) = match rest.len() {
            4.. => (
                u32::from_le_bytes(rest[..4].try_into().unwrap()) as u64,
                &rest[4..],
            ),
            _ => (0, rest),
        };
        let base = rest.len() - tail.len();
        for (i, &b) in tail.iter().enumerate() {
            w |= (b as u64) << (8 * (base + i));
        }
        h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fmix(h)
}

/// Key equality with the usual sizes compared as words (no memcmp call).
#[inline(always)]
fn key_eq(a: &[u8], b: &[u8]) -> bool {
    match (a.len(), b.len()) {
        (4, 4) => a[..4] == b[..4],
        (8, 8) => a[..8] == b[..8],
        (16, 16) => a[..16] == b[..16],
        _ => a == b,
    }
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return fmix(t);
    }
    u64::from_ne_bytes(b)
}

fn deref<'g>(p: Shared<'g, Node>) -> Option<&'g Node> {
    // SAFETY: nodes are only reclaimed with `defer_destroy` after being unlinked, so
    // any pointer loaded from a list under the guard `'g` points to a live node.
    unsafe { p.as_ref() }
}

impl HashMap {
    /// The kernel's `htab_map_alloc_check` + `htab_map_alloc`.
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        let percpu = matches!(
            attr.map_type,
            map_type::PERCPU_HASH | map_type::LRU_PERCPU_HASH
        );
        let lru = matches!(
            attr.map_type,
            map_type::LRU_HASH | map_type::LRU_PERCPU_HASH
        );
        let prealloc = attr.map_flags & mf::BPF_F_NO_PREALLOC == 0;
        let percpu_lru = attr.map_flags & mf::BPF_F_NO_COMMON_LRU != 0;
        if attr.map_flags & !CREATE_FLAG_MASK != 0 || !mf::access_ok(attr.map_flags) {
            return Err(MapError::Inval);
        }
        if !lru && percpu_lru {
            return Err(MapError::Inval);
        }
        if lru && !prealloc {
            return Err(MapError::NotSupp);
        }
        if attr.map_flags & mf::BPF_F_NUMA_NODE != 0 && (percpu || percpu_lru) {
            return Err(MapError::Inval);
        }
        if attr.max_entries == 0 || attr.key_size == 0 || attr.value_size == 0 {
            return Err(MapError::Inval);
        }
        if attr.key_size as u64 + attr.value_size as u64 >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE {
            return Err(MapError::TooBig);
        }
        let stride = round8(attr.value_size as usize);
        if percpu && stride > PCPU_MIN_UNIT_SIZE {
            return Err(MapError::TooBig);
        }
        let ncpus = if percpu { super::possible_cpus() } else { 1 };
        let mut attr = attr.clone();
        if percpu_lru {
            let n = super::possible_cpus() as u64;
            let r = (attr.max_entries as u64).div_ceil(n) * n;
            attr.max_entries = if r > u32::MAX as u64 {
                (attr.max_entries as u64 / n * n) as u32
            } else {
                r as u32
            };
        }
        if attr.max_entries as u64 > 1u64 << 31 {
            return Err(MapError::TooBig);
        }
        let n_buckets = (attr.max_entries as usize).next_power_of_two();
        if n_buckets as u64 > u32::MAX as u64 / KBUCKET_SIZE {
            return Err(MapError::TooBig);
        }
        if prealloc {
            let elem =
                HTAB_ELEM_SIZE + round8(attr.key_size as usize) as u64 + (stride * ncpus) as u64;
            let need = (attr.max_entries as u64 + ncpus as u64).saturating_mul(elem);
            if need.saturating_add(n_buckets as u64 * KBUCKET_SIZE) > super::shmem::total_ram() {
                return Err(MapError::NoMem);
            }
        }
        let mut v: Vec<Bucket> = Vec::new();
        v.try_reserve_exact(n_buckets)
            .map_err(|_| MapError::NoMem)?;
        v.extend((0..n_buckets).map(|_| Bucket {
            head: Atomic::null(),
            lock: Mutex::new(()),
        }));
        let slab = if prealloc {
            Some(Slab::new(stride * ncpus, attr.max_entries)?)
        } else {
            None
        };
        let seed = if attr.map_flags & mf::BPF_F_ZERO_SEED != 0 {
            0
        } else {
            random_seed()
        };
        Ok(Self {
            c: Common::new(&attr, opts),
            percpu,
            lru,
            ncpus,
            stride,
            buckets: v.into_boxed_slice(),
            mask: n_buckets - 1,
            count: AtomicUsize::new(0),
            seed,
            clock: AtomicUsize::new(0),
            slab,
        })
    }

    /// The address of `key`'s value for the CPU slot of this run, or 0.
    #[inline]
    fn find_value(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> u64 {
        let slot = self.slot_of(ctx);
        self.value_addr(key, slot, ctx.guard())
    }

    /// The address of `key`'s value in CPU slot `slot` (`cpu % possible_cpus()`;
    /// ignored unless per-CPU), or 0; the value stays valid while `g` is pinned.
    #[inline]
    pub(crate) fn value_addr(&self, key: &[u8], slot: usize, g: &Guard) -> u64 {
        let hash = hash_key(key, self.seed);
        let Some(n) = self.find(&self.buckets[hash as usize & self.mask], hash, key, g) else {
            return 0;
        };
        if self.lru && !n.referenced.load(Ordering::Relaxed) {
            n.referenced.store(true, Ordering::Relaxed);
        }
        let slot = if self.percpu { slot } else { 0 };
        n.val.addr(slot * self.stride)
    }

    /// Whether `addr` (a value address from [`Self::value_addr`]) lies in the value
    /// area (else it must be registered as a region of the run).
    #[inline]
    pub(crate) fn in_value_area(&self, addr: u64) -> bool {
        self.slab.as_ref().is_some_and(|s| s.contains(addr))
    }

    /// Size of a value and whether programs may write it (its region).
    pub(crate) fn value_region(&self, addr: u64) -> Region {
        Region::new(addr, self.vs() as u64, self.c.prog_writable())
    }

    fn ks(&self) -> usize {
        self.c.attr.key_size as usize
    }
    fn vs(&self) -> usize {
        self.c.attr.value_size as usize
    }

    #[inline]
    fn find<'g>(&self, b: &Bucket, hash: u64, key: &[u8], g: &'g Guard) -> Option<&'g Node> {
        let mut cur = b.head.load(Ordering::Acquire, g);
        while let Some(n) = deref(cur) {
            if n.hash == hash && key_eq(&n.key, key) {
                return Some(n);
            }
            cur = n.next.load(Ordering::Acquire, g);
        }
        None
    }

    /// The link (bucket head or a node's `next`) that points to the node with `key`.
    fn find_link<'g>(
        &self,
        b: &'g Bucket,
        hash: u64,
        key: &[u8],
        g: &'g Guard,
    ) -> Option<(&'g Atomic<Node>, Shared<'g, Node>)> {
        let mut link = &b.head;
        loop {
            let cur = link.load(Ordering::Acquire, g);
            let n = deref(cur)?;
            if n.hash == hash && *n.key == *key {
                return Some((link, cur));
            }
            link = &n.next;
        }
    }

    fn new_node(&self, hash: u64, key: &[u8]) -> Result<Owned<Node>, MapError> {
        // Preallocated maps take values from the slab; when it is exhausted (slots
        // of deleted elements wait for the epoch to end) from the heap.
        let val = match self.slab.as_ref().and_then(|s| s.alloc()) {
            Some(v) => v,
            None => Shmem::heap(self.stride * self.ncpus)?,
        };
        let mut k = Vec::new();
        k.try_reserve_exact(key.len())
            .map_err(|_| MapError::NoMem)?;
        k.extend_from_slice(key);
        Ok(Owned::new(Node {
            next: Atomic::null(),
            hash,
            referenced: AtomicBool::new(false),
            seq: AtomicU32::new(0),
            key: k.into_boxed_slice(),
            val,
        }))
    }

    /// Fill a fresh node's value: from userspace (all CPUs for per-CPU maps) or from a
    /// program (its CPU's slot; the others stay zero).
    fn init_value(&self, n: &Node, value: &[u8], cpu: Option<usize>) {
        let vs = self.vs();
        if self.percpu {
            match cpu {
                Some(c) => n.val.write(c * self.stride, &value[..vs]),
                None => n.val.write(0, &value[..self.ncpus * self.stride]),
            }
        } else {
            super::copy_value_skip_lock(&n.val, 0, &value[..vs], self.c.spin_lock_off);
        }
    }

    /// Reserve room for one more element: E2BIG when full, or evict (LRU).
    fn reserve(&self, held: usize, g: &Guard) -> Result<(), MapError> {
        let max = self.c.attr.max_entries as usize;
        loop {
            let n = self.count.load(Ordering::Relaxed);
            if n < max {
                if self
                    .count
                    .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if !self.lru {
                return Err(MapError::TooBig);
            }
            if !self.evict_one(held, g) {
                // The kernel's prealloc_lru_pop found nothing to reuse.
                return Err(MapError::NoMem);
            }
        }
    }

    /// Second-chance clock eviction of one element (LRU types). `held` is the bucket
    /// whose lock the caller holds.
    fn evict_one(&self, held: usize, g: &Guard) -> bool {
        let nb = self.buckets.len();
        for _ in 0..(2 * nb + 2) {
            let i = self.clock.fetch_add(1, Ordering::Relaxed) & self.mask;
            let b = &self.buckets[i];
            let _lk = if i == held {
                None
            } else {
                match b.lock.try_lock() {
                    Ok(l) => Some(l),
                    Err(_) => continue,
                }
            };
            let mut link = &b.head;
            loop {
                let cur = link.load(Ordering::Acquire, g);
                let Some(n) = deref(cur) else { break };
                if n.referenced.swap(false, Ordering::Relaxed) {
                    link = &n.next;
                    continue;
                }
                link.store(n.next.load(Ordering::Acquire, g), Ordering::Release);
                self.count.fetch_sub(1, Ordering::AcqRel);
                // SAFETY: `cur` is unlinked (under the bucket lock); readers that still see
                // it are pinned and the node is freed after they unpin.
                unsafe { g.defer_destroy(cur) };
                return true;
            }
        }
        false
    }

    /// The update path shared by syscalls (`cpu == None`) and programs.
    fn update(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        cpu: Option<usize>,
        g: &Guard,
    ) -> Result<(), MapError> {
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(MapError::Inval);
        }
        let hash = hash_key(key, self.seed);
        let bi = hash as usize & self.mask;
        let b = &self.buckets[bi];
        let f = flags & !BPF_F_LOCK;
        if flags & BPF_F_LOCK != 0 && !self.percpu {
            let lock = self.c.spin_lock_off.ok_or(MapError::Inval)? as usize;
            let old = self.find(b, hash, key, g);
            match (old, f) {
                (Some(_), BPF_NOEXIST) => return Err(MapError::Exist),
                (None, BPF_EXIST) => return Err(MapError::NoEnt),
                (Some(n), _) => {
                    super::with_value_lock(&n.val, lock, || {
                        super::copy_value_skip_lock(
                            &n.val,
                            0,
                            &value[..self.vs()],
                            Some(lock as u32),
                        )
                    });
                    return Ok(());
                }
                (None, _) => {}
            }
        }
        let _lk = b.lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.find_link(b, hash, key, g);
        match (&old, f) {
            (Some(_), BPF_NOEXIST) => return Err(MapError::Exist),
            (None, BPF_EXIST) => return Err(MapError::NoEnt),
            _ => {}
        }
        if let Some((_, cur)) = old {
            let n = deref(cur).expect("found node");
            // In place under the bucket lock (as the kernel's percpu and BPF_F_LOCK
            // paths; the kernel's other paths swap in a recycled element, which a
            // program holding the old pointer cannot tell apart). Syscall readers see
            // whole values through the sequence count.
            let vs = self.vs();
            n.seq_write(|v| match (self.percpu, cpu) {
                (true, Some(c)) => v.write(c * self.stride, &value[..vs]),
                (true, None) => v.write(0, &value[..self.ncpus * self.stride]),
                (false, _) => super::copy_value_skip_lock(v, 0, &value[..vs], self.c.spin_lock_off),
            });
            if self.lru {
                n.referenced.store(true, Ordering::Relaxed);
            }
            return Ok(());
        }
        self.reserve(bi, g)?;
        let new = match self.new_node(hash, key) {
            Ok(n) => n,
            Err(e) => {
                self.count.fetch_sub(1, Ordering::AcqRel);
                return Err(e);
            }
        };
        self.init_value(&new, value, cpu);
        new.next
            .store(b.head.load(Ordering::Acquire, g), Ordering::Relaxed);
        b.head.store(new, Ordering::Release);
        Ok(())
    }

    fn delete(&self, key: &[u8], out: Option<(&mut [u8], u64)>, g: &Guard) -> Result<(), MapError> {
        let hash = hash_key(key, self.seed);
        let b = &self.buckets[hash as usize & self.mask];
        let _lk = b.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (link, cur) = self.find_link(b, hash, key, g).ok_or(MapError::NoEnt)?;
        let n = deref(cur).expect("found node");
        if let Some((out, flags)) = out {
            self.copy_out(n, out, flags);
        }
        link.store(n.next.load(Ordering::Acquire, g), Ordering::Release);
        self.count.fetch_sub(1, Ordering::AcqRel);
        // SAFETY: unlinked under the bucket lock; freed after readers unpin.
        unsafe { g.defer_destroy(cur) };
        Ok(())
    }

    /// Copy an element's value as userspace sees it.
    fn copy_out(&self, n: &Node, out: &mut [u8], flags: u64) {
        let vs = self.vs();
        if self.percpu {
            n.seq_read(|v| v.read(0, &mut out[..self.ncpus * self.stride]));
            return;
        }
        let lock = self.c.spin_lock_off;
        match lock {
            Some(l) if flags & BPF_F_LOCK != 0 => {
                super::with_value_lock(&n.val, l as usize, || {
                    super::read_value_skip_lock(&n.val, 0, &mut out[..vs], lock)
                })
            }
            _ => n.seq_read(|v| super::read_value_skip_lock(v, 0, &mut out[..vs], lock)),
        }
    }

    fn slot_of(&self, ctx: &dyn HelperCtx) -> usize {
        if self.percpu {
            ctx.cpu() as usize % self.ncpus
        } else {
            0
        }
    }

    /// The kernel's `__htab_map_lookup_and_delete_batch`: `in_batch`/`out_batch` are
    /// a u32 bucket index; whole buckets are copied (ENOSPC if the first one does not
    /// fit), ENOENT after the last bucket.
    fn lookup_batch(&self, req: &BatchReq<'_>, delete: bool) -> BatchOut {
        if req.elem_flags & !BPF_F_LOCK != 0
            || (req.elem_flags & BPF_F_LOCK != 0 && self.c.spin_lock_off.is_none())
        {
            return BatchOut::err(MapError::Inval);
        }
        if req.flags != 0 {
            return BatchOut::err(MapError::Inval);
        }
        if req.count == 0 {
            return BatchOut {
                result: Ok(()),
                ..Default::default()
            };
        }
        let mut batch = 0u32;
        if let Some(b) = req.in_batch {
            let Some(b) = b.get(..4) else {
                return BatchOut {
                    result: Err(MapError::Errno(libc::EFAULT)),
                    count: Some(0),
                    ..Default::default()
                };
            };
            batch = u32::from_ne_bytes(b.try_into().unwrap());
        }
        if batch as usize >= self.buckets.len() {
            return BatchOut {
                result: Err(MapError::NoEnt),
                count: Some(0),
                ..Default::default()
            };
        }
        let vsz = self.sys_value_size();
        let mut out = BatchOut {
            result: Ok(()),
            ..Default::default()
        };
        let mut total = 0u32;
        let g = &epoch::pin();
        loop {
            let b = &self.buckets[batch as usize];
            let lk = b.lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut nodes = Vec::new();
            let mut cur = b.head.load(Ordering::Acquire, g);
            while let Some(n) = deref(cur) {
                nodes.push(cur);
                cur = n.next.load(Ordering::Acquire, g);
            }
            if nodes.len() as u64 > (req.count - total) as u64 {
                if total == 0 {
                    out.result = Err(MapError::Errno(libc::ENOSPC));
                }
                break;
            }
            let mut val = vec![0u8; vsz];
            for &p in &nodes {
                let n = deref(p).expect("node");
                out.keys.extend_from_slice(&n.key);
                self.copy_out(n, &mut val, req.elem_flags);
                out.values.extend_from_slice(&val);
            }
            if delete {
                for &p in &nodes {
                    let n = deref(p).expect("node");
                    if let Some((link, cur)) = self.find_link(b, n.hash, &n.key, g) {
                        let nn = deref(cur).expect("node");
                        link.store(nn.next.load(Ordering::Acquire, g), Ordering::Release);
                        self.count.fetch_sub(1, Ordering::AcqRel);
                        // SAFETY: unlinked under the bucket lock; freed after readers unpin.
                        unsafe { g.defer_destroy(cur) };
                    }
                }
            }
            drop(lk);
            total += nodes.len() as u32;
            batch += 1;
            if batch as usize >= self.buckets.len() {
                out.result = Err(MapError::NoEnt);
                break;
            }
        }
        out.count = Some(total);
        out.out_batch = Some(batch.to_ne_bytes().to_vec());
        out
    }
}

impl Map for HashMap {
    fn attr(&self) -> &MapAttr {
        &self.c.attr
    }
    fn sys_value_size(&self) -> usize {
        if self.percpu {
            self.stride * self.ncpus
        } else {
            self.vs()
        }
    }
    fn sys_lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        let g = &epoch::pin();
        let hash = hash_key(key, self.seed);
        let n = self
            .find(&self.buckets[hash as usize & self.mask], hash, key, g)
            .ok_or(MapError::NoEnt)?;
        self.copy_out(n, value, flags);
        Ok(())
    }
    fn sys_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        self.c.lock_flag_ok(flags)?;
        self.update(key, value, flags, None, &epoch::pin())
    }
    fn sys_delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        self.delete(key, None, &epoch::pin())
    }
    fn sys_get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        let g = &epoch::pin();
        let mut start = 0;
        if let Some(key) = key {
            let hash = hash_key(key, self.seed);
            let bi = hash as usize & self.mask;
            if let Some(n) = self.find(&self.buckets[bi], hash, key, g) {
                if let Some(nx) = deref(n.next.load(Ordering::Acquire, g)) {
                    next[..self.ks()].copy_from_slice(&nx.key);
                    return Ok(());
                }
                start = bi + 1;
            }
        }
        for b in &self.buckets[start.min(self.buckets.len())..] {
            if let Some(n) = deref(b.head.load(Ordering::Acquire, g)) {
                next[..self.ks()].copy_from_slice(&n.key);
                return Ok(());
            }
        }
        Err(MapError::NoEnt)
    }
    fn sys_lookup_and_delete(
        &self,
        key: &[u8],
        value: &mut [u8],
        flags: u64,
    ) -> Result<(), MapError> {
        if flags & !BPF_F_LOCK != 0 {
            return Err(MapError::Inval);
        }
        self.c.sys_write_ok()?;
        self.c.lock_flag_ok(flags)?;
        self.delete(key, Some((value, flags)), &epoch::pin())
    }
    fn freeze(&self) -> Result<(), MapError> {
        self.c.freeze()
    }
    fn frozen(&self) -> bool {
        self.c.frozen()
    }
    #[inline]
    fn prog_lookup(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> u64 {
        let addr = self.find_value(ctx, key);
        if addr != 0 {
            ctx.add_region(Region::new(addr, self.vs() as u64, self.c.prog_writable()));
        }
        addr
    }
    fn prog_lookup_own(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> u64 {
        let addr = self.find_value(ctx, key);
        let in_slab = self.slab.as_ref().is_some_and(|s| s.contains(addr));
        if addr != 0 && !in_slab {
            ctx.add_region(Region::new(addr, self.vs() as u64, self.c.prog_writable()));
        }
        addr
    }
    fn value_area(&self) -> Option<super::ArrayLayout> {
        let s = self.slab.as_ref()?;
        Some(super::ArrayLayout {
            base: s.base(),
            stride: self.stride as u64,
            ncpus: self.ncpus as u32,
            max_entries: self.c.attr.max_entries,
            value_size: self.c.attr.value_size,
            writable: self.c.prog_writable(),
        })
    }
    fn prog_update(&self, ctx: &mut dyn HelperCtx, key: &[u8], value: &[u8], flags: u64) -> i64 {
        if !self.c.prog_writable() {
            return -(libc::EPERM as i64);
        }
        if let Err(e) = self.c.lock_flag_ok(flags) {
            return super::neg(e);
        }
        let slot = self.slot_of(ctx);
        match self.update(key, value, flags, Some(slot), ctx.guard()) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn prog_delete(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> i64 {
        if !self.c.prog_writable() {
            return -(libc::EPERM as i64);
        }
        match self.delete(key, None, ctx.guard()) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn prog_for_each(
        &self,
        ctx: &mut dyn HelperCtx,
        f: &mut super::ForEachFn<'_>,
    ) -> Result<i64, Fault> {
        let slot = self.slot_of(ctx);
        let mut n = 0i64;
        for bi in 0..self.buckets.len() {
            // Collect this bucket's (key, value) addresses under the run's guard; the
            // nodes stay allocated until the run unpins it.
            let elems: Vec<(u64, u64)> = {
                let g = ctx.guard();
                let mut v = Vec::new();
                let mut cur = self.buckets[bi].head.load(Ordering::Acquire, g);
                while let Some(node) = deref(cur) {
                    v.push((node.key.as_ptr() as u64, node.val.addr(slot * self.stride)));
                    cur = node.next.load(Ordering::Acquire, g);
                }
                v
            };
            for (k, v) in elems {
                ctx.add_region(Region::new(k, self.ks() as u64, false));
                ctx.add_region(Region::new(v, self.vs() as u64, self.c.prog_writable()));
                n += 1;
                if f(ctx, k, v)? != 0 {
                    return Ok(n);
                }
            }
        }
        Ok(n)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn spin_lock_off(&self) -> Option<u32> {
        self.c.spin_lock_off
    }
    fn sys_lookup_batch(&self, req: &BatchReq<'_>, delete: bool) -> BatchOut {
        if delete {
            if let Err(e) = self.c.sys_write_ok() {
                return BatchOut::err(e);
            }
        }
        self.lookup_batch(req, delete)
    }
    fn sys_update_batch(&self, req: &BatchReq<'_>) -> BatchOut {
        if let Err(e) = self.c.sys_write_ok() {
            return BatchOut::err(e);
        }
        batch::generic_update(self, req)
    }
    fn sys_delete_batch(&self, req: &BatchReq<'_>) -> BatchOut {
        if let Err(e) = self.c.sys_write_ok() {
            return BatchOut::err(e);
        }
        batch::generic_delete(self, req)
    }
    fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for HashMap {
    fn drop(&mut self) {
        // SAFETY: no other reference to the map exists (we are in drop), so no reader
        // can hold a node of these lists; free them directly.
        let g = unsafe { epoch::unprotected() };
        for b in self.buckets.iter() {
            let mut cur = b.head.load(Ordering::Relaxed, g);
            while !cur.is_null() {
                // SAFETY: as above: exclusive access, each node freed once.
                let owned = unsafe { cur.into_owned() };
                cur = owned.next.load(Ordering::Relaxed, g);
                drop(owned);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-wise remainder equals the zero-padded little-endian word.
    #[test]
    fn hash_key_remainder_is_the_padded_word() {
        fn reference(key: &[u8], seed: u64) -> u64 {
            let mut h = seed ^ (key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut chunks = key.chunks_exact(8);
            for c in &mut chunks {
                let w = u64::from_le_bytes(c.try_into().unwrap());
                h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                let mut b = [0u8; 8];
                b[..rest.len()].copy_from_slice(rest);
                h = (h ^ u64::from_le_bytes(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            }
            fmix(h)
        }
        let bytes: Vec<u8> = (1..=40u8).map(|b| b.wrapping_mul(37)).collect();
        for len in 1..bytes.len() {
            assert_eq!(
                hash_key(&bytes[..len], 7),
                reference(&bytes[..len], 7),
                "len {len}"
            );
        }
    }
}
