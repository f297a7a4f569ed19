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
    let _ = attr;
    Err(MapError::Inval)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_list() {
        assert_eq!(super::parse_cpu_list("0-3"), Some(4));
        assert_eq!(super::parse_cpu_list("0"), Some(1));
        assert_eq!(super::parse_cpu_list("0-1,4-7"), Some(8));
    }
}
