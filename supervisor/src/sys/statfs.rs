//! fstatfs(2) and the raw bytes of `struct statfs` (what statfs writes to the target).

use std::os::fd::{AsRawFd, BorrowedFd};

/// fstatfs of `fd`.
pub fn fstatfs(fd: BorrowedFd<'_>) -> Result<libc::statfs, i32> {
    let mut sfs = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstatfs writes a `struct statfs` into the valid, sized buffer.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), sfs.as_mut_ptr()) } != 0 {
        return Err(super::errno());
    }
    // SAFETY: fstatfs succeeded and initialized the struct (zeroed before anyway).
    Ok(unsafe { sfs.assume_init() })
}

/// The bytes of a `struct statfs` as the kernel copies it to userspace.
pub fn as_bytes(st: &libc::statfs) -> Vec<u8> {
    // SAFETY: statfs is plain old data; reading its bytes is sound.
    let b = unsafe {
        std::slice::from_raw_parts(
            st as *const libc::statfs as *const u8,
            std::mem::size_of::<libc::statfs>(),
        )
    };
    b.to_vec()
}
