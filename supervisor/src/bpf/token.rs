//! BPF tokens (`BPF_TOKEN_CREATE`, and the `*_token_fd` of MAP_CREATE, PROG_LOAD and
//! BTF_LOAD). A token delegates bpf() rights from a bpffs mounted with delegation
//! options inside a user namespace; bpftime does not delegate, so no token exists here.
//! What remains is the kernel's answer for each fd a caller may pass, in its order:
//! flags EINVAL, a closed fd EBADF, an fd that is not a bpffs root EINVAL, and a bpffs
//! root EOPNOTSUPP (as the kernel answers in the initial user namespace), logged.

use super::Attr;
use crate::call::{Call, Reply};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// `bpf_token_get_from_fd` for a token fd given with `BPF_F_TOKEN_FD`: a closed fd is
/// EBADF; any open one is not a token (EINVAL).
pub fn refuse(call: &Call<'_>, fd: i32) -> i32 {
    call.closed_or(fd, libc::EINVAL)
}

/// BPF_TOKEN_CREATE: attr flags 0, bpffs_fd 4.
pub fn token_create(call: &Call<'_>, a: &Attr) -> Reply {
    if a.u32(0) != 0 {
        return Reply::Errno(libc::EINVAL);
    }
    let fd = a.i32(4);
    if let Err(e) = call.fd_key(fd) {
        return Reply::Errno(e);
    }
    let bpffs_root = matches!(call.fd_fs_type(fd), Some(BPF_FS_MAGIC | FUSE_SUPER_MAGIC))
        && is_mount_root(&call.proc_path(&format!("fd/{fd}")));
    if !bpffs_root {
        return Reply::Errno(libc::EINVAL);
    }
    call.trace(|| "bpf: BPF_TOKEN_CREATE: bpftime delegates no rights: EOPNOTSUPP".into());
    tracing::info!("BPF_TOKEN_CREATE refused: no delegation in bpftime");
    Reply::Errno(libc::EOPNOTSUPP)
}

/// Whether `path` (a directory) is the root of its mount: its parent is on another
/// device, or is itself.
fn is_mount_root(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Ok(up)) = (std::fs::metadata(path), std::fs::metadata(path.join(".."))) else {
        return false;
    };
    me.is_dir() && (me.dev() != up.dev() || me.ino() == up.ino())
}
