//! memfd_create(2): the handles of emulated objects.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};

/// A new memfd named `name` (readlink shows `/memfd:<name> (deleted)`), close-on-exec.
pub fn create(name: &str) -> std::io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
