//! BPF_MAP_TYPE_DEVMAP and DEVMAP_HASH (kernel/bpf/devmap.c): targets of
//! `bpf_redirect_map`. Values are `struct bpf_devmap_val { u32 ifindex; union {
//! int fd; u32 id; } bpf_prog; }` (4 or 8 bytes). Only the supervisor can check an
//! ifindex in the caller's network namespace and resolve a program fd, so it calls
//! [`DevMap::set`]; the plain `sys_update` accepts only values without a program and
//! trusts the ifindex.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crossbeam_epoch as epoch;

use super::shmem::Shmem;
use super::update_flags::*;
use super::{map_flags as mf, map_type, Common, CreateOpts, Map, MapAttr, MapError};
use crate::mem::Region;
use crate::program::Program;
use crate::run::HelperCtx;

/// One devmap entry.
pub struct DevEntry {
    pub ifindex: u32,
    /// The devmap program (`bpf_prog.fd` resolved) and its id.
    pub prog: Option<(u32, Arc<Program>)>,
    /// `{ifindex, prog id}` as programs and userspace lookups see it.
    val: Shmem,
}

/// A DEVMAP or DEVMAP_HASH map.
pub struct DevMap {
    c: Common,
    is_hash: bool,
    entries: RwLock<BTreeMap<u32, Arc<DevEntry>>>,
}

const CREATE_FLAG_MASK: u32 = mf::BPF_F_NUMA_NODE | mf::BPF_F_RDONLY | mf::BPF_F_WRONLY;

impl DevMap {
    /// The kernel's `dev_map_alloc_check` + `dev_map_init_map`.
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        if attr.max_entries == 0
            || attr.key_size != 4
            || (attr.value_size != 4 && attr.value_size != 8)
            || attr.map_flags & !CREATE_FLAG_MASK != 0
            || !mf::access_ok(attr.map_flags)
        {
            return Err(MapError::Inval);
        }
        let is_hash = attr.map_type == map_type::DEVMAP_HASH;
        if is_hash && attr.max_entries > 1 << 31 {
            return Err(MapError::Inval);
        }
        let mut attr = attr.clone();
        // "Lookup returns a pointer straight to dev->ifindex": programs may not write.
        attr.map_flags |= mf::BPF_F_RDONLY_PROG;
        Ok(Self {
            c: Common::new(&attr, opts),
            is_hash,
            entries: RwLock::new(BTreeMap::new()),
        })
    }

    /// Checks of `dev_map_update_elem` / `dev_map_hash_update_elem` that come before
    /// the ifindex and program fd are resolved. Returns the parsed (ifindex, prog fd).
    pub fn check_update(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(u32, i32), MapError> {
        self.c.sys_write_ok()?;
        let idx = u32::from_ne_bytes(key[..4].try_into().unwrap());
        let ifindex = u32::from_ne_bytes(value[..4].try_into().unwrap());
        let fd = if self.c.attr.value_size == 8 {
            i32::from_ne_bytes(value[4..8].try_into().unwrap())
        } else {
            0
        };
        if self.is_hash {
            if flags > BPF_EXIST || ifindex == 0 {
                return Err(MapError::Inval);
            }
        } else {
            if flags > BPF_EXIST {
                return Err(MapError::Inval);
            }
            if idx >= self.c.attr.max_entries {
                return Err(MapError::TooBig);
            }
            if flags == BPF_NOEXIST {
                return Err(MapError::Exist);
            }
            if ifindex == 0 && fd > 0 {
                return Err(MapError::Inval);
            }
        }
        Ok((ifindex, fd))
    }

    /// Store an entry whose ifindex the supervisor validated (EINVAL otherwise) and
    /// whose program fd it resolved. `ifindex == 0` clears a DEVMAP slot.
    pub fn set(
        &self,
        key: u32,
        ifindex: u32,
        prog: Option<(u32, Arc<Program>)>,
        flags: u64,
    ) -> Result<(), MapError> {
        let mut kb = [0u8; 8];
        kb[..4].copy_from_slice(&ifindex.to_ne_bytes());
        self.check_update(
            &key.to_ne_bytes(),
            &kb[..self.c.attr.value_size as usize],
            flags,
        )?;
        let mut e = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if ifindex == 0 {
            if let Some(old) = e.remove(&key) {
                epoch::pin().defer(move || drop(old));
            }
            return Ok(());
        }
        let exists = e.contains_key(&key);
        if self.is_hash {
            if exists && flags == BPF_NOEXIST {
                return Err(MapError::Exist);
            }
            if !exists && e.len() >= self.c.attr.max_entries as usize {
                return Err(MapError::TooBig);
            }
        }
        let val = Shmem::heap(8)?;
        val.write(0, &ifindex.to_ne_bytes());
        val.write(4, &prog.as_ref().map_or(0, |(id, _)| *id).to_ne_bytes());
        if let Some(old) = e.insert(key, Arc::new(DevEntry { ifindex, prog, val })) {
            epoch::pin().defer(move || drop(old));
        }
        Ok(())
    }

    /// The entry under `key` (for `bpf_redirect_map` and the data plane).
    #[inline]
    pub fn get(&self, key: u32) -> Option<Arc<DevEntry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Every entry (BPF_F_BROADCAST), in key order.
    pub fn all(&self) -> Vec<(u32, Arc<DevEntry>)> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn remove(&self, key: &[u8]) -> Result<(), MapError> {
        let k = u32::from_ne_bytes(key[..4].try_into().unwrap());
        if !self.is_hash && k >= self.c.attr.max_entries {
            return Err(MapError::Inval);
        }
        let old = self
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&k);
        match old {
            Some(old) => {
                epoch::pin().defer(move || drop(old));
                Ok(())
            }
            None if self.is_hash => Err(MapError::NoEnt),
            None => Ok(()),
        }
    }
}

impl Map for DevMap {
    fn attr(&self) -> &MapAttr {
        &self.c.attr
    }
    fn sys_lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        let e = self
            .get(u32::from_ne_bytes(key[..4].try_into().unwrap()))
            .ok_or(MapError::NoEnt)?;
        let n = self.c.attr.value_size as usize;
        e.val.read(0, &mut value[..n]);
        Ok(())
    }
    fn sys_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.lock_flag_ok(flags)?;
        let (ifindex, fd) = self.check_update(key, value, flags)?;
        if fd > 0 {
            // A program fd needs the supervisor (DevMap::set).
            return Err(MapError::Inval);
        }
        self.set(
            u32::from_ne_bytes(key[..4].try_into().unwrap()),
            ifindex,
            None,
            flags,
        )
    }
    fn sys_delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        self.remove(key)
    }
    fn sys_get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        if !self.is_hash {
            return super::prog_array::array_next(self.c.attr.max_entries, key, next);
        }
        let e = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let k = key
            .map(|k| u32::from_ne_bytes(k[..4].try_into().unwrap()))
            .filter(|k| e.contains_key(k));
        let n = match k {
            Some(k) => e.range(k + 1..).next(),
            None => e.iter().next(),
        };
        let (k, _) = n.ok_or(MapError::NoEnt)?;
        next[..4].copy_from_slice(&k.to_ne_bytes());
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
        let Some(e) = self.get(u32::from_ne_bytes(key[..4].try_into().unwrap())) else {
            return 0;
        };
        let addr = e.val.addr(0);
        ctx.guard().defer(move || drop(e));
        ctx.add_region(Region::new(addr, self.c.attr.value_size as u64, false));
        addr
    }
    fn prog_update(
        &self,
        _ctx: &mut dyn HelperCtx,
        _key: &[u8],
        _value: &[u8],
        _flags: u64,
    ) -> i64 {
        -(libc::EPERM as i64)
    }
    fn prog_delete(&self, _ctx: &mut dyn HelperCtx, _key: &[u8]) -> i64 {
        -(libc::EPERM as i64)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
