//! BPF_MAP_TYPE_ARRAY_OF_MAPS and HASH_OF_MAPS (kernel/bpf/map_in_map.c): values
//! are maps. Userspace stores map fds, which the supervisor resolves and hands to
//! [`MapOfMaps::set`]; a userspace lookup returns the inner map's id; a program's
//! lookup returns a handle to the inner map (kept alive for the run).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crossbeam_epoch as epoch;

use super::update_flags::*;
use super::{map_flags as mf, map_type, Common, CreateOpts, Map, MapAttr, MapError};
use crate::run::HelperCtx;

type Entry = (u32, Arc<dyn Map>);

/// An ARRAY_OF_MAPS or HASH_OF_MAPS map.
pub struct MapOfMaps {
    c: Common,
    is_array: bool,
    /// The inner map template (`inner_map_fd` at creation).
    template: Arc<dyn Map>,
    entries: RwLock<BTreeMap<Vec<u8>, Entry>>,
}

impl MapOfMaps {
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        let is_array = attr.map_type == map_type::ARRAY_OF_MAPS;
        if is_array {
            super::prog_array::fd_array_check(attr)?;
        } else {
            if attr.value_size != 4 {
                return Err(MapError::Inval);
            }
            // htab_map_alloc_check with the hash rules.
            let mask =
                mf::BPF_F_NO_PREALLOC | mf::BPF_F_NUMA_NODE | mf::ACCESS_MASK | mf::BPF_F_ZERO_SEED;
            if attr.map_flags & !mask != 0 || attr.max_entries == 0 || attr.key_size == 0 {
                return Err(MapError::Inval);
            }
            if attr.key_size as u64 + 4 >= (1 << 22) - 48 {
                return Err(MapError::TooBig);
            }
        }
        let template = opts.inner_map.clone().ok_or(MapError::BadFd)?;
        let tt = template.attr().map_type;
        if matches!(tt, map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS) {
            return Err(MapError::Inval);
        }
        if matches!(tt, map_type::PROG_ARRAY) {
            return Err(MapError::NotSupp);
        }
        Ok(Self {
            c: Common::new(attr, opts),
            is_array,
            template,
            entries: RwLock::new(BTreeMap::new()),
        })
    }

    /// Whether `inner` may be stored (the kernel's `map_meta_equal`).
    pub fn compatible(&self, inner: &dyn Map) -> bool {
        let a = self.template.attr();
        let b = inner.attr();
        let base = a.map_type == b.map_type
            && a.key_size == b.key_size
            && a.value_size == b.value_size
            && a.map_flags == b.map_flags
            && self.template.spin_lock_off() == inner.spin_lock_off();
        let array_like = matches!(a.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY);
        base && (!array_like
            || a.map_flags & mf::BPF_F_INNER_MAP != 0
            || a.max_entries == b.max_entries)
    }

    /// Flags and index checks of an update, before the supervisor resolves the fd.
    pub fn check_update(&self, key: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        if self.is_array {
            if flags != BPF_ANY {
                return Err(MapError::Inval);
            }
            if super::prog_array::index(key) >= self.c.attr.max_entries {
                return Err(MapError::TooBig);
            }
        } else if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(MapError::Inval);
        }
        Ok(())
    }

    /// `BPF_MAP_UPDATE_ELEM` with the resolved inner map; `id` is what userspace
    /// lookups return. EINVAL if the map does not match the template.
    pub fn set(
        &self,
        key: &[u8],
        id: u32,
        inner: Arc<dyn Map>,
        flags: u64,
    ) -> Result<(), MapError> {
        self.check_update(key, flags)?;
        if !self.compatible(&*inner) {
            return Err(MapError::Inval);
        }
        let k = key[..self.c.attr.key_size as usize].to_vec();
        let mut e = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let exists = e.contains_key(&k);
        if !self.is_array {
            if exists && flags == BPF_NOEXIST {
                return Err(MapError::Exist);
            }
            if !exists && flags == BPF_EXIST {
                return Err(MapError::NoEnt);
            }
            if !exists && e.len() >= self.c.attr.max_entries as usize {
                return Err(MapError::TooBig);
            }
        }
        if let Some(old) = e.insert(k, (id, inner)) {
            epoch::pin().defer(move || drop(old));
        }
        Ok(())
    }

    /// The inner map stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Arc<dyn Map>> {
        let e = self.entries.read().unwrap_or_else(|e| e.into_inner());
        e.get(&key[..self.c.attr.key_size as usize])
            .map(|(_, m)| m.clone())
    }

    fn remove(&self, key: &[u8]) -> Result<Entry, MapError> {
        if self.is_array && super::prog_array::index(key) >= self.c.attr.max_entries {
            return Err(MapError::TooBig);
        }
        let mut e = self.entries.write().unwrap_or_else(|e| e.into_inner());
        e.remove(&key[..self.c.attr.key_size as usize])
            .ok_or(MapError::NoEnt)
    }
}

impl Map for MapOfMaps {
    fn attr(&self) -> &MapAttr {
        &self.c.attr
    }
    fn sys_lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        let e = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (id, _) = e
            .get(&key[..self.c.attr.key_size as usize])
            .ok_or(MapError::NoEnt)?;
        value[..4].copy_from_slice(&id.to_ne_bytes());
        Ok(())
    }
    /// Userspace passes a map fd, which only the supervisor can resolve (it calls
    /// [`MapOfMaps::set`]); here: EBADF after the kernel's earlier checks.
    fn sys_update(&self, key: &[u8], _value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.lock_flag_ok(flags)?;
        self.check_update(key, flags)?;
        Err(MapError::BadFd)
    }
    fn sys_delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        let old = self.remove(key)?;
        epoch::pin().defer(move || drop(old));
        Ok(())
    }
    fn sys_get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        if self.is_array {
            return super::prog_array::array_next(self.c.attr.max_entries, key, next);
        }
        let e = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let ks = self.c.attr.key_size as usize;
        let found = key.filter(|k| e.contains_key(&k[..ks]));
        let nk = match found {
            Some(k) => e
                .range::<[u8], _>((
                    std::ops::Bound::Excluded(&k[..ks]),
                    std::ops::Bound::Unbounded,
                ))
                .next(),
            None => e.iter().next(),
        };
        let (k, _) = nk.ok_or(MapError::NoEnt)?;
        next[..ks].copy_from_slice(k);
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
        match self.get(key) {
            Some(m) => ctx.add_map(m),
            None => 0,
        }
    }
    fn prog_update(
        &self,
        _ctx: &mut dyn HelperCtx,
        _key: &[u8],
        _value: &[u8],
        _flags: u64,
    ) -> i64 {
        -(libc::EINVAL as i64)
    }
    fn prog_delete(&self, _ctx: &mut dyn HelperCtx, key: &[u8]) -> i64 {
        // The verifier refuses it for programs; at run time: same effect as userspace.
        match self.remove(key) {
            Ok(old) => {
                epoch::pin().defer(move || drop(old));
                0
            }
            Err(e) => super::neg(e),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
