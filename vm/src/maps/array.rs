//! BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY (kernel/bpf/arraymap.c).
//!
//! All elements are preallocated and zeroed. Values are `roundup(value_size, 8)`
//! apart; with BPF_F_MMAPABLE they live in a memfd named "bpf-map" at offset 0, the
//! kernel's layout, so that a target mmapping the map fd sees the same bytes.
//! Per-CPU arrays keep `possible_cpus()` slots per element; a run uses `ctx.cpu()`'s.
//! Lookups from programs are lock-free (an address computation).

use std::any::Any;
use std::os::fd::BorrowedFd;

use super::batch::{self, BatchOut, BatchReq};
use super::shmem::Shmem;
use super::update_flags::*;
use super::{map_flags as mf, map_type, round8, Common, CreateOpts, Map, MapAttr, MapError};
use crate::mem::Region;
use crate::run::{Fault, HelperCtx};

/// PCPU_MIN_UNIT_SIZE: the largest per-CPU value.
pub(crate) const PCPU_MIN_UNIT_SIZE: usize = 32 << 10;

const CREATE_FLAG_MASK: u32 = mf::BPF_F_NUMA_NODE
    | mf::BPF_F_MMAPABLE
    | mf::ACCESS_MASK
    | mf::BPF_F_PRESERVE_ELEMS
    | mf::BPF_F_INNER_MAP;

/// An ARRAY or PERCPU_ARRAY map.
pub struct ArrayMap {
    c: Common,
    mem: Shmem,
    stride: usize,
    percpu: bool,
    ncpus: usize,
    /// Keys handed to `bpf_for_each_map_elem` callbacks (live as long as the map).
    each_keys: std::sync::OnceLock<Box<[u32]>>,
}

impl ArrayMap {
    /// The kernel's `array_map_alloc_check` + `array_map_alloc`.
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        let percpu = attr.map_type == map_type::PERCPU_ARRAY;
        if attr.max_entries == 0
            || attr.key_size != 4
            || attr.value_size == 0
            || attr.map_flags & !CREATE_FLAG_MASK != 0
            || !mf::access_ok(attr.map_flags)
            || (percpu && attr.map_flags & mf::BPF_F_NUMA_NODE != 0)
        {
            return Err(MapError::Inval);
        }
        if attr.map_type != map_type::ARRAY
            && attr.map_flags & (mf::BPF_F_MMAPABLE | mf::BPF_F_INNER_MAP) != 0
        {
            return Err(MapError::Inval);
        }
        if attr.map_flags & mf::BPF_F_PRESERVE_ELEMS != 0 {
            return Err(MapError::Inval);
        }
        if attr.value_size > i32::MAX as u32 {
            return Err(MapError::TooBig);
        }
        let stride = round8(attr.value_size as usize);
        if percpu && stride > PCPU_MIN_UNIT_SIZE {
            return Err(MapError::TooBig);
        }
        let ncpus = if percpu { super::possible_cpus() } else { 1 };
        let bytes = (attr.max_entries as u64)
            .checked_mul(stride as u64)
            .and_then(|b| b.checked_mul(ncpus as u64))
            .ok_or(MapError::NoMem)?;
        if bytes > super::shmem::total_ram() {
            return Err(MapError::NoMem);
        }
        let mem = if attr.map_flags & mf::BPF_F_MMAPABLE != 0 {
            Shmem::memfd("bpf-map", bytes as usize)?
        } else {
            Shmem::heap(bytes as usize)?
        };
        Ok(Self {
            c: Common::new(attr, opts),
            mem,
            stride,
            percpu,
            ncpus,
            each_keys: Default::default(),
        })
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        let i = u32::from_ne_bytes(key.get(..4)?.try_into().ok()?);
        (i < self.c.attr.max_entries).then_some(i as usize)
    }

    #[inline]
    fn off(&self, idx: usize, cpu: usize) -> usize {
        (idx * self.ncpus + cpu) * self.stride
    }

    fn slot_of(&self, ctx: &dyn HelperCtx) -> usize {
        if self.percpu {
            ctx.cpu() as usize % self.ncpus
        } else {
            0
        }
    }

    /// Shared update path (syscall and program): flags, bounds, copy.
    fn update(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        cpu: Option<usize>,
    ) -> Result<(), MapError> {
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(MapError::Inval);
        }
        let idx = self.index(key).ok_or(MapError::TooBig)?;
        if flags & BPF_NOEXIST != 0 {
            return Err(MapError::Exist);
        }
        self.c.lock_flag_ok(flags)?;
        let vs = self.c.attr.value_size as usize;
        match cpu {
            Some(c) => self.write_one(self.off(idx, c), &value[..vs], flags),
            None if self.percpu => {
                // The kernel's copy_map_value_long: whole 8-byte rounded slots.
                for c in 0..self.ncpus {
                    let src = &value[c * self.stride..(c + 1) * self.stride];
                    self.mem.write(self.off(idx, c), src);
                }
            }
            None => self.write_one(self.off(idx, 0), &value[..vs], flags),
        }
        Ok(())
    }

    fn write_one(&self, off: usize, value: &[u8], flags: u64) {
        let lock = self.c.spin_lock_off;
        match lock {
            Some(l) if flags & BPF_F_LOCK != 0 => {
                super::with_value_lock(&self.mem, off + l as usize, || {
                    super::copy_value_skip_lock(&self.mem, off, value, lock)
                })
            }
            _ => super::copy_value_skip_lock(&self.mem, off, value, lock),
        }
    }

    /// Addresses of the (this CPU's) value of element `idx`, for for_each.
    fn value_addr(&self, idx: usize, cpu: usize) -> u64 {
        self.mem.addr(self.off(idx, cpu))
    }
}

impl Map for ArrayMap {
    fn attr(&self) -> &MapAttr {
        &self.c.attr
    }
    fn sys_value_size(&self) -> usize {
        if self.percpu {
            self.stride * self.ncpus
        } else {
            self.c.attr.value_size as usize
        }
    }
    fn sys_lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        let idx = self.index(key).ok_or(MapError::NoEnt)?;
        let vs = self.c.attr.value_size as usize;
        if self.percpu {
            for c in 0..self.ncpus {
                self.mem.read(
                    self.off(idx, c),
                    &mut value[c * self.stride..(c + 1) * self.stride],
                );
            }
        } else {
            let off = self.off(idx, 0);
            let lock = self.c.spin_lock_off;
            match lock {
                Some(l) if flags & BPF_F_LOCK != 0 => {
                    super::with_value_lock(&self.mem, off + l as usize, || {
                        super::read_value_skip_lock(&self.mem, off, &mut value[..vs], lock)
                    })
                }
                _ => super::read_value_skip_lock(&self.mem, off, &mut value[..vs], lock),
            }
        }
        Ok(())
    }
    fn sys_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        self.c.lock_flag_ok(flags)?;
        self.update(key, value, flags, None)
    }
    fn sys_delete(&self, _key: &[u8]) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        Err(MapError::Inval)
    }
    fn sys_get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        let max = self.c.attr.max_entries;
        let n = match key.map(|k| u32::from_ne_bytes(k[..4].try_into().unwrap())) {
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
    #[inline]
    fn prog_lookup(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> u64 {
        let Some(idx) = self.index(key) else { return 0 };
        let addr = self.value_addr(idx, self.slot_of(ctx));
        ctx.add_region(Region::new(
            addr,
            self.c.attr.value_size as u64,
            self.c.prog_writable(),
        ));
        addr
    }
    fn prog_update(&self, ctx: &mut dyn HelperCtx, key: &[u8], value: &[u8], flags: u64) -> i64 {
        if !self.c.prog_writable() {
            return -(libc::EPERM as i64);
        }
        let cpu = self.slot_of(ctx);
        match self.update(key, value, flags, Some(cpu)) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn prog_delete(&self, _ctx: &mut dyn HelperCtx, _key: &[u8]) -> i64 {
        -(libc::EINVAL as i64)
    }
    fn prog_for_each(
        &self,
        ctx: &mut dyn HelperCtx,
        f: &mut super::ForEachFn<'_>,
    ) -> Result<i64, Fault> {
        let cpu = self.slot_of(ctx);
        let mut n = 0i64;
        let keys = self
            .each_keys
            .get_or_init(|| (0..self.c.attr.max_entries).collect());
        for idx in 0..self.c.attr.max_entries as usize {
            let kaddr = &keys[idx] as *const u32 as u64;
            ctx.add_region(Region::new(kaddr, 4, false));
            let vaddr = self.value_addr(idx, cpu);
            ctx.add_region(Region::new(
                vaddr,
                self.c.attr.value_size as u64,
                self.c.prog_writable(),
            ));
            n += 1;
            if f(ctx, kaddr, vaddr)? != 0 {
                break;
            }
        }
        Ok(n)
    }
    fn array_layout(&self) -> Option<super::ArrayLayout> {
        Some(super::ArrayLayout {
            base: self.mem.addr(0),
            stride: self.stride as u64,
            ncpus: self.ncpus as u32,
            max_entries: self.c.attr.max_entries,
            value_size: self.c.attr.value_size,
            writable: self.c.prog_writable(),
        })
    }
    fn direct_value(&self) -> Option<Region> {
        // array_map_direct_value_addr: only single-element, non-per-CPU arrays.
        (!self.percpu && self.c.attr.max_entries == 1).then(|| {
            Region::new(
                self.mem.addr(0),
                self.c.attr.value_size as u64,
                self.c.prog_writable(),
            )
        })
    }
    fn mmap_fd(&self) -> Option<BorrowedFd<'_>> {
        self.mem.fd()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn spin_lock_off(&self) -> Option<u32> {
        self.c.spin_lock_off
    }
    fn sys_lookup_batch(&self, req: &BatchReq<'_>, delete: bool) -> BatchOut {
        batch::generic_lookup_checked(self, &self.c, req, delete)
    }
    fn sys_update_batch(&self, req: &BatchReq<'_>) -> BatchOut {
        batch::generic_update_checked(self, &self.c, req)
    }
    fn sys_delete_batch(&self, req: &BatchReq<'_>) -> BatchOut {
        batch::generic_delete_checked(self, &self.c, req, false)
    }
    fn len(&self) -> usize {
        self.c.attr.max_entries as usize
    }
}
