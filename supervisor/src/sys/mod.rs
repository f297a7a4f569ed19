//! Thin wrappers over the kernel interfaces the supervisor needs. Each submodule
//! wraps one interface and holds all of its `unsafe`; everything above is safe code.

pub mod memfd;
pub mod netns;
pub mod pidfd;
pub mod process;
pub mod seccomp;
pub mod statfs;
pub mod target_mem;
pub mod task_ids;
pub mod userns;
pub mod wake;

/// The calling thread's errno as a positive value.
pub fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
