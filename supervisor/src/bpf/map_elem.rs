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

/// The access mode of the target's fd `fd` (`O_RDONLY`, `O_WRONLY` or `O_RDWR` of its
/// open file): the kernel's `FMODE_CAN_READ/WRITE` of a map fd, set from
/// BPF_F_RDONLY/WRONLY at MAP_CREATE, OBJ_GET and MAP_GET_FD_BY_ID. Known from the
/// resolution of the fd to its object; otherwise one lstat of /proc/TID/fd/N: procfs
/// gives that link S_IRUSR for FMODE_READ and S_IWUSR for FMODE_WRITE
/// (`tid_fd_update_inode`), the same as fdinfo's `flags & O_ACCMODE`.
pub fn fd_access(call: &Call<'_>, fd: i32) -> Result<i32, i32> {
    if let Some(mode) = call.fd_info(fd)?.mode {
        return Ok(mode);
    }
    let st =
        nix::sys::stat::lstat(&call.proc_path(&format!("fd/{fd}"))).map_err(|_| libc::EBADF)?;
    if !call.valid() {
        return Err(libc::ESRCH);
    }
    let (r, w) = (
        st.st_mode & libc::S_IRUSR != 0,
        st.st_mode & libc::S_IWUSR != 0,
    );
    Ok(match (r, w) {
        (true, false) => libc::O_RDONLY,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDWR,
    })
}

/// The kernel's `map_get_sys_perms`: (can read, can write) through fd `fd` of `map`
/// (no write once the map is frozen).
pub fn sys_perms(
    call: &Call<'_>,
    fd: i32,
    map: &Arc<dyn bpftime_vm::maps::Map>,
) -> Result<(bool, bool), i32> {
    let mode = fd_access(call, fd)?;
    let read = mode != libc::O_WRONLY;
    let write = mode != libc::O_RDONLY && !map.frozen();
    Ok((read, write))
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
        let (read, write) = sys_perms(call, a.i32(0), map)?;
        if !read || (delete && !write) {
            return Err(libc::EPERM);
        }
        if flags & BPF_F_LOCK != 0 && map.spin_lock_off().is_none() {
            return Err(libc::EINVAL);
        }
        let key = call.read(a.u64(8), attr.key_size as usize)?;
        let mut value = vec![0u8; map.sys_value_size()];
        if delete {
            map.sys_lookup_and_delete(&key, &mut value, flags)
                .map_err(|e| e.errno())?;
        } else {
            map.sys_lookup(&key, &mut value, flags)
                .map_err(|e| e.errno())?;
        }
        call.write(a.u64(16), &value)
    })())
}

/// Updates of fd-holding maps: PROG_ARRAY values are program fds, map-in-map values
/// map fds, resolved in the caller's fd table (EBADF / EINVAL as the kernel).
/// Returns None for other map types.
fn update_fd_map(
    call: &Call<'_>,
    obj: &Object,
    key: &[u8],
    value: &[u8],
    flags: u64,
) -> Option<Result<(), i32>> {
    let map = &obj.as_map().unwrap().map;
    let fd = i32::from_ne_bytes(value.get(..4)?.try_into().ok()?);
    match map.attr().map_type {
        map_type::PROG_ARRAY => {
            let pa = map
                .as_any()
                .downcast_ref::<bpftime_vm::maps::prog_array::ProgArray>()?;
            Some((|| {
                pa.check_update(key, flags).map_err(|e| e.errno())?;
                let p = call.object(fd, Kind::Prog, libc::EINVAL)?;
                let lp = &p.as_prog().unwrap().prog;
                if !pa.compatible(
                    lp.prog_type,
                    lp.prog_flags & super::prog_load::BPF_F_XDP_HAS_FRAGS != 0,
                ) {
                    return Err(libc::EINVAL);
                }
                let idx = u32::from_ne_bytes(key[..4].try_into().unwrap());
                pa.set(idx, p.id, p.as_prog().unwrap().prog.vm.clone(), flags)
                    .map_err(|e| e.errno())
            })())
        }
        map_type::PERF_EVENT_ARRAY => {
            let pa = map
                .as_any()
                .downcast_ref::<bpftime_vm::maps::perf_event_array::PerfEventArray>()?;
            Some((|| {
                pa.check_update(key, flags).map_err(|e| e.errno())?;
                let ev = crate::perf_event::array_entry(call, fd)?;
                let idx = u32::from_ne_bytes(key[..4].try_into().unwrap());
                pa.set(idx, ev).map_err(|e| e.errno())
            })())
        }
        map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS => {
            let mm = map
                .as_any()
                .downcast_ref::<bpftime_vm::maps::map_in_map::MapOfMaps>()?;
            Some((|| {
                mm.check_update(key, flags).map_err(|e| e.errno())?;
                let inner = call.object(fd, Kind::Map, libc::EINVAL)?;
                mm.set(key, inner.id, inner.as_map().unwrap().map.clone(), flags)
                    .map_err(|e| e.errno())
            })())
        }
        _ => None,
    }
}

pub fn update(call: &Call<'_>, a: &Attr) -> Reply {
    done((|| {
        let obj = map_of(call, a.i32(0))?;
        let map = &obj.as_map().unwrap().map;
        let attr = map.attr();
        if !sys_perms(call, a.i32(0), map)?.1 {
            return Err(libc::EPERM);
        }
        let flags = a.u64(24);
        if flags & BPF_F_LOCK != 0 && map.spin_lock_off().is_none() {
            return Err(libc::EINVAL);
        }
        let (key, value) = call.read2(
            (a.u64(8), attr.key_size as usize),
            (a.u64(16), map.sys_value_size()),
        )?;
        if let Some(r) = update_fd_map(call, &obj, &key, &value, flags) {
            return r;
        }
        map.sys_update(&key, &value, flags).map_err(|e| e.errno())
    })())
}

pub fn delete(call: &Call<'_>, a: &Attr) -> Reply {
    done((|| {
        let obj = map_of(call, a.i32(0))?;
        let map = &obj.as_map().unwrap().map;
        let attr = map.attr();
        if !sys_perms(call, a.i32(0), map)?.1 {
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
        if !sys_perms(call, a.i32(0), map)?.0 {
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
        // ENOTSUPP (spin lock) comes first, from map.freeze().
        if map.spin_lock_off().is_none() && !sys_perms(call, a.i32(0), map)?.1 {
            return Err(libc::EPERM);
        }
        map.freeze().map_err(|e| e.errno())
    })())
}
