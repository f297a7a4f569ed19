//! Map types with the kernel's semantics. One module per map type (as the kernel's
//! `bpf_map_ops`), all behind the [`Map`] trait; [`create`] is the registry keyed by
//! map type that `BPF_MAP_CREATE` calls.
//!
//! Two sides use a map:
//! - userspace (the supervisor answering `bpf()`): the `sys_*` methods, with the
//!   kernel's errnos as [`MapError`];
//! - programs (helpers during a run): the `prog_*` methods, which return what the
//!   helper returns (a pointer or 0, 0 or a negative errno) and never block.

use std::any::Any;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use crate::run::HelperCtx;

pub mod array;
pub mod batch;
pub mod devmap;
pub mod hash;
pub mod lpm_trie;
pub mod map_in_map;
pub mod perf_event_array;
pub mod prog_array;
pub mod queue_stack;
pub mod reserve;
pub mod ringbuf;
pub mod shmem;

pub use batch::BatchOut;

/// Update flags (`BPF_ANY`...).
pub mod update_flags {
    pub const BPF_ANY: u64 = 0;
    pub const BPF_NOEXIST: u64 = 1;
    pub const BPF_EXIST: u64 = 2;
    pub const BPF_F_LOCK: u64 = 4;
}

/// `enum bpf_map_type` values the project knows by name.
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const LPM_TRIE: u32 = 11;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const DEVMAP: u32 = 14;
    pub const XSKMAP: u32 = 17;
    pub const DEVMAP_HASH: u32 = 25;
    pub const QUEUE: u32 = 22;
    pub const STACK: u32 = 23;
    pub const RINGBUF: u32 = 27;
}

/// `map_flags` bits.
pub mod map_flags {
    pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
    pub const BPF_F_RDONLY: u32 = 1 << 3;
    pub const BPF_F_WRONLY: u32 = 1 << 4;
    pub const BPF_F_MMAPABLE: u32 = 1 << 10;
    pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
    pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
    pub const BPF_F_NUMA_NODE: u32 = 1 << 2;
    pub const BPF_F_STACK_BUILD_ID: u32 = 1 << 5;
    pub const BPF_F_ZERO_SEED: u32 = 1 << 6;
    pub const BPF_F_CLONE: u32 = 1 << 9;
    pub const BPF_F_PRESERVE_ELEMS: u32 = 1 << 11;
    pub const BPF_F_INNER_MAP: u32 = 1 << 12;
    pub const BPF_F_LINK: u32 = 1 << 13;
    pub const BPF_F_PATH_FD: u32 = 1 << 14;
    pub const BPF_F_VTYPE_BTF_OBJ_FD: u32 = 1 << 15;
    pub const BPF_F_TOKEN_FD: u32 = 1 << 16;
    pub const BPF_F_SEGV_ON_FAULT: u32 = 1 << 17;
    pub const BPF_F_NO_USER_CONV: u32 = 1 << 18;
    /// `BPF_F_ACCESS_MASK`: RDONLY | WRONLY | RDONLY_PROG | WRONLY_PROG.
    pub const ACCESS_MASK: u32 =
        BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG;

    /// The kernel's `bpf_map_flags_access_ok`: at most one of RDONLY/WRONLY and one of
    /// RDONLY_PROG/WRONLY_PROG.
    pub fn access_ok(f: u32) -> bool {
        (f & (BPF_F_RDONLY | BPF_F_WRONLY)) != (BPF_F_RDONLY | BPF_F_WRONLY)
            && (f & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG))
                != (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)
    }
}

/// What `BPF_MAP_CREATE` asked for (already validated for attr-size rules by the
/// supervisor; the map type validates the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub numa_node: u32,
    pub name: String,
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// A map operation's failure, as the kernel's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("invalid argument")]
    Inval,
    #[error("no such element")]
    NoEnt,
    #[error("element exists")]
    Exist,
    #[error("map is full / index out of range")]
    TooBig,
    #[error("not permitted (frozen or read-only)")]
    Perm,
    #[error("out of memory")]
    NoMem,
    #[error("busy")]
    Busy,
    #[error("operation not supported (EOPNOTSUPP)")]
    OpNotSupp,
    #[error("operation not supported (ENOTSUPP 524)")]
    NotSupp,
    #[error("bad file descriptor")]
    BadFd,
    #[error("errno {0}")]
    Errno(i32),
}

impl MapError {
    /// The positive errno the kernel would return.
    pub fn errno(self) -> i32 {
        match self {
            MapError::Inval => libc::EINVAL,
            MapError::NoEnt => libc::ENOENT,
            MapError::Exist => libc::EEXIST,
            MapError::TooBig => libc::E2BIG,
            MapError::Perm => libc::EPERM,
            MapError::NoMem => libc::ENOMEM,
            MapError::Busy => libc::EBUSY,
            MapError::OpNotSupp => libc::EOPNOTSUPP,
            MapError::NotSupp => 524,
            MapError::BadFd => libc::EBADF,
            MapError::Errno(e) => e,
        }
    }
}

/// A map, as the kernel's `struct bpf_map` + `bpf_map_ops`.
///
/// The values of an ARRAY or PERCPU_ARRAY: element `i` of CPU slot `c` is at
/// `base + (i * ncpus + c) * stride`, `value_size` bytes. Values never move or get
/// freed while the map lives, so a program holding the map may touch any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayLayout {
    pub base: u64,
    pub stride: u64,
    /// CPU slots per element (1 for ARRAY).
    pub ncpus: u32,
    pub max_entries: u32,
    pub value_size: u32,
    /// Programs may write the values (not BPF_F_RDONLY_PROG).
    pub writable: bool,
}

impl ArrayLayout {
    /// `bpf_map_lookup_elem(key = idx)` on CPU `cpu`: the value's address or 0.
    #[inline(always)]
    pub fn lookup(&self, idx: u32, cpu: u32) -> u64 {
        if idx >= self.max_entries {
            return 0;
        }
        let slot = if self.ncpus > 1 { cpu % self.ncpus } else { 0 };
        self.base + (idx as u64 * self.ncpus as u64 + slot as u64) * self.stride
    }

    /// The value (as a region) holding `[addr, addr+len)`, if one does entirely.
    pub fn element(&self, addr: u64, len: u64, write: bool) -> Option<crate::mem::Region> {
        if write && !self.writable {
            return None;
        }
        let o = addr.wrapping_sub(self.base);
        let total = self.max_entries as u64 * self.ncpus as u64 * self.stride;
        if o >= total {
            return None;
        }
        let start = o - o % self.stride;
        let r = crate::mem::Region::new(self.base + start, self.value_size as u64, self.writable);
        r.contains(addr, len, write).then_some(r)
    }
}

/// Implementations are shared between data-plane workers (programs) and the
/// control plane (syscalls) at once: they must be `Send + Sync`, never block a
/// program, and reclaim element memory a program may hold with epochs.
pub trait Map: Send + Sync + 'static {
    /// The creation attributes (type, sizes, flags, name...).
    fn attr(&self) -> &MapAttr;

    /// Size of the value as userspace sees it (per-CPU maps: roundup(value_size, 8) * ncpus).
    fn sys_value_size(&self) -> usize {
        self.attr().value_size as usize
    }
    /// `BPF_MAP_LOOKUP_ELEM` (`value` is `sys_value_size()` bytes).
    fn sys_lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), MapError>;
    /// `BPF_MAP_UPDATE_ELEM`.
    fn sys_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError>;
    /// `BPF_MAP_DELETE_ELEM`.
    fn sys_delete(&self, key: &[u8]) -> Result<(), MapError>;
    /// `BPF_MAP_GET_NEXT_KEY` (`key == None`: the first key).
    fn sys_get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError>;
    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM`.
    fn sys_lookup_and_delete(
        &self,
        _key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Result<(), MapError> {
        Err(MapError::NotSupp)
    }
    /// `BPF_MAP_FREEZE`.
    fn freeze(&self) -> Result<(), MapError>;
    /// Whether the map has been frozen.
    fn frozen(&self) -> bool;

    /// `bpf_map_lookup_elem` from a program: the address of the value (made
    /// accessible with `ctx.add_region`) or 0.
    fn prog_lookup(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> u64;
    /// `bpf_map_update_elem` from a program: 0 or a negative errno.
    fn prog_update(&self, ctx: &mut dyn HelperCtx, key: &[u8], value: &[u8], flags: u64) -> i64;
    /// `bpf_map_delete_elem` from a program: 0 or a negative errno.
    fn prog_delete(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> i64;

    /// For `ld_imm64 MAP_VALUE` (global data): the memory of the single value of an
    /// ARRAY with max_entries 1, as a writable (or read-only for RDONLY_PROG) region.
    fn direct_value(&self) -> Option<crate::mem::Region> {
        None
    }
    /// The memfd holding the map's data when userspace may mmap it (BPF_F_MMAPABLE
    /// arrays, ring buffers): the supervisor hands this fd (or a dup) to the target.
    fn mmap_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Downcasting for type-specific operations (PROG_ARRAY, map-in-map, DEVMAP).
    fn as_any(&self) -> &dyn Any;
    /// Where the values of an array live, so that a program's lookup can be an
    /// address computation (the kernel's `map_gen_lookup`); `None` for other maps.
    fn array_layout(&self) -> Option<ArrayLayout> {
        None
    }
    /// Memory holding every value a program may be handed by a lookup, laid out as
    /// an array's (arrays; preallocated hash maps: their slab of elements), valid
    /// while the map lives. Programs referencing the map may touch any value in it.
    fn value_area(&self) -> Option<ArrayLayout> {
        self.array_layout()
    }
    /// `bpf_map_lookup_elem` on a map of the running program (so `value_area` is a
    /// region of the run): like `prog_lookup`, but values inside the value area are
    /// not registered one by one.
    fn prog_lookup_own(&self, ctx: &mut dyn HelperCtx, key: &[u8]) -> u64 {
        self.prog_lookup(ctx, key)
    }

    /// Offset of the `struct bpf_spin_lock` in the value, if the value has one
    /// (from BTF, given at creation in [`CreateOpts`]). `BPF_F_LOCK` needs it.
    fn spin_lock_off(&self) -> Option<u32> {
        None
    }
    /// `bpf_map_push_elem` from a program (QUEUE/STACK): 0 or a negative errno.
    fn prog_push(&self, _ctx: &mut dyn HelperCtx, _value: &[u8], _flags: u64) -> i64 {
        -(libc::EINVAL as i64)
    }
    /// `bpf_map_pop_elem` / `bpf_map_peek_elem` from a program: fills `value`.
    fn prog_pop(&self, _ctx: &mut dyn HelperCtx, _value: &mut [u8], _delete: bool) -> i64 {
        -(libc::EINVAL as i64)
    }
    /// `bpf_for_each_map_elem`: calls `f(key address, value address)` for each element
    /// (stopping when it returns non-zero); returns the number of elements visited, or
    /// a negative errno if the map type does not support it.
    fn prog_for_each(
        &self,
        _ctx: &mut dyn HelperCtx,
        _f: &mut ForEachFn<'_>,
    ) -> Result<i64, crate::run::Fault> {
        Ok(-(libc::EINVAL as i64))
    }
    /// `BPF_MAP_LOOKUP_BATCH` / `BPF_MAP_LOOKUP_AND_DELETE_BATCH` (see [`batch`]).
    fn sys_lookup_batch(&self, _req: &batch::BatchReq<'_>, _delete: bool) -> BatchOut {
        BatchOut::err(MapError::NotSupp)
    }
    /// `BPF_MAP_UPDATE_BATCH`.
    fn sys_update_batch(&self, _req: &batch::BatchReq<'_>) -> BatchOut {
        BatchOut::err(MapError::NotSupp)
    }
    /// `BPF_MAP_DELETE_BATCH`.
    fn sys_delete_batch(&self, _req: &batch::BatchReq<'_>) -> BatchOut {
        BatchOut::err(MapError::NotSupp)
    }
    /// Number of elements (for `bpftool`-like listings and memory checks).
    fn len(&self) -> usize {
        0
    }
    /// Whether the map holds no element.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The callback of [`Map::prog_for_each`]: `(ctx, key address, value address)` ->
/// the BPF callback's return value (non-zero stops).
pub type ForEachFn<'a> =
    dyn FnMut(&mut dyn HelperCtx, u64, u64) -> Result<u64, crate::run::Fault> + 'a;

/// What `BPF_MAP_CREATE` needs beyond the attributes, resolved by the supervisor.
#[derive(Default, Clone)]
pub struct CreateOpts {
    /// The map behind `inner_map_fd` (ARRAY_OF_MAPS / HASH_OF_MAPS template).
    pub inner_map: Option<Arc<dyn Map>>,
    /// Offset of a `struct bpf_spin_lock` in the value (from the value's BTF).
    pub spin_lock_off: Option<u32>,
}

/// State every map type shares: attributes, freeze, the spin-lock offset.
pub(crate) struct Common {
    pub attr: MapAttr,
    pub frozen: std::sync::atomic::AtomicBool,
    pub freeze_lock: std::sync::Mutex<()>,
    pub spin_lock_off: Option<u32>,
}

impl Common {
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Self {
        Self {
            attr: attr.clone(),
            frozen: Default::default(),
            freeze_lock: Default::default(),
            spin_lock_off: opts.spin_lock_off,
        }
    }
    /// The map's part of the kernel's `map_get_sys_perms(...) & FMODE_CAN_WRITE`: a
    /// frozen map is read-only for every fd. (BPF_F_RDONLY/WRONLY at creation only
    /// set the mode of the creating fd; fds are the supervisor's to check.)
    pub fn sys_write_ok(&self) -> Result<(), MapError> {
        if self.frozen() {
            return Err(MapError::Perm);
        }
        Ok(())
    }
    /// Lookup flags: only `BPF_F_LOCK`, and only with a spin lock in the value.
    pub fn lookup_flags_ok(&self, flags: u64) -> Result<(), MapError> {
        if flags & !update_flags::BPF_F_LOCK != 0 {
            return Err(MapError::Inval);
        }
        self.lock_flag_ok(flags)
    }
    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` on a type without it: the kernel's
    /// generic checks (flags, access modes, lock) come first, then ENOTSUPP.
    pub fn lookup_and_delete_unsupported(&self, flags: u64) -> Result<(), MapError> {
        if flags & !update_flags::BPF_F_LOCK != 0 {
            return Err(MapError::Inval);
        }
        self.sys_write_ok()?;
        self.lock_flag_ok(flags)?;
        Err(MapError::NotSupp)
    }
    /// `BPF_F_LOCK` needs a spin lock in the value.
    pub fn lock_flag_ok(&self, flags: u64) -> Result<(), MapError> {
        if flags & update_flags::BPF_F_LOCK != 0 && self.spin_lock_off.is_none() {
            return Err(MapError::Inval);
        }
        Ok(())
    }
    pub fn frozen(&self) -> bool {
        self.frozen.load(std::sync::atomic::Ordering::Acquire)
    }
    /// `BPF_MAP_FREEZE` (the kernel's `map_freeze`).
    pub fn freeze(&self) -> Result<(), MapError> {
        if self.spin_lock_off.is_some() {
            return Err(MapError::NotSupp);
        }
        self.sys_write_ok()?;
        let _g = self.freeze_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.frozen() {
            return Err(MapError::Busy);
        }
        self.frozen
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
    /// Whether programs may write values (not BPF_F_RDONLY_PROG).
    pub fn prog_writable(&self) -> bool {
        self.attr.map_flags & map_flags::BPF_F_RDONLY_PROG == 0
    }
}

/// Round `v` up to a multiple of 8.
#[inline]
pub(crate) fn round8(v: usize) -> usize {
    (v + 7) & !7
}

/// Negative errno as a helper's return value.
#[inline]
pub(crate) fn neg(e: MapError) -> i64 {
    -(e.errno() as i64)
}

/// Copy `value` into `dst` skipping the 4-byte spin lock at `lock_off`
/// (the kernel's `copy_map_value` with a `bpf_spin_lock` field).
pub(crate) fn copy_value_skip_lock(
    mem: &shmem::Shmem,
    off: usize,
    value: &[u8],
    lock_off: Option<u32>,
) {
    match lock_off {
        Some(l) if (l as usize) + 4 <= value.len() => {
            let l = l as usize;
            mem.write(off, &value[..l]);
            mem.write(off + l + 4, &value[l + 4..]);
        }
        _ => mem.write(off, value),
    }
}

/// Read a value out, leaving the spin lock word as zero (as the kernel does).
pub(crate) fn read_value_skip_lock(
    mem: &shmem::Shmem,
    off: usize,
    out: &mut [u8],
    lock_off: Option<u32>,
) {
    mem.read(off, out);
    if let Some(l) = lock_off {
        let l = l as usize;
        if l + 4 <= out.len() {
            out[l..l + 4].fill(0);
        }
    }
}

/// Run `f` holding the value's `bpf_spin_lock` at `lock_off` (BPF_F_LOCK).
pub(crate) fn with_value_lock<R>(mem: &shmem::Shmem, lock_off: usize, f: impl FnOnce() -> R) -> R {
    let w = mem.u32_at(lock_off);
    // A program holds a lock only within its run (a run that ends, even by a fault,
    // gives it back), so this ends.
    while !spin_lock(w, std::time::Duration::from_secs(1)) {}
    let r = f();
    w.store(0, std::sync::atomic::Ordering::Release);
    r
}

/// Acquire a `bpf_spin_lock` word; `false` when it stayed taken for `max` (a holder
/// that never gives it back must not hang the caller).
pub(crate) fn spin_lock(w: &std::sync::atomic::AtomicU32, max: std::time::Duration) -> bool {
    use std::sync::atomic::Ordering;
    let mut spins = 0u32;
    let mut since: Option<std::time::Instant> = None;
    while w
        .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins > 1000 {
            let t0 = *since.get_or_insert_with(std::time::Instant::now);
            if t0.elapsed() >= max {
                return false;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    true
}

/// Releases the lock word at `addr`, taken by [`spin_lock`] in a run that still holds
/// the memory alive (its maps).
pub(crate) fn spin_unlock_addr(addr: u64) {
    // SAFETY: `addr` is the 4-byte aligned lock word a helper of the running program
    // checked and locked; the program's maps (and so the value) outlive the run.
    let w = unsafe { &*(addr as *const std::sync::atomic::AtomicU32) };
    w.store(0, std::sync::atomic::Ordering::Release);
}

/// The handle a program register holds for `map` (`ld_imm64 MAP_FD`): the address
/// of the map object. It is only ever compared, never dereferenced from BPF.
pub fn map_handle(map: &Arc<dyn Map>) -> u64 {
    Arc::as_ptr(map) as *const () as u64
}

/// Number of possible CPUs (/sys/devices/system/cpu/possible), the number of
/// per-CPU slots.
pub fn possible_cpus() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .unwrap_or(1)
    })
}

fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let hi = match part.split_once('-') {
            Some((_, hi)) => hi.parse::<usize>().ok()?,
            None => part.parse::<usize>().ok()?,
        };
        max = Some(max.map_or(hi, |m: usize| m.max(hi)));
    }
    max.map(|m| m + 1)
}

/// `BPF_MAP_CREATE`: build a map of the requested type, or the kernel's errno
/// (EINVAL for unknown/unsupported types and bad attributes, ENOMEM when it
/// cannot be allocated).
pub fn create(attr: &MapAttr) -> Result<Arc<dyn Map>, MapError> {
    create_with(attr, CreateOpts::default())
}

/// `BPF_MAP_CREATE` with what the supervisor resolved from fds and BTF.
///
/// Kernel answers mirrored here: an unknown type is EINVAL; known types bpftime
/// does not implement (PERF_EVENT_ARRAY, XSKMAP, SOCKMAP, ...) are EINVAL too, with
/// a log line (the kernel itself answers EINVAL when a type is compiled out).
pub fn create_with(attr: &MapAttr, opts: CreateOpts) -> Result<Arc<dyn Map>, MapError> {
    use map_type::*;
    if !map_flags::access_ok(attr.map_flags) {
        return Err(MapError::Inval);
    }
    // map_create: map_extra only for BLOOM_FILTER/ARENA; NUMA node must exist (node 0 here).
    if attr.map_extra != 0 {
        return Err(MapError::Inval);
    }
    if attr.map_flags & map_flags::BPF_F_NUMA_NODE != 0 && attr.numa_node != 0 {
        return Err(MapError::Inval);
    }
    if let Some(off) = opts.spin_lock_off {
        if off % 4 != 0 || off as u64 + 4 > attr.value_size as u64 {
            return Err(MapError::Inval);
        }
        // The kernel's map_check_btf: bpf_spin_lock only in HASH and ARRAY values.
        if !matches!(attr.map_type, HASH | ARRAY) {
            return Err(MapError::OpNotSupp);
        }
    }
    let m: Arc<dyn Map> = match attr.map_type {
        ARRAY | PERCPU_ARRAY => Arc::new(array::ArrayMap::new(attr, &opts)?),
        HASH | PERCPU_HASH | LRU_HASH | LRU_PERCPU_HASH => {
            Arc::new(hash::HashMap::new(attr, &opts)?)
        }
        LPM_TRIE => Arc::new(lpm_trie::LpmTrie::new(attr, &opts)?),
        ARRAY_OF_MAPS | HASH_OF_MAPS => Arc::new(map_in_map::MapOfMaps::new(attr, &opts)?),
        PROG_ARRAY => Arc::new(prog_array::ProgArray::new(attr, &opts)?),
        DEVMAP | DEVMAP_HASH => Arc::new(devmap::DevMap::new(attr, &opts)?),
        RINGBUF => ringbuf::RingBuf::new(attr, &opts)?,
        PERF_EVENT_ARRAY => Arc::new(perf_event_array::PerfEventArray::new(attr, &opts)?),
        QUEUE | STACK => Arc::new(queue_stack::QueueStack::new(attr, &opts)?),
        other => {
            tracing::warn!(
                map_type = other,
                "map type not supported by bpftime: EINVAL"
            );
            return Err(MapError::Inval);
        }
    };
    Ok(m)
}

#[cfg(test)]
pub(crate) mod unit_tests;

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_list() {
        assert_eq!(super::parse_cpu_list("0-3"), Some(4));
        assert_eq!(super::parse_cpu_list("0"), Some(1));
        assert_eq!(super::parse_cpu_list("0-1,4-7"), Some(8));
    }
}
