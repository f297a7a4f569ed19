//! Raw `bpf(2)` for tests that call the kernel directly (the kernel side of a
//! comparison): one syscall wrapper, an attribute buffer, an owned fd.

use std::os::fd::{FromRawFd, OwnedFd};

/// Command numbers (`enum bpf_cmd`) the tests use.
pub mod cmd {
    pub const MAP_CREATE: u32 = 0;
    pub const LOOKUP: u32 = 1;
    pub const UPDATE: u32 = 2;
    pub const DELETE: u32 = 3;
    pub const NEXT_KEY: u32 = 4;
    pub const LOOKUP_AND_DELETE: u32 = 21;
    pub const FREEZE: u32 = 22;
    pub const LOOKUP_BATCH: u32 = 24;
    pub const LOOKUP_AND_DELETE_BATCH: u32 = 25;
    pub const UPDATE_BATCH: u32 = 26;
    pub const DELETE_BATCH: u32 = 27;
}

/// `bpf(cmd, attr, attr.len())` as the kernel returns it (-1 and errno on failure).
pub fn raw(cmd: u32, attr: &mut [u8]) -> i64 {
    // SAFETY: attr is a live buffer of the size passed; the callers keep the buffers
    // its embedded pointers reference alive for the call.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.as_mut_ptr(),
            attr.len(),
        )
    }
}

/// `raw`, as Ok(return value) or Err(errno).
pub fn bpf(cmd: u32, attr: &mut Attr) -> Result<i64, i32> {
    let r = raw(cmd, &mut attr.0);
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// `raw` for commands that return a new fd.
pub fn bpf_fd(cmd: u32, attr: &mut [u8]) -> std::io::Result<OwnedFd> {
    let r = raw(cmd, attr);
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: r is a new fd returned by bpf(), owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// A `union bpf_attr` buffer (144 bytes: every command the tests use fits).
#[repr(C, align(8))]
pub struct Attr(pub [u8; 144]);

impl Default for Attr {
    fn default() -> Self {
        Attr([0; 144])
    }
}

impl Attr {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    pub fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    pub fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
    }
}

/// The address of an optional buffer (0 for None), for pointer fields.
pub fn ptr(b: Option<&[u8]>) -> u64 {
    b.map_or(0, |b| b.as_ptr() as u64)
}

/// An fd closed on drop (the number is what the kernel returned).
pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closing an fd this value owns.
        unsafe { libc::close(self.0) };
    }
}
