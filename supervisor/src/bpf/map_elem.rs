//! Element commands: MAP_LOOKUP_ELEM, MAP_LOOKUP_AND_DELETE_ELEM, MAP_UPDATE_ELEM,
//! MAP_DELETE_ELEM, MAP_GET_NEXT_KEY, MAP_FREEZE (kernel/bpf/syscall.c).
//! attr: map_fd 0, key 8, value|next_key 16, flags 24.

use std::sync::Arc;

use bpftime_vm::maps::{map_type, update_flags::BPF_F_LOCK};

use super::Attr;
use crate::call::{Call, Reply};
use crate::registry::{Kind, Object};

/// The map object behind attr.map_fd: EBADF (not open) or EINVAL (not a map).
pub fn map_of(call: &Call<'_>, fd: i32) -> Result<Arc<Object>, i32> {
    call.object(fd, Kind::Map, libc::EINVAL)
}

fn done(r: Result<(), i32>) -> Reply {
    match r {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}

pub fn lookup(call: &Call<'_>, a: &Attr, delete: bool) -> Reply {
    done((|| {
        let flags = a.u64(24);
        if flags & !BPF_F_LOCK != 0 {
            return Err(libc::EINVAL);
        }
        let obj = map_of(call, a.i32(0))?;
        let map = &obj.as_map().unwrap().map;
        let attr = map.attr();
        if attr.map_flags & bpftime_vm::maps::map_flags::BPF_F_WRONLY != 0 {
            return Err(libc::EPERM);
        }
        if flags & BPF_F_LOCK != 0 && map.spin_lock_off().is_none() {
            return Err(libc::EINVAL);
        }
        let key = call.read(a.u64(8), attr.key_size as usize)?;
        let mut value = vec![0u8; map.sys_value_size()];
        if delete {
            if attr.map_flags & bpftime_vm::maps::map_flags::BPF_F_RDONLY != 0 || map.frozen() {
                return Err(libc::EPERM);
            }
            map.sys_lookup_and_delete(&key, &mut value, flags)
                .map_err(|e| e.errno())?;
        } else {
            map.sys_lookup(&key, &mut value, flags)
                .map_err(|e| e.errno())?;
        }
        call.write(a.u64(16), &value)
    })())
}

/// Translates the values userspace gives to fd-holding maps (PROG_ARRAY: prog fd;
/// map-in-map: map fd) into what the vm map stores.
fn translate_value(call: &Call<'_>, map_type: u32, value: Vec<u8>) -> Result<Vec<u8>, i32> {
    match map_type {
        map_type::PROG_ARRAY | map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS => {
            // The vm maps of these types are not wired to the registry yet.
            let _ = call;
            Err(libc::EOPNOTSUPP)
        }
        _ => Ok(value),
    }
}

pub fn update(call: &Call<'_>, a: &Attr) -> Reply {
    done((|| {
        let obj = map_of(call, a.i32(0))?;
        let map = &obj.as_map().unwrap().map;
        let attr = map.attr();
        if attr.map_flags & bpftime_vm::maps::map_flags::BPF_F_RDONLY != 0 {
            return Err(libc::EPERM);
        }
        let flags = a.u64(24);
        if flags & BPF_F_LOCK != 0 && map.spin_lock_off().is_none() {
            return Err(libc::EINVAL);
        }
        let key = call.read(a.u64(8), attr.key_size as usize)?;
        let value = call.read(a.u64(16), map.sys_value_size())?;
        let value = translate_value(call, attr.map_type, value)?;
        map.sys_update(&key, &value, flags).map_err(|e| e.errno())
    })())
}

pub fn delete(call: &Call<'_>, a: &Attr) -> Reply {
    done((|| {
        let obj = map_of(call, a.i32(0))?;
        let map = &obj.as_map().unwrap().map;
        let attr = map.attr();
        if attr.map_flags & bpftime_vm::maps::map_flags::BPF_F_RDONLY != 0 || map.frozen() {
            return Err(libc::EPERM);
        }
        let key = call.read(a.u64(8), attr.key_size as usize)?;
        map.sys_delete(&key).map_err(|e| e.errno())
    })())
}

pub fn get_next_key(call: &Call<'_>, a: &Attr) -> Reply {
    done((|| {
        let obj = map_of(call, a.i32(0))?;
        let map = &obj.as_map().unwrap().map;
        let attr = map.attr();
        if attr.map_flags & bpftime_vm::maps::map_flags::BPF_F_WRONLY != 0 {
            return Err(libc::EPERM);
        }
        let ukey = a.u64(8);
        let key = if ukey != 0 {
            Some(call.read(ukey, attr.key_size as usize)?)
        } else {
            None
        };
        let mut next = vec![0u8; attr.key_size as usize];
        map.sys_get_next_key(key.as_deref(), &mut next)
            .map_err(|e| e.errno())?;
        call.write(a.u64(16), &next)
    })())
}

pub fn freeze(call: &Call<'_>, a: &Attr) -> Reply {
    done((|| {
        let obj = map_of(call, a.i32(0))?;
        let map = &obj.as_map().unwrap().map;
        if map.attr().map_flags & bpftime_vm::maps::map_flags::BPF_F_RDONLY != 0 {
            return Err(libc::EPERM);
        }
        map.freeze().map_err(|e| e.errno())
    })())
}
