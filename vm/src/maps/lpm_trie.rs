//! BPF_MAP_TYPE_LPM_TRIE (kernel/bpf/lpm_trie.c): keys `{u32 prefixlen; u8 data[]}`,
//! lookups return the longest matching prefix.
//!
//! Entries are kept in one hash table per prefix length under a read-write lock; a
//! lookup probes the lengths that hold entries (a bit set), from the longest usable
//! prefix down. Values live in their own blocks, freed through the epoch collector
//! after removal, so a program's pointer stays valid while its run's guard is pinned
//! (it is pinned before the lookup: the run takes no reference of its own).

use std::any::Any;
use std::collections::HashMap as StdHashMap;
use std::sync::{Arc, RwLock};

use crossbeam_epoch as epoch;

use super::batch::{self, BatchOut, BatchReq};
use super::shmem::Shmem;
use super::update_flags::*;
use super::{map_flags as mf, Common, CreateOpts, Map, MapAttr, MapError};
use crate::mem::Region;
use crate::run::HelperCtx;

const LPM_DATA_SIZE_MAX: u32 = 256;
const LPM_KEY_SIZE_MIN: u32 = 4 + 1;
const LPM_KEY_SIZE_MAX: u32 = 4 + LPM_DATA_SIZE_MAX;
/// KMALLOC_MAX_SIZE - LPM_KEY_SIZE_MAX - sizeof(struct lpm_trie_node) (x86_64).
const LPM_VAL_SIZE_MAX: u32 = (1 << 22) - LPM_KEY_SIZE_MAX - 24;
const CREATE_FLAG_MASK: u32 = mf::BPF_F_NO_PREALLOC | mf::BPF_F_NUMA_NODE | mf::ACCESS_MASK;

/// The per-length tables' hasher: foldhash, seeded per table (keys come from
/// packets, so not a fixed hash; SipHash was a sixth of a lookup).
type Tables = Vec<StdHashMap<Box<[u8]>, Arc<Entry>, foldhash::fast::RandomState>>;

struct Entry {
    val: Shmem,
    /// The key's data as given (the kernel stores it unmasked).
    raw: Box<[u8]>,
}

struct Inner {
    /// by_len[plen]: masked data -> entry.
    by_len: Tables,
    /// Bit `l` set: `by_len[l]` is not empty.
    lens: Vec<u64>,
    n: usize,
}

impl Inner {
    fn note_len(&mut self, l: usize) {
        let bit = 1u64 << (l % 64);
        if self.by_len[l].is_empty() {
            self.lens[l / 64] &= !bit;
        } else {
            self.lens[l / 64] |= bit;
        }
    }

    /// The entry of the longest prefix of at most `max` bits matching `data`.
    fn longest(&self, data: &[u8], max: usize, buf: &mut [u8]) -> Option<&Arc<Entry>> {
        for w in (0..=max / 64).rev() {
            let mut word = self.lens[w];
            if w == max / 64 {
                // Lengths above `max` do not apply.
                word &= u64::MAX >> (63 - max % 64);
            }
            while word != 0 {
                let b = 63 - word.leading_zeros() as usize;
                word &= !(1u64 << b);
                let l = w * 64 + b;
                masked(data, l, buf);
                if let Some(e) = self.by_len[l].get(&buf[..]) {
                    return Some(e);
                }
            }
        }
        None
    }
}

/// An LPM_TRIE map.
pub struct LpmTrie {
    c: Common,
    data_len: usize,
    inner: RwLock<Inner>,
}

fn masked(data: &[u8], plen: usize, out: &mut [u8]) {
    out.fill(0);
    let full = plen / 8;
    out[..full].copy_from_slice(&data[..full]);
    if !plen.is_multiple_of(8) {
        out[full] = data[full] & (0xffu8 << (8 - plen % 8));
    }
}

impl LpmTrie {
    /// The kernel's `trie_alloc`.
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        if attr.max_entries == 0
            || attr.map_flags & mf::BPF_F_NO_PREALLOC == 0
            || attr.map_flags & !CREATE_FLAG_MASK != 0
            || !mf::access_ok(attr.map_flags)
            || attr.key_size < LPM_KEY_SIZE_MIN
            || attr.key_size > LPM_KEY_SIZE_MAX
            || attr.value_size < 1
            || attr.value_size > LPM_VAL_SIZE_MAX
        {
            return Err(MapError::Inval);
        }
        let data_len = attr.key_size as usize - 4;
        let by_len = (0..=data_len * 8)
            .map(|_| StdHashMap::with_hasher(Default::default()))
            .collect();
        let lens = vec![0; (data_len * 8) / 64 + 1];
        Ok(Self {
            c: Common::new(attr, opts),
            data_len,
            inner: RwLock::new(Inner { by_len, lens, n: 0 }),
        })
    }

    fn split<'k>(&self, key: &'k [u8]) -> (usize, &'k [u8]) {
        let plen = u32::from_ne_bytes(key[..4].try_into().unwrap()) as usize;
        (plen, &key[4..4 + self.data_len])
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Longest-prefix match (the kernel's `trie_lookup_elem`): `f` of the entry.
    fn lpm<R>(&self, key: &[u8], f: impl FnOnce(&Arc<Entry>) -> R) -> Option<R> {
        let (plen, data) = self.split(key);
        if plen > self.data_len * 8 {
            return None;
        }
        let mut buf = [0u8; LPM_DATA_SIZE_MAX as usize];
        let buf = &mut buf[..self.data_len];
        self.read().longest(data, plen, buf).map(f)
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        if flags > BPF_EXIST {
            return Err(MapError::Inval);
        }
        let (plen, data) = self.split(key);
        if plen > self.data_len * 8 {
            return Err(MapError::Inval);
        }
        let mut k = vec![0u8; self.data_len];
        masked(data, plen, &mut k);
        let val = Shmem::heap(self.c.attr.value_size as usize)?;
        val.write(0, &value[..self.c.attr.value_size as usize]);
        let mut inner = self.write();
        let exists = inner.by_len[plen].contains_key(&k[..]);
        if exists && flags == BPF_NOEXIST {
            return Err(MapError::Exist);
        }
        if !exists && flags == BPF_EXIST {
            return Err(MapError::NoEnt);
        }
        if !exists && inner.n >= self.c.attr.max_entries as usize {
            return Err(MapError::Errno(libc::ENOSPC));
        }
        let raw: Box<[u8]> = data.into();
        let old = inner.by_len[plen].insert(k.into_boxed_slice(), Arc::new(Entry { val, raw }));
        inner.note_len(plen);
        if let Some(old) = old {
            epoch::pin().defer(move || drop(old));
        } else {
            inner.n += 1;
        }
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let (plen, data) = self.split(key);
        if plen > self.data_len * 8 {
            return Err(MapError::Inval);
        }
        let mut k = vec![0u8; self.data_len];
        masked(data, plen, &mut k);
        // Only the prefix bits count (the kernel's longest_prefix_match stops at plen).
        let mut inner = self.write();
        let old = inner.by_len[plen].remove(&k[..]).ok_or(MapError::NoEnt)?;
        inner.note_len(plen);
        inner.n -= 1;
        epoch::pin().defer(move || drop(old));
        Ok(())
    }

    /// All keys in a stable order: data ascending, longer prefixes first.
    /// All keys in a stable order (masked data ascending, longer prefixes first), as
    /// (prefixlen, masked data ++ raw data).
    fn sorted_keys(&self) -> Vec<(usize, Box<[u8]>)> {
        let inner = self.read();
        let mut v: Vec<(usize, Box<[u8]>)> = Vec::with_capacity(inner.n);
        for (l, m) in inner.by_len.iter().enumerate() {
            for (k, e) in m {
                v.push((l, [&k[..], &e.raw[..]].concat().into_boxed_slice()));
            }
        }
        v.sort_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        v
    }
}

impl Map for LpmTrie {
    fn attr(&self) -> &MapAttr {
        &self.c.attr
    }
    fn sys_lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        let vs = self.c.attr.value_size as usize;
        self.lpm(key, |e| e.val.read(0, &mut value[..vs]))
            .ok_or(MapError::NoEnt)
    }
    fn sys_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        self.c.lock_flag_ok(flags)?;
        self.update(key, value, flags)
    }
    fn sys_delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        self.delete(key)
    }
    fn sys_get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        let keys = self.sorted_keys();
        let pos = key.and_then(|k| {
            let (plen, data) = self.split(k);
            if plen > self.data_len * 8 {
                return None;
            }
            let mut m = vec![0u8; self.data_len];
            masked(data, plen, &mut m);
            keys.iter()
                .position(|(l, d)| *l == plen && d[..self.data_len] == m[..])
        });
        let idx = match pos {
            Some(p) => p + 1,
            None => 0,
        };
        let (l, d) = keys.get(idx).ok_or(MapError::NoEnt)?;
        next[..4].copy_from_slice(&(*l as u32).to_ne_bytes());
        next[4..4 + self.data_len].copy_from_slice(&d[self.data_len..]);
        Ok(())
    }
    fn sys_lookup_and_delete(
        &self,
        _key: &[u8],
        _value: &mut [u8],
        flags: u64,
    ) -> Result<(), MapError> {
        self.c.lookup_and_delete_unsupported(flags)
    }
    fn freeze(&self) -> Result<(), MapError> {
        self.c.freeze()
    }
    fn frozen(&self) -> bool {
        self.c.frozen()
    }
    fn prog_lookup(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> u64 {
        // Pinned first: an entry removed after this lookup found it is freed only once
        // the run's guard is released, so its value needs no reference of the run's.
        let _ = ctx.guard();
        let Some(addr) = self.lpm(key, |e| e.val.addr(0)) else {
            return 0;
        };
        ctx.add_region(Region::new(
            addr,
            self.c.attr.value_size as u64,
            self.c.prog_writable(),
        ));
        addr
    }
    fn prog_update(&self, _ctx: &mut dyn HelperCtx, key: &[u8], value: &[u8], flags: u64) -> i64 {
        if !self.c.prog_writable() {
            return -(libc::EPERM as i64);
        }
        match self.update(key, value, flags) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn prog_delete(&self, _ctx: &mut dyn HelperCtx, key: &[u8]) -> i64 {
        match self.delete(key) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn len(&self) -> usize {
        self.read().n
    }
    fn sys_lookup_batch(&self, req: &BatchReq<'_>, delete: bool) -> BatchOut {
        batch::generic_lookup_checked(self, &self.c, req, delete)
    }
    fn sys_update_batch(&self, req: &BatchReq<'_>) -> BatchOut {
        batch::generic_update_checked(self, &self.c, req)
    }
    fn sys_delete_batch(&self, req: &BatchReq<'_>) -> BatchOut {
        batch::generic_delete_checked(self, &self.c, req, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::map_type;

    fn key(plen: u32, ip: [u8; 4]) -> Vec<u8> {
        let mut k = plen.to_ne_bytes().to_vec();
        k.extend_from_slice(&ip);
        k
    }

    #[test]
    fn longest_prefix() {
        let attr = MapAttr {
            map_type: map_type::LPM_TRIE,
            key_size: 8,
            value_size: 4,
            max_entries: 3,
            map_flags: mf::BPF_F_NO_PREALLOC,
            ..Default::default()
        };
        let t = LpmTrie::new(&attr, &Default::default()).unwrap();
        t.sys_update(&key(8, [10, 0, 0, 0]), &1u32.to_ne_bytes(), 0)
            .unwrap();
        t.sys_update(&key(24, [10, 1, 2, 0]), &2u32.to_ne_bytes(), 0)
            .unwrap();
        t.sys_update(&key(0, [0, 0, 0, 0]), &3u32.to_ne_bytes(), 0)
            .unwrap();
        assert_eq!(
            t.sys_update(&key(32, [1, 1, 1, 1]), &3u32.to_ne_bytes(), 0),
            Err(MapError::Errno(libc::ENOSPC))
        );
        let mut v = [0u8; 4];
        t.sys_lookup(&key(32, [10, 1, 2, 3]), &mut v, 0).unwrap();
        assert_eq!(u32::from_ne_bytes(v), 2);
        t.sys_lookup(&key(32, [10, 1, 3, 3]), &mut v, 0).unwrap();
        assert_eq!(u32::from_ne_bytes(v), 1);
        t.sys_lookup(&key(32, [11, 1, 3, 3]), &mut v, 0).unwrap();
        assert_eq!(u32::from_ne_bytes(v), 3);
        t.sys_lookup(&key(16, [10, 1, 2, 3]), &mut v, 0).unwrap();
        assert_eq!(u32::from_ne_bytes(v), 1);
        assert_eq!(t.sys_delete(&key(16, [10, 1, 0, 0])), Err(MapError::NoEnt));
        t.sys_delete(&key(24, [10, 1, 2, 0])).unwrap();
        t.sys_lookup(&key(32, [10, 1, 2, 3]), &mut v, 0).unwrap();
        assert_eq!(u32::from_ne_bytes(v), 1);
        assert_eq!(
            t.sys_update(&key(33, [0; 4]), &[0; 4], 0),
            Err(MapError::Inval)
        );
        let mut n = [0u8; 8];
        let mut seen = 0;
        let mut prev: Option<Vec<u8>> = None;
        while t.sys_get_next_key(prev.as_deref(), &mut n).is_ok() {
            seen += 1;
            prev = Some(n.to_vec());
        }
        assert_eq!(seen, 2);
        let bad = MapAttr {
            map_flags: 0,
            ..attr
        };
        assert!(matches!(
            LpmTrie::new(&bad, &Default::default()),
            Err(MapError::Inval)
        ));
    }

    /// 128-bit keys: prefix lengths on both sides of the 64-bit words of the length
    /// set (0, 63, 64, 65, 127, 128), each found as the longest match and no longer
    /// once deleted; a query shorter than a stored prefix does not see it.
    #[test]
    fn longest_prefix_across_length_words() {
        let attr = MapAttr {
            map_type: map_type::LPM_TRIE,
            key_size: 4 + 16,
            value_size: 4,
            max_entries: 16,
            map_flags: mf::BPF_F_NO_PREALLOC,
            ..Default::default()
        };
        let t = LpmTrie::new(&attr, &Default::default()).unwrap();
        let k6 = |plen: u32, data: [u8; 16]| {
            let mut k = plen.to_ne_bytes().to_vec();
            k.extend_from_slice(&data);
            k
        };
        let addr = [0xffu8; 16];
        let lens = [0u32, 63, 64, 65, 127, 128];
        for &l in &lens {
            t.sys_update(&k6(l, addr), &l.to_ne_bytes(), 0).unwrap();
        }
        let found = |plen: u32| {
            let mut v = [0u8; 4];
            t.sys_lookup(&k6(plen, addr), &mut v, 0)
                .map(|()| u32::from_ne_bytes(v))
        };
        assert_eq!(found(128), Ok(128));
        assert_eq!(found(100), Ok(65));
        assert_eq!(found(64), Ok(64));
        assert_eq!(found(63), Ok(63));
        assert_eq!(found(62), Ok(0));
        for &l in lens.iter().rev() {
            assert_eq!(found(128), Ok(l));
            t.sys_delete(&k6(l, addr)).unwrap();
        }
        assert_eq!(found(128), Err(MapError::NoEnt));
    }
}
