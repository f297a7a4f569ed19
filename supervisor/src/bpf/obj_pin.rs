//! BPF_OBJ_PIN / BPF_OBJ_GET (`bpf_obj_pin_user`, `bpf_obj_get_user`) through the
//! FUSE bpffs. attr: pathname 0, bpf_fd 8, file_flags 12, path_fd 16.
//!
//! The path is resolved by the kernel as the target would (its root, cwd or path_fd,
//! its mount namespace: /proc/TID/root + openat2 RESOLVE_IN_ROOT); when the parent
//! (pin) or the file (get) is on one of our bpffs instances (st_dev), the fs crate is
//! asked with the inode number.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use bpftime_fs::{may, Cred, ObjRef};

use super::Attr;
use crate::call::{Call, Reply};
use crate::daemon::store::{kind_of, obj_kind};
use crate::fsys::resolve;
use crate::registry::{Kind, Object};

const BPF_F_RDONLY: u32 = 1 << 3;
const BPF_F_WRONLY: u32 = 1 << 4;
const BPF_F_PATH_FD: u32 = 1 << 14;

/// fsuid/fsgid/groups and umask of the calling thread.
fn fs_cred(call: &Call<'_>) -> Result<(Cred, u32), i32> {
    let s = std::fs::read_to_string(call.proc_path("status")).map_err(|_| libc::ESRCH)?;
    let mut c = Cred::default();
    let mut umask = 0o022;
    let field = |v: &str, i: usize| {
        v.split_whitespace()
            .nth(i)
            .and_then(|x| x.parse::<u32>().ok())
    };
    for line in s.lines() {
        if let Some(v) = line.strip_prefix("Uid:") {
            c.uid = field(v, 3).unwrap_or(u32::MAX);
        } else if let Some(v) = line.strip_prefix("Gid:") {
            c.gid = field(v, 3).unwrap_or(u32::MAX);
        } else if let Some(v) = line.strip_prefix("Groups:") {
            c.groups = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
        } else if let Some(v) = line.strip_prefix("Umask:") {
            umask = u32::from_str_radix(v.trim(), 8).unwrap_or(0o022);
        }
    }
    Ok((c, umask))
}

fn dirfd(a: &Attr) -> Option<i32> {
    (a.u32(12) & BPF_F_PATH_FD != 0).then(|| a.i32(16))
}

pub fn obj_pin(call: &Call<'_>, a: &Attr) -> Reply {
    match pin(call, a) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}

fn pin(call: &Call<'_>, a: &Attr) -> Result<(), i32> {
    let flags = a.u32(12);
    if flags & !BPF_F_PATH_FD != 0 {
        return Err(libc::EINVAL);
    }
    if flags & BPF_F_PATH_FD == 0 && a.i32(16) != 0 {
        return Err(libc::EINVAL);
    }
    // bpf_fd_probe_obj tries a map, a program, a link: any fd that is none of them,
    // a closed one included, is EINVAL.
    let obj = call
        .any_object(a.i32(8))
        .map_err(|_| libc::EINVAL)?
        .ok_or(libc::EINVAL)?;
    let path = call.read_cstr(a.u64(0), 4096)?;
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    let (parent, name): (&[u8], &[u8]) = match path.iter().rposition(|&c| c == b'/') {
        Some(0) => (b"/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b".", &path[..]),
    };
    if name.is_empty() {
        return Err(libc::EEXIST);
    }
    let pfd = resolve(call, dirfd(a), parent, true)?;
    let st = nix::sys::stat::fstat(pfd.as_fd()).map_err(|e| e as i32)?;
    let Some(fs) = call.daemon.fs_for_dev(st.st_dev) else {
        // Not a bpffs: an existing name is EEXIST first (user_path_create), else EPERM.
        let full = [parent, b"/", name].concat();
        if resolve(call, dirfd(a), &full, false).is_ok() {
            return Err(libc::EEXIST);
        }
        call.trace(|| {
            format!(
                "  OBJ_PIN {}: not a bpffs: EPERM",
                String::from_utf8_lossy(&path)
            )
        });
        return Err(libc::EPERM);
    };
    let (cred, umask) = fs_cred(call)?;
    let r = ObjRef {
        kind: obj_kind(obj.kind).ok_or(libc::EINVAL)?,
        id: obj.id,
    };
    let name = std::ffi::OsStr::new(std::str::from_utf8(name).map_err(|_| libc::EINVAL)?);
    fs.pin(st.st_ino, name, r, &cred, umask)
        .map_err(|e| e.errno())?;
    call.trace(|| {
        format!(
            "  pinned {:?} {} at {}",
            obj.kind,
            obj.id,
            String::from_utf8_lossy(&path)
        )
    });
    Ok(())
}

pub fn obj_get(call: &Call<'_>, a: &Attr) -> Reply {
    match get(call, a) {
        Ok(r) => r,
        Err(e) => Reply::Errno(e),
    }
}

fn get(call: &Call<'_>, a: &Attr) -> Result<Reply, i32> {
    let flags = a.u32(12);
    if flags & !(BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_PATH_FD) != 0 {
        return Err(libc::EINVAL);
    }
    if flags & (BPF_F_RDONLY | BPF_F_WRONLY) == BPF_F_RDONLY | BPF_F_WRONLY {
        return Err(libc::EINVAL);
    }
    if flags & BPF_F_PATH_FD == 0 && a.i32(16) != 0 {
        return Err(libc::EINVAL);
    }
    if a.u32(8) != 0 {
        return Err(libc::EINVAL);
    }
    let path = call.read_cstr(a.u64(0), 4096)?;
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    let fd = resolve(call, dirfd(a), &path, true)?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| e as i32)?;
    let Some(fs) = call.daemon.fs_for_dev(st.st_dev) else {
        return Err(libc::EACCES);
    };
    let mask = match flags & (BPF_F_RDONLY | BPF_F_WRONLY) {
        BPF_F_RDONLY => may::READ,
        BPF_F_WRONLY => may::WRITE,
        _ => may::READ | may::WRITE,
    };
    let (cred, _) = fs_cred(call)?;
    let r = fs.get(st.st_ino, &cred, mask).map_err(|e| e.errno())?;
    let obj = call
        .daemon
        .registry
        .lock()
        .unwrap()
        .by_id(kind_of(r.kind), r.id)
        .ok_or(libc::ENOENT)?;
    // bpf_obj_get_user: only a map fd takes the access mode (prog and link fds are
    // always read-write).
    Ok(shared_with_mode(obj, flags))
}

/// Another fd of `obj` with the access mode BPF_F_RDONLY/WRONLY ask for: for a map, a
/// new open file of its handle in that mode (same inode, so identity holds), as the
/// kernel's `bpf_map_new_fd(map, bpf_get_file_flag(flags))`; otherwise the handle.
pub fn shared_with_mode(obj: Arc<Object>, flags: u32) -> Reply {
    match reopen(&obj, flags) {
        Ok(Some(fd)) => Reply::Fd(fd),
        Ok(None) => Reply::Shared(obj),
        Err(e) => Reply::Errno(e),
    }
}

/// The handle of `obj` reopened O_RDONLY / O_WRONLY when `flags` has BPF_F_RDONLY /
/// BPF_F_WRONLY and `obj` is a map; None when the handle itself (O_RDWR) is right.
pub fn reopen(obj: &Object, flags: u32) -> Result<Option<OwnedFd>, i32> {
    let mode = match flags & (BPF_F_RDONLY | BPF_F_WRONLY) {
        BPF_F_RDONLY => libc::O_RDONLY,
        BPF_F_WRONLY => libc::O_WRONLY,
        _ => return Ok(None),
    };
    if obj.kind != Kind::Map {
        return Ok(None);
    }
    let path = format!("/proc/self/fd/{}", obj.handle().as_raw_fd());
    std::fs::OpenOptions::new()
        .read(mode == libc::O_RDONLY)
        .write(mode == libc::O_WRONLY)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map(|f| Some(OwnedFd::from(f)))
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))
}

/// The fd a new object is installed with: a map created with BPF_F_RDONLY/WRONLY gets
/// a read-only / write-only fd (`map_create`: `bpf_get_file_flag(attr->map_flags)`).
pub fn created_fd(obj: &Object) -> Result<Option<OwnedFd>, i32> {
    match obj.as_map() {
        Some(m) => reopen(obj, m.map.attr().map_flags),
        None => Ok(None),
    }
}
