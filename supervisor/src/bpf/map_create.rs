//! BPF_MAP_CREATE (kernel/bpf/syscall.c `map_create`).

use std::sync::Arc;

use bpftime_vm::maps::{self, map_type, CreateOpts, MapAttr};

use super::Attr;
use crate::call::{Call, Reply};
use crate::registry::{Body, Kind, MapObj};
use crate::sys::memfd;

pub fn map_create(call: &Call<'_>, a: &Attr) -> Reply {
    match create(call, a) {
        Ok(r) => r,
        Err(e) => Reply::Errno(e),
    }
}

fn create(call: &Call<'_>, a: &Attr) -> Result<Reply, i32> {
    let mut raw_name = [0u8; 16];
    raw_name.copy_from_slice(&a.b[28..44]);
    let attr = MapAttr {
        map_type: a.u32(0),
        key_size: a.u32(4),
        value_size: a.u32(8),
        max_entries: a.u32(12),
        map_flags: a.u32(16),
        numa_node: a.u32(24),
        name: String::new(),
        map_ifindex: a.u32(44),
        btf_fd: a.u32(48),
        btf_key_type_id: a.u32(52),
        btf_value_type_id: a.u32(56),
        btf_vmlinux_value_type_id: a.u32(60),
        map_extra: a.u64(64),
    };
    let inner_map_fd = a.i32(20);
    if attr.max_entries as u64 * (attr.key_size as u64 + attr.value_size as u64) > 1 << 20 {
        // Reserving and populating a large map takes a while.
        call.long_call();
    }
    // map_create: the token flag is noted and cleared first; the token itself is
    // looked at only once the attributes are known to be valid.
    const BPF_F_TOKEN_FD: u32 = 1 << 16;
    let token_flag = attr.map_flags & BPF_F_TOKEN_FD != 0;
    let attr = MapAttr {
        map_flags: attr.map_flags & !BPF_F_TOKEN_FD,
        ..attr
    };
    if attr.btf_vmlinux_value_type_id != 0 {
        // Only STRUCT_OPS maps take a vmlinux value type: not emulated.
        return Err(libc::EINVAL);
    }
    if attr.btf_key_type_id != 0 && attr.btf_value_type_id == 0 {
        return Err(libc::EINVAL);
    }
    if a.u64(80) != 0 || a.u32(88) != 0 {
        // excl_prog_hash: signed-program exclusivity, not emulated.
        return Err(libc::EINVAL);
    }
    if token_flag {
        // Attribute errors (type, sizes, flags, NUMA, extra) come before the token.
        if !matches!(
            attr.map_type,
            map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
        ) && attr.max_entries as u64 * (attr.key_size as u64 + attr.value_size as u64) <= 1 << 20
        {
            maps::create_with(&attr, CreateOpts::default()).map_err(|e| e.errno())?;
        }
        return Err(super::token::refuse(call, a.i32(76)));
    }
    if attr.map_ifindex != 0 {
        // Offloaded maps need a device that supports offload.
        return Err(libc::EINVAL);
    }
    let creds = call.creds()?;
    // The kernel validates the attributes (map_alloc_check) before the capability
    // check; the vm validates while creating, so an unprivileged caller's map is built
    // (when small) and dropped, to give the same errno.
    let privileged = if !creds.bpf_capable()
        || (matches!(
            attr.map_type,
            map_type::DEVMAP | map_type::DEVMAP_HASH | map_type::XSKMAP
        ) && !creds.has(crate::call::cap::NET_ADMIN))
    {
        Err(libc::EPERM)
    } else {
        Ok(())
    };
    if let Err(e) = privileged {
        // Attribute errors first (type, sizes, flags), then EPERM; map-in-map types
        // resolve their inner map only after the capability check.
        if !matches!(
            attr.map_type,
            map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
        ) && attr.max_entries as u64 * (attr.key_size as u64 + attr.value_size as u64) <= 1 << 20
        {
            maps::create_with(&attr, CreateOpts::default()).map_err(|e| e.errno())?;
        }
        return Err(e);
    }
    let name = super::obj_name(&raw_name)?;
    let attr = MapAttr { name, ..attr };

    let mut opts = CreateOpts::default();
    if matches!(
        attr.map_type,
        map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
    ) {
        let inner = call.object(inner_map_fd, Kind::Map, libc::EINVAL)?;
        opts.inner_map = Some(inner.as_map().unwrap().map.clone());
    }
    // BTF: only looked at when key or value type ids are given (as the kernel).
    let mut btf_obj = None;
    if attr.btf_key_type_id != 0 || attr.btf_value_type_id != 0 {
        let obj = call.object(attr.btf_fd as i32, Kind::Btf, libc::EINVAL)?;
        let btf = obj.as_btf().unwrap().clone();
        if attr.btf_value_type_id == 0 {
            return Err(libc::EINVAL);
        }
        let sz = |id: u32| btf.type_size(id);
        if attr.btf_key_type_id != 0 && sz(attr.btf_key_type_id) != Some(attr.key_size) {
            return Err(libc::EINVAL);
        }
        if attr.map_type != map_type::PERCPU_ARRAY
            && attr.map_type != map_type::PERCPU_HASH
            && sz(attr.btf_value_type_id) != Some(attr.value_size)
        {
            return Err(libc::EINVAL);
        }
        // A value holding a struct bpf_spin_lock: BPF_F_LOCK and bpf_spin_lock()
        // work on it; only HASH and ARRAY may hold one (map_check_btf).
        if let Some(off) = btf.spin_lock_off(attr.btf_value_type_id) {
            if !matches!(attr.map_type, map_type::HASH | map_type::ARRAY) {
                return Err(libc::EOPNOTSUPP);
            }
            opts.spin_lock_off = Some(off);
        }
        btf_obj = Some(obj);
    }
    let map = maps::create_with(&attr, opts).map_err(|e| e.errno())?;
    let handle = match map.mmap_fd() {
        Some(fd) => Call::dup(&fd)?,
        None => memfd::create(Kind::Map.memfd_name())
            .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?,
    };
    let body = Body::Map(MapObj {
        map: Arc::clone(&map),
        btf: btf_obj,
    });
    let obj = call
        .daemon
        .registry
        .lock()
        .unwrap()
        .insert(Kind::Map, handle, body, creds.uid)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    call.trace(|| {
        format!(
            "  map {} type {} key {} value {} max {} flags {:#x} '{}'",
            obj.id,
            attr.map_type,
            attr.key_size,
            attr.value_size,
            attr.max_entries,
            attr.map_flags,
            attr.name
        )
    });
    Ok(Reply::Object(obj))
}
