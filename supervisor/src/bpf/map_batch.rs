//! MAP_{LOOKUP,LOOKUP_AND_DELETE,UPDATE,DELETE}_BATCH (`bpf_map_do_batch`).
//! attr: in_batch 0, out_batch 8, keys 16, values 24, count 32, map_fd 36,
//! elem_flags 40, flags 48.

use bpftime_vm::maps::{batch, map_type, BatchOut};

use super::{cmd, Attr};
use crate::call::{Call, Reply};

/// Size of the in/out batch token: hash maps resume at a bucket (u32), the
/// generic walk at a key.
fn token_size(map_type: u32, key_size: u32) -> usize {
    match map_type {
        map_type::HASH
        | map_type::PERCPU_HASH
        | map_type::LRU_HASH
        | map_type::LRU_PERCPU_HASH
        | map_type::HASH_OF_MAPS => 4,
        _ => key_size as usize,
    }
}

pub fn batch(call: &Call<'_>, a: &Attr, c: i32) -> Reply {
    match run(call, a, c) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}

fn run(call: &Call<'_>, a: &Attr, c: i32) -> Result<(), i32> {
    let obj = super::map_elem::map_of(call, a.i32(36))?;
    let map = &obj.as_map().unwrap().map;
    let attr = map.attr();
    let is_lookup = c == cmd::MAP_LOOKUP_BATCH || c == cmd::MAP_LOOKUP_AND_DELETE_BATCH;
    let writes = c != cmd::MAP_LOOKUP_BATCH;
    let (read, write) = super::map_elem::sys_perms(call, a.i32(36), map)?;
    if (is_lookup && !read) || (writes && !write) {
        return Err(libc::EPERM);
    }
    let count = a.u32(32);
    let ks = attr.key_size as usize;
    let vs = map.sys_value_size();
    let in_batch = if is_lookup && a.u64(0) != 0 {
        Some(call.read(a.u64(0), token_size(attr.map_type, attr.key_size))?)
    } else {
        None
    };
    let n = count as usize;
    let keys = if !is_lookup {
        call.read(a.u64(16), n.checked_mul(ks).ok_or(libc::EINVAL)?)?
    } else {
        vec![]
    };
    let values = if c == cmd::MAP_UPDATE_BATCH {
        call.read(a.u64(24), n.checked_mul(vs).ok_or(libc::EINVAL)?)?
    } else {
        vec![]
    };
    let req = batch::BatchReq {
        in_batch: in_batch.as_deref(),
        count,
        keys: &keys,
        values: &values,
        elem_flags: a.u64(40),
        flags: a.u64(48),
    };
    let out: BatchOut = match c {
        cmd::MAP_LOOKUP_BATCH => batch::lookup(map.as_ref(), &req, false),
        cmd::MAP_LOOKUP_AND_DELETE_BATCH => batch::lookup(map.as_ref(), &req, true),
        cmd::MAP_UPDATE_BATCH => batch::update(map.as_ref(), &req),
        _ => batch::delete(map.as_ref(), &req),
    };
    if !out.keys.is_empty() {
        call.write(a.u64(16), &out.keys)?;
    }
    if !out.values.is_empty() {
        call.write(a.u64(24), &out.values)?;
    }
    if let Some(ob) = &out.out_batch {
        call.write(a.u64(8), ob)?;
    }
    if let Some(cnt) = out.count {
        a.put_u32(call, 32, cnt)?;
    }
    out.result.map_err(|e| e.errno())
}
