//! The four batch commands (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_LOOKUP_AND_DELETE_BATCH`,
//! `BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH`) with the kernel's semantics
//! (kernel/bpf/syscall.c `generic_map_*_batch`; hash maps have their own bucket-wise
//! lookup in hash.rs as kernel/bpf/hashtab.c does).
//!
//! The supervisor copies the caller's buffers in ([`BatchReq`]), calls the map's
//! `sys_*_batch` method, then copies out what [`BatchOut`] says the kernel writes
//! back, and returns `result`'s errno.

use super::{Map, MapError};

/// The input of a batch command, already copied out of the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchReq<'a> {
    /// `in_batch` (None when the pointer was NULL): for lookups, where to resume
    /// (`batch_token_size()` bytes).
    pub in_batch: Option<&'a [u8]>,
    /// `count` as given.
    pub count: u32,
    /// `keys` (update/delete: `count * key_size` bytes).
    pub keys: &'a [u8],
    /// `values` (update: `count * sys_value_size()` bytes).
    pub values: &'a [u8],
    pub elem_flags: u64,
    pub flags: u64,
}

/// What a batch command writes back to the caller, and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOut {
    /// The command's result (the errno to return). Note the kernel returns ENOENT
    /// at the end of a lookup batch *and* writes keys/values/count.
    pub result: Result<(), MapError>,
    /// Value to store in `attr->batch.count`, if the kernel writes it.
    pub count: Option<u32>,
    /// Bytes to store at `out_batch`, if the kernel writes them.
    pub out_batch: Option<Vec<u8>>,
    /// Keys to copy to `keys` (lookups).
    pub keys: Vec<u8>,
    /// Values to copy to `values` (lookups).
    pub values: Vec<u8>,
}

impl Default for BatchOut {
    fn default() -> Self {
        Self {
            result: Ok(()),
            count: None,
            out_batch: None,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl BatchOut {
    /// A failure before anything is written back.
    pub fn err(e: MapError) -> Self {
        Self {
            result: Err(e),
            ..Default::default()
        }
    }
    fn ok_empty() -> Self {
        Self {
            result: Ok(()),
            ..Default::default()
        }
    }
}

/// Number of times the generic lookup retries a key that vanished in between.
const MAP_LOOKUP_RETRIES: u32 = 3;

/// The kernel's `generic_map_lookup_batch` (ARRAY, PERCPU_ARRAY, ...): walks with
/// get_next_key; `in_batch`/`out_batch` are keys.
pub fn generic_lookup(map: &dyn Map, req: &BatchReq<'_>) -> BatchOut {
    if req.elem_flags & !super::update_flags::BPF_F_LOCK != 0 {
        return BatchOut::err(MapError::Inval);
    }
    if req.elem_flags & super::update_flags::BPF_F_LOCK != 0 && map.spin_lock_off().is_none() {
        return BatchOut::err(MapError::Inval);
    }
    if req.count == 0 {
        return BatchOut::ok_empty();
    }
    let ks = map.attr().key_size as usize;
    let vs = map.sys_value_size();
    let mut out = BatchOut {
        result: Ok(()),
        count: Some(0),
        ..Default::default()
    };
    let mut prev: Option<Vec<u8>> = match req.in_batch {
        Some(b) if b.len() >= ks => Some(b[..ks].to_vec()),
        Some(_) => {
            out.result = Err(MapError::Errno(libc::EFAULT));
            return out;
        }
        None => None,
    };
    let mut key = vec![0u8; ks];
    let mut value = vec![0u8; vs];
    let mut cp = 0u32;
    let mut retry = MAP_LOOKUP_RETRIES;
    let mut err: Result<(), MapError> = Ok(());
    while cp < req.count {
        if let Err(e) = map.sys_get_next_key(prev.as_deref(), &mut key) {
            err = Err(e);
            break;
        }
        match map.sys_lookup(&key, &mut value, req.elem_flags) {
            Err(MapError::NoEnt) => {
                if retry > 0 {
                    retry -= 1;
                    continue;
                }
                err = Err(MapError::Errno(libc::EINTR));
                break;
            }
            Err(e) => {
                // The kernel bails out without writing the count back.
                return BatchOut {
                    result: Err(e),
                    count: Some(0),
                    ..Default::default()
                };
            }
            Ok(()) => {}
        }
        out.keys.extend_from_slice(&key);
        out.values.extend_from_slice(&value);
        prev = Some(key.clone());
        retry = MAP_LOOKUP_RETRIES;
        cp += 1;
    }
    out.result = err;
    out.count = Some(cp);
    if cp > 0 {
        out.out_batch = prev;
    }
    out
}

/// The kernel's `generic_map_update_batch`.
pub fn generic_update(map: &dyn Map, req: &BatchReq<'_>) -> BatchOut {
    if req.elem_flags & !super::update_flags::BPF_F_LOCK != 0 {
        return BatchOut::err(MapError::Inval);
    }
    if req.elem_flags & super::update_flags::BPF_F_LOCK != 0 && map.spin_lock_off().is_none() {
        return BatchOut::err(MapError::Inval);
    }
    if req.count == 0 {
        return BatchOut::ok_empty();
    }
    let ks = map.attr().key_size as usize;
    let vs = map.sys_value_size();
    let mut cp = 0u32;
    let mut result = Ok(());
    while cp < req.count {
        let i = cp as usize;
        let (Some(k), Some(v)) = (
            req.keys.get(i * ks..(i + 1) * ks),
            req.values.get(i * vs..(i + 1) * vs),
        ) else {
            result = Err(MapError::Errno(libc::EFAULT));
            break;
        };
        if let Err(e) = map.sys_update(k, v, req.elem_flags) {
            result = Err(e);
            break;
        }
        cp += 1;
    }
    BatchOut {
        result,
        count: Some(cp),
        ..Default::default()
    }
}

/// The kernel's `generic_map_delete_batch`.
pub fn generic_delete(map: &dyn Map, req: &BatchReq<'_>) -> BatchOut {
    if req.elem_flags & !super::update_flags::BPF_F_LOCK != 0 {
        return BatchOut::err(MapError::Inval);
    }
    if req.elem_flags & super::update_flags::BPF_F_LOCK != 0 && map.spin_lock_off().is_none() {
        return BatchOut::err(MapError::Inval);
    }
    if req.count == 0 {
        return BatchOut::ok_empty();
    }
    let ks = map.attr().key_size as usize;
    let mut cp = 0u32;
    let mut result = Ok(());
    while cp < req.count {
        let i = cp as usize;
        let Some(k) = req.keys.get(i * ks..(i + 1) * ks) else {
            result = Err(MapError::Errno(libc::EFAULT));
            break;
        };
        if let Err(e) = map.sys_delete(k) {
            result = Err(e);
            break;
        }
        cp += 1;
    }
    BatchOut {
        result,
        count: Some(cp),
        ..Default::default()
    }
}

/// Entry point for the supervisor: `BPF_MAP_LOOKUP_BATCH` (delete = false) or
/// `BPF_MAP_LOOKUP_AND_DELETE_BATCH` (delete = true), with the syscall-level
/// permission checks of `bpf_map_do_batch`.
pub fn lookup(map: &dyn Map, req: &BatchReq<'_>, delete: bool) -> BatchOut {
    map.sys_lookup_batch(req, delete)
}

/// Entry point for the supervisor: `BPF_MAP_UPDATE_BATCH`.
pub fn update(map: &dyn Map, req: &BatchReq<'_>) -> BatchOut {
    map.sys_update_batch(req)
}

/// Entry point for the supervisor: `BPF_MAP_DELETE_BATCH`.
pub fn delete(map: &dyn Map, req: &BatchReq<'_>) -> BatchOut {
    map.sys_delete_batch(req)
}

/// The batch commands of a map that uses the generic implementations (arrays,
/// tries): the kernel's write check (a frozen map refuses), then the generic walk;
/// lookup-and-delete is unsupported, delete too unless `deletes`.
pub(crate) fn generic_lookup_checked(
    m: &dyn Map,
    c: &super::Common,
    req: &BatchReq<'_>,
    delete: bool,
) -> BatchOut {
    if delete {
        return BatchOut::err(c.sys_write_ok().err().unwrap_or(MapError::NotSupp));
    }
    generic_lookup(m, req)
}

/// See [`generic_lookup_checked`].
pub(crate) fn generic_update_checked(
    m: &dyn Map,
    c: &super::Common,
    req: &BatchReq<'_>,
) -> BatchOut {
    match c.sys_write_ok() {
        Ok(()) => generic_update(m, req),
        Err(e) => BatchOut::err(e),
    }
}

/// See [`generic_lookup_checked`].
pub(crate) fn generic_delete_checked(
    m: &dyn Map,
    c: &super::Common,
    req: &BatchReq<'_>,
    deletes: bool,
) -> BatchOut {
    match c.sys_write_ok() {
        Ok(()) if deletes => generic_delete(m, req),
        Ok(()) => BatchOut::err(MapError::NotSupp),
        Err(e) => BatchOut::err(e),
    }
}
