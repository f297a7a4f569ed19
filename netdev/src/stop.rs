//! The end of an attachment's workers: a flag each worker checks every round, and an
//! eventfd its sleep in `poll()` waits on beside its socket, so that a sleeping worker
//! ends at once. Workers can then sleep long while their interface is idle (one wake-up
//! a second, not twenty) and a detach still joins them without waiting.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub(crate) struct Stop {
    flag: AtomicBool,
    efd: OwnedFd,
}

impl Stop {
    pub(crate) fn new() -> io::Result<Stop> {
        // SAFETY: eventfd takes no pointers; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Stop {
            flag: AtomicBool::new(false),
            // SAFETY: fd was just created and is owned by nobody else.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Tells every worker to end, waking those asleep.
    pub(crate) fn set(&self) {
        self.flag.store(true, Ordering::Relaxed);
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter
        // (EAGAIN) is already readable, which is all the sleepers need.
        let _ = unsafe { libc::write(self.efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Readable once [`Stop::set`] was called (never read: it stays readable).
    pub(crate) fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }
}
