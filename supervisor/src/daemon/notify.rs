//! One thread per listener: receive a notification, dispatch it to its handler,
//! answer (SEND, or ADDFD+SEND for new fds).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tracing::{debug, trace, warn};

use super::Daemon;
use crate::call::{Call, Reply};
use crate::proto::TraceSink;
use crate::sys::seccomp::{nr, Listener, Notif};

/// Serves `listener` until no task uses the filter any more.
pub fn serve(d: &Daemon, listener: OwnedFd, sink: Option<TraceSink>) {
    let l = Listener::new(listener.as_fd());
    let tasks = std::cell::RefCell::new(crate::tasks::TaskCache::default());
    if let Err(e) = l.set_sync_wake_up() {
        debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable: {e}");
    }
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                warn!("poll on listener: {e}");
                break;
            }
        }
        let rev = fds[0].revents().unwrap_or(PollFlags::empty());
        if !rev.contains(PollFlags::POLLIN) {
            if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                break;
            }
            continue;
        }
        match l.recv() {
            Ok(n) => handle(d, l, n, sink.as_ref(), &tasks),
            Err(libc::EINTR) | Err(libc::ENOENT) => continue,
            Err(e) => {
                warn!("SECCOMP_IOCTL_NOTIF_RECV: errno {e}");
                break;
            }
        }
    }
    debug!("listener done");
}

fn handle(
    d: &Daemon,
    l: Listener<'_>,
    n: Notif,
    sink: Option<&TraceSink>,
    tasks: &std::cell::RefCell<crate::tasks::TaskCache>,
) {
    d.notifications.fetch_add(1, Ordering::Relaxed);
    if n.nr == nr::BPF && is_id_walk_start(&n) {
        // An enumeration (bpftool prog/map show) starts: collect first, so objects
        // whose last fd is closed are gone, as they would be in the kernel.
        d.gc();
    }
    let call = Call::new(n, d, l, sink, tasks);
    let run = || {
        if n.nr == nr::BPF {
            // Objects are created and installed under the shared side of the GC lock.
            let _g = d.gc_lock.read().unwrap_or_else(|e| e.into_inner());
            let reply = crate::bpf::dispatch(&call);
            answer(d, &call, reply);
            return;
        }
        let reply = match n.nr {
            nr::STATFS => crate::fsys::statfs(&call),
            nr::FSTATFS => crate::fsys::fstatfs(&call),
            nr::MOUNT => crate::fsys::mount(&call),
            nr::SENDTO => crate::nl::sendto(&call),
            nr::SENDMSG => crate::nl::sendmsg(&call),
            nr::RECVFROM => crate::nl::recvfrom(&call),
            nr::RECVMSG => crate::nl::recvmsg(&call),
            nr::EPOLL_CTL => crate::epoll::epoll_ctl(&call),
            _ => Reply::Continue,
        };
        answer(d, &call, reply);
    };
    // A bug in a handler must not leave the target stuck nor take the daemon down.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
        tracing::error!(nr = n.nr, tid = n.pid, "handler panicked; answering EINVAL");
        let _ = l.send_errno(n.id, libc::EINVAL);
    }
}

/// `*_GET_NEXT_ID` with start_id 0.
fn is_id_walk_start(n: &Notif) -> bool {
    use crate::bpf::cmd;
    let c = n.args[0] as i32;
    if !matches!(
        c,
        cmd::PROG_GET_NEXT_ID | cmd::MAP_GET_NEXT_ID | cmd::BTF_GET_NEXT_ID | cmd::LINK_GET_NEXT_ID
    ) {
        return false;
    }
    crate::sys::target_mem::read(n.pid, n.args[1], 4).is_ok_and(|b| b == [0, 0, 0, 0])
}

/// Sends the reply; returns the value the syscall got (for traces).
pub fn answer(d: &Daemon, call: &Call<'_>, reply: Reply) -> Option<i64> {
    let id = call.notif.id;
    let l = call.listener;
    let r = match reply {
        Reply::Value(v) => l.send_value(id, v).map(|_| v),
        Reply::Errno(e) => l.send_errno(id, e).map(|_| -(e as i64)),
        Reply::Continue => l.send_continue(id).map(|_| 0),
        Reply::Object(obj) => {
            // A map created with BPF_F_RDONLY/WRONLY gets an fd of that access mode.
            let mode_fd = crate::bpf::obj_pin::created_fd(&obj);
            let r = match &mode_fd {
                Ok(Some(fd)) => l.addfd_send(id, fd.as_fd(), true),
                Ok(None) => l.addfd_send(id, obj.handle(), true),
                Err(e) => l.send_errno(id, *e).and(Err(*e)),
            };
            match r {
                Ok(fd) => Ok(fd as i64),
                Err(e) => {
                    // The fd never reached the target: the object must not stay reachable.
                    d.registry.lock().unwrap().remove(&obj);
                    Err(e)
                }
            }
        }
        Reply::Shared(obj) => l.addfd_send(id, obj.handle(), true).map(|fd| fd as i64),
        Reply::Fd(fd) => l.addfd_send(id, fd.as_fd(), true).map(|fd| fd as i64),
    };
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            trace!("answer to notification {id} failed: errno {e} (target gone?)");
            None
        }
    }
}
