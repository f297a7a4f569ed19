//! statfs/fstatfs/mount: the bpffs as the target sees it.
//!
//! statfs/fstatfs on a path or fd inside the daemon's bpffs answer BPF_FS_MAGIC
//! (as the kernel's bpffs: bsize 4096, namelen 255); elsewhere the kernel answers
//! (CONTINUE enforces no policy here). `mount -t bpf` is refused with EPERM until
//! the FUSE bpffs can provide fresh instances; other mounts CONTINUE.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::call::{Call, Reply};

/// `BPF_FS_MAGIC`.
pub const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Opens (O_PATH) `path` as the target would resolve it: absolute paths under its
/// root, relative ones under its cwd (or `dirfd`).
pub fn resolve(
    call: &Call<'_>,
    dirfd: Option<i32>,
    path: &[u8],
    follow: bool,
) -> Result<OwnedFd, i32> {
    let path = std::ffi::OsStr::from_encoded_bytes_unchecked_safe(path);
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let r = if path.as_encoded_bytes().first() == Some(&b'/') {
        let root = nix::fcntl::open(
            &call.proc_path("root"),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| e as i32)?;
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT);
        nix::fcntl::openat2(root.as_fd(), path, how)
    } else {
        let base = match dirfd {
            None | Some(libc::AT_FDCWD) => call.proc_path("cwd"),
            Some(fd) => call.proc_path(&format!("fd/{fd}")),
        };
        let dir = nix::fcntl::open(&base, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| e as i32)?;
        nix::fcntl::openat(dir.as_fd(), path, flags, Mode::empty())
    };
    let fd = r.map_err(|e| e as i32)?;
    if !call.valid() {
        return Err(libc::ESRCH);
    }
    Ok(fd)
}

trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b)
    }
}

/// The statfs answer for a file on our bpffs (`st` is the real statfs of it).
fn bpffs_statfs(mut st: libc::statfs) -> Vec<u8> {
    st.f_type = BPF_FS_MAGIC;
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    st.f_namelen = 255;
    st.f_blocks = 0;
    st.f_bfree = 0;
    st.f_bavail = 0;
    st.f_files = 0;
    st.f_ffree = 0;
    crate::sys::statfs::as_bytes(&st)
}

fn statfs_of(call: &Call<'_>, fd: OwnedFd, buf: u64) -> Reply {
    let Ok(st) = nix::sys::stat::fstat(fd.as_fd()) else {
        return Reply::Continue;
    };
    if !call.daemon.is_bpffs_dev(st.st_dev) {
        return Reply::Continue;
    }
    let Ok(sfs) = crate::sys::statfs::fstatfs(fd.as_fd()) else {
        return Reply::Continue;
    };
    match call.write(buf, &bpffs_statfs(sfs)) {
        Ok(()) => {
            call.trace(|| "statfs on bpffs = BPF_FS_MAGIC".into());
            Reply::Value(0)
        }
        Err(e) => Reply::Errno(e),
    }
}

/// statfs(path, buf).
pub fn statfs(call: &Call<'_>) -> Reply {
    let Ok(path) = call.read_cstr(call.arg(0), 4096) else {
        return Reply::Continue;
    };
    match resolve(call, None, &path, true) {
        Ok(fd) => statfs_of(call, fd, call.arg(1)),
        Err(_) => Reply::Continue,
    }
}

/// fstatfs(fd, buf).
pub fn fstatfs(call: &Call<'_>) -> Reply {
    let fd = call.arg(0) as i32;
    if fd < 0 {
        return Reply::Continue;
    }
    match nix::fcntl::open(
        &call.proc_path(&format!("fd/{fd}")),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(f) if call.valid() => statfs_of(call, f, call.arg(1)),
        _ => Reply::Continue,
    }
}

/// mount(source, target, fstype, flags, data): `mount -t bpf` gets a fresh FUSE
/// bpffs instance at that path in the caller's mount namespace; other mounts CONTINUE.
pub fn mount(call: &Call<'_>) -> Reply {
    let fstype = call.arg(2);
    if fstype == 0 {
        return Reply::Continue;
    }
    let flags = call.arg(3);
    let special = libc::MS_REMOUNT
        | libc::MS_BIND
        | libc::MS_MOVE
        | libc::MS_SHARED
        | libc::MS_PRIVATE
        | libc::MS_SLAVE
        | libc::MS_UNBINDABLE;
    match call.read_cstr(fstype, 256) {
        Ok(t) if t == b"bpf" && flags & special == 0 => match mount_bpf(call) {
            Ok(()) => Reply::Value(0),
            Err(e) => Reply::Errno(e),
        },
        _ => Reply::Continue,
    }
}

fn mount_bpf(call: &Call<'_>) -> Result<(), i32> {
    let creds = call.creds()?;
    if !creds.has(crate::call::cap::SYS_ADMIN) {
        return Err(libc::EPERM);
    }
    let Some(main) = call.daemon.fs.get() else {
        call.trace(|| "mount -t bpf: no FUSE bpffs in this daemon: ENODEV".into());
        return Err(libc::ENODEV);
    };
    let _ = main;
    let target = call.read_cstr(call.arg(1), 4096)?;
    let data = if call.arg(4) != 0 {
        call.read_cstr(call.arg(4), 4096)?
    } else {
        vec![]
    };
    // The mount point must exist and be a directory, as for the kernel.
    let fd = resolve(call, None, &target, true)?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| e as i32)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(libc::ENOTDIR);
    }
    let abs = if target.first() == Some(&b'/') {
        std::path::PathBuf::from(String::from_utf8_lossy(&target).into_owned())
    } else {
        let cwd = std::fs::read_link(call.proc_path("cwd")).map_err(|_| libc::ESRCH)?;
        cwd.join(String::from_utf8_lossy(&target).into_owned())
    };
    let opts = bpftime_fs::RootOpts::parse(&String::from_utf8_lossy(&data), creds.euid, creds.gid)
        .map_err(|e| e.errno())?;
    let store = std::sync::Arc::new(crate::daemon::store::Store {
        daemon: call.daemon.self_weak(),
    });
    let fs = bpftime_fs::BpfFs::with_root(store, opts);
    let m = fs
        .mount_in_mntns(&call.proc_path("ns/mnt"), &abs)
        .map_err(|e| e.errno())?;
    let mut inst = call.daemon.instances.lock().unwrap();
    inst.retain(|(_, m)| m.is_serving());
    inst.push((fs, m));
    call.trace(|| format!("mount -t bpf on {}: fresh bpffs instance", abs.display()));
    Ok(())
}
