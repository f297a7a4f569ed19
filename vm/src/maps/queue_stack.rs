//! BPF_MAP_TYPE_QUEUE and BPF_MAP_TYPE_STACK (kernel/bpf/queue_stack_maps.c):
//! no keys; push (update / `bpf_map_push_elem`), pop (lookup_and_delete /
//! `bpf_map_pop_elem`), peek (lookup / `bpf_map_peek_elem`).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Mutex;

use super::update_flags::*;
use super::{map_flags as mf, map_type, Common, CreateOpts, Map, MapAttr, MapError};
use crate::run::HelperCtx;

/// A QUEUE or STACK map.
pub struct QueueStack {
    c: Common,
    stack: bool,
    q: Mutex<VecDeque<Box<[u8]>>>,
}

impl QueueStack {
    /// The kernel's `queue_stack_map_alloc_check`.
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        if attr.max_entries == 0
            || attr.key_size != 0
            || attr.value_size == 0
            || attr.map_flags & !(mf::BPF_F_NUMA_NODE | mf::ACCESS_MASK) != 0
            || !mf::access_ok(attr.map_flags)
        {
            return Err(MapError::Inval);
        }
        if attr.value_size as u64 > (1 << 22) {
            return Err(MapError::TooBig);
        }
        let bytes = (attr.max_entries as u64 + 1) * attr.value_size as u64;
        if bytes > super::shmem::total_ram() {
            return Err(MapError::NoMem);
        }
        Ok(Self {
            c: Common::new(attr, opts),
            stack: attr.map_type == map_type::STACK,
            q: Mutex::new(VecDeque::new()),
        })
    }

    fn push(&self, value: &[u8], flags: u64) -> Result<(), MapError> {
        if flags & BPF_NOEXIST != 0 || flags > BPF_EXIST {
            return Err(MapError::Inval);
        }
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= self.c.attr.max_entries as usize {
            if flags & BPF_EXIST == 0 {
                return Err(MapError::TooBig);
            }
            // Overwrite the oldest element.
            q.pop_front();
        }
        q.push_back(value[..self.c.attr.value_size as usize].into());
        Ok(())
    }

    fn pop(&self, out: &mut [u8], delete: bool) -> Result<(), MapError> {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        let v = if self.stack { q.back() } else { q.front() }.ok_or(MapError::NoEnt)?;
        out[..v.len()].copy_from_slice(v);
        if delete {
            if self.stack {
                q.pop_back();
            } else {
                q.pop_front();
            }
        }
        Ok(())
    }
}

impl Map for QueueStack {
    fn attr(&self) -> &MapAttr {
        &self.c.attr
    }
    fn sys_lookup(&self, _key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        self.pop(value, false)
    }
    fn sys_update(&self, _key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        self.c.lock_flag_ok(flags)?;
        self.push(value, flags)
    }
    fn sys_delete(&self, _key: &[u8]) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        Err(MapError::Inval)
    }
    fn sys_get_next_key(&self, _key: Option<&[u8]>, _next: &mut [u8]) -> Result<(), MapError> {
        Err(MapError::Inval)
    }
    fn sys_lookup_and_delete(
        &self,
        _key: &[u8],
        value: &mut [u8],
        flags: u64,
    ) -> Result<(), MapError> {
        if flags & !BPF_F_LOCK != 0 {
            return Err(MapError::Inval);
        }
        self.c.sys_write_ok()?;
        if flags != 0 {
            return Err(MapError::Inval);
        }
        self.pop(value, true)
    }
    fn freeze(&self) -> Result<(), MapError> {
        self.c.freeze()
    }
    fn frozen(&self) -> bool {
        self.c.frozen()
    }
    fn prog_lookup(&self, _ctx: &mut dyn HelperCtx, _key: &[u8]) -> u64 {
        0
    }
    fn prog_update(&self, _ctx: &mut dyn HelperCtx, _key: &[u8], value: &[u8], flags: u64) -> i64 {
        match self.push(value, flags) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn prog_delete(&self, _ctx: &mut dyn HelperCtx, _key: &[u8]) -> i64 {
        -(libc::EINVAL as i64)
    }
    fn prog_push(&self, _ctx: &mut dyn HelperCtx, value: &[u8], flags: u64) -> i64 {
        match self.push(value, flags) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn prog_pop(&self, _ctx: &mut dyn HelperCtx, value: &mut [u8], delete: bool) -> i64 {
        match self.pop(value, delete) {
            Ok(()) => 0,
            Err(e) => super::neg(e),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn len(&self) -> usize {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
