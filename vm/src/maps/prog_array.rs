//! BPF_MAP_TYPE_PROG_ARRAY (kernel/bpf/arraymap.c, `prog_array_map_ops`): the
//! table of `bpf_tail_call`. Userspace stores program fds, which the supervisor
//! resolves and hands to [`ProgArray::set`]; a lookup from userspace returns the
//! program's id.

use std::sync::{Arc, RwLock};

use super::update_flags::*;
use super::{map_flags as mf, Common, CreateOpts, Map, MapAttr, MapError};
use crate::program::Program;

/// A PROG_ARRAY map.
pub struct ProgArray {
    c: Common,
    slots: FdSlots<(u32, Arc<Program>)>,
    /// The program type (and XDP frags flag) that owns the array: the first program
    /// that uses it or is stored in it (`__bpf_prog_map_compatible`). A tail call
    /// never crosses program types or frags support.
    owner: std::sync::Mutex<Option<(u32, bool)>>,
}

/// `fd_array_map_alloc_check` + `array_map_alloc_check` for the fd arrays.
pub(crate) fn fd_array_check(attr: &MapAttr) -> Result<(), MapError> {
    if attr.value_size != 4 || attr.map_flags & (mf::BPF_F_RDONLY_PROG | mf::BPF_F_WRONLY_PROG) != 0
    {
        return Err(MapError::Inval);
    }
    let mask =
        mf::BPF_F_NUMA_NODE | mf::ACCESS_MASK | mf::BPF_F_PRESERVE_ELEMS | mf::BPF_F_INNER_MAP;
    if attr.max_entries == 0
        || attr.key_size != 4
        || attr.map_flags & !mask != 0
        || !mf::access_ok(attr.map_flags)
        || attr.map_flags & (mf::BPF_F_INNER_MAP | mf::BPF_F_PRESERVE_ELEMS) != 0
    {
        return Err(MapError::Inval);
    }
    Ok(())
}

/// The slots of an fd array (PROG_ARRAY, PERF_EVENT_ARRAY): what userspace stored at
/// each index, replaced and dropped outside the lock (a dropped program or event may
/// take long to free).
pub(crate) struct FdSlots<T>(RwLock<Vec<Option<T>>>);

impl<T: Clone> FdSlots<T> {
    pub(crate) fn new(n: u32) -> Result<Self, MapError> {
        let mut v = Vec::new();
        v.try_reserve_exact(n as usize)
            .map_err(|_| MapError::NoMem)?;
        v.resize(n as usize, None);
        Ok(Self(RwLock::new(v)))
    }
    pub(crate) fn set(&self, idx: u32, x: T) -> Result<(), MapError> {
        let mut s = self.0.write().unwrap_or_else(|e| e.into_inner());
        let slot = s.get_mut(idx as usize).ok_or(MapError::TooBig)?;
        let old = slot.replace(x);
        drop(s);
        drop(old);
        Ok(())
    }
    /// BPF_MAP_DELETE_ELEM: E2BIG past the end, ENOENT for an empty slot.
    pub(crate) fn clear(&self, idx: u32) -> Result<(), MapError> {
        let mut s = self.0.write().unwrap_or_else(|e| e.into_inner());
        let old = s.get_mut(idx as usize).ok_or(MapError::TooBig)?.take();
        drop(s);
        old.map(|_| ()).ok_or(MapError::NoEnt)
    }
    pub(crate) fn clear_all(&self) {
        let mut s = self.0.write().unwrap_or_else(|e| e.into_inner());
        let old: Vec<Option<T>> = s.iter_mut().map(|x| x.take()).collect();
        drop(s);
        drop(old);
    }
    #[inline]
    pub(crate) fn get(&self, idx: u32) -> Option<T> {
        let s = self.0.read().unwrap_or_else(|e| e.into_inner());
        s.get(idx as usize)?.clone()
    }
    pub(crate) fn count(&self) -> usize {
        let s = self.0.read().unwrap_or_else(|e| e.into_inner());
        s.iter().filter(|x| x.is_some()).count()
    }
}

/// The `Map` methods every fd array (PROG_ARRAY, PERF_EVENT_ARRAY) answers alike:
/// expands inside `impl Map for X` where X has `c: Common` and `slots: FdSlots<_>`.
/// Programs never reach `prog_*`: the verifier gives these maps only to their helpers.
macro_rules! fd_array_map_ops {
    () => {
        fn attr(&self) -> &$crate::maps::MapAttr {
            &self.c.attr
        }
        fn sys_delete(&self, key: &[u8]) -> Result<(), $crate::maps::MapError> {
            self.c.sys_write_ok()?;
            self.slots.clear($crate::maps::prog_array::index(key))
        }
        fn sys_get_next_key(
            &self,
            key: Option<&[u8]>,
            next: &mut [u8],
        ) -> Result<(), $crate::maps::MapError> {
            $crate::maps::prog_array::array_next(self.c.attr.max_entries, key, next)
        }
        fn sys_lookup_and_delete(
            &self,
            _key: &[u8],
            _value: &mut [u8],
            flags: u64,
        ) -> Result<(), $crate::maps::MapError> {
            self.c.lookup_and_delete_unsupported(flags)
        }
        fn freeze(&self) -> Result<(), $crate::maps::MapError> {
            self.c.freeze()
        }
        fn frozen(&self) -> bool {
            self.c.frozen()
        }
        fn prog_lookup(&self, _ctx: &mut dyn $crate::run::HelperCtx, _key: &[u8]) -> u64 {
            0
        }
        fn prog_update(
            &self,
            _ctx: &mut dyn $crate::run::HelperCtx,
            _key: &[u8],
            _value: &[u8],
            _flags: u64,
        ) -> i64 {
            -(libc::EINVAL as i64)
        }
        fn prog_delete(&self, _ctx: &mut dyn $crate::run::HelperCtx, _key: &[u8]) -> i64 {
            -(libc::EINVAL as i64)
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn len(&self) -> usize {
            self.slots.count()
        }
    };
}
pub(crate) use fd_array_map_ops;

pub(crate) fn index(key: &[u8]) -> u32 {
    u32::from_ne_bytes(key[..4].try_into().unwrap())
}

/// Array-style `get_next_key`.
pub(crate) fn array_next(max: u32, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
    let n = match key.map(index) {
        Some(i) if i < max => {
            if i == max - 1 {
                return Err(MapError::NoEnt);
            }
            i + 1
        }
        _ => 0,
    };
    next[..4].copy_from_slice(&n.to_ne_bytes());
    Ok(())
}

impl ProgArray {
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        fd_array_check(attr)?;
        Ok(Self {
            c: Common::new(attr, opts),
            slots: FdSlots::new(attr.max_entries)?,
            owner: Default::default(),
        })
    }

    /// `__bpf_prog_map_compatible`: whether a program of `prog_type` (with
    /// `BPF_F_XDP_HAS_FRAGS` or not) may use this array or be stored in it; the first
    /// one asked becomes the owner. The kernel answers EINVAL otherwise (at PROG_LOAD
    /// for a program using the array, at MAP_UPDATE_ELEM for a program stored in it).
    pub fn compatible(&self, prog_type: u32, xdp_frags: bool) -> bool {
        let mut o = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        match *o {
            None => {
                *o = Some((prog_type, xdp_frags));
                true
            }
            Some(owner) => owner == (prog_type, xdp_frags),
        }
    }

    /// `BPF_MAP_UPDATE_ELEM` with a resolved program: `id` is what userspace lookups
    /// return. The supervisor checks the program's type (EINVAL otherwise) first.
    pub fn set(&self, idx: u32, id: u32, prog: Arc<Program>, flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        if flags != BPF_ANY {
            return Err(MapError::Inval);
        }
        self.slots.set(idx, (id, prog))
    }

    /// Check an update before the supervisor resolves the fd (flags, index), so the
    /// errnos come in the kernel's order.
    pub fn check_update(&self, key: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        if flags != BPF_ANY {
            return Err(MapError::Inval);
        }
        if index(key) >= self.c.attr.max_entries {
            return Err(MapError::TooBig);
        }
        Ok(())
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn clear(&self, idx: u32) -> Result<(), MapError> {
        self.slots.clear(idx)
    }

    /// The program at `idx` (what `bpf_tail_call` jumps to).
    #[inline]
    pub fn get(&self, idx: u32) -> Option<Arc<Program>> {
        self.slots.get(idx).map(|(_, p)| p)
    }

    /// Id of the program at `idx`.
    pub fn id(&self, idx: u32) -> Option<u32> {
        self.slots.get(idx).map(|(id, _)| id)
    }

    /// Drop every entry (the kernel clears a prog array when its last user fd closes).
    pub fn clear_all(&self) {
        self.slots.clear_all()
    }
}

impl Map for ProgArray {
    fd_array_map_ops!();
    fn sys_lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        let id = self.id(index(key)).ok_or(MapError::NoEnt)?;
        value[..4].copy_from_slice(&id.to_ne_bytes());
        Ok(())
    }
    /// Userspace passes a program fd, which only the supervisor can resolve: it must
    /// call [`ProgArray::set`] instead. Here the fd cannot be resolved: EBADF.
    fn sys_update(&self, key: &[u8], _value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.lock_flag_ok(flags)?;
        self.check_update(key, flags)?;
        Err(MapError::BadFd)
    }
}
