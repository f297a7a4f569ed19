//! BPF_ENABLE_STATS (`bpf_enable_stats`): while an fd it returned is open,
//! program runs are timed (run_time_ns, run_cnt). attr: type 0.

use super::Attr;
use crate::call::{cap, Call, Reply};
use crate::sys::memfd;

/// `BPF_STATS_RUN_TIME`.
const BPF_STATS_RUN_TIME: u32 = 0;

pub fn enable_stats(call: &Call<'_>, a: &Attr) -> Reply {
    let creds = match call.creds() {
        Ok(c) => c,
        Err(e) => return Reply::Errno(e),
    };
    if !creds.has(cap::SYS_ADMIN) {
        return Reply::Errno(libc::EPERM);
    }
    if a.u32(0) != BPF_STATS_RUN_TIME {
        return Reply::Errno(libc::EINVAL);
    }
    let fd = match memfd::create("bpf-stats") {
        Ok(fd) => fd,
        Err(e) => return Reply::Errno(e.raw_os_error().unwrap_or(libc::ENOMEM)),
    };
    // Stats stay on while some process holds the fd (the collection drops it).
    let key = match crate::registry::key_of(std::os::fd::AsFd::as_fd(&fd)) {
        Ok(k) => k,
        Err(e) => return Reply::Errno(e.raw_os_error().unwrap_or(libc::ENOMEM)),
    };
    let copy = match Call::dup(&fd) {
        Ok(c) => c,
        Err(e) => return Reply::Errno(e),
    };
    call.daemon.stats_fds.lock().unwrap().push((key, copy));
    call.daemon
        .stats_enabled
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    bpftime_vm::program::stats::enable();
    Reply::Fd(fd)
}
