//! The threads serving one listener: receive a notification, dispatch it to its
//! handler, answer (SEND, or ADDFD+SEND for new fds).
//!
//! A server blocks in SECCOMP_IOCTL_NOTIF_RECV itself, not in poll(2): with
//! SYNC_WAKE_UP the kernel completes RECV on the notifying task's CPU, while a poll
//! waiter gets an ordinary wake-up (measured: ~1.5 µs more per round trip). RECV never
//! returns when the last task using the filter is gone, so one more thread waits for
//! that (poll for POLLHUP only, which notifications do not wake) and then interrupts
//! the servers with a signal.
//!
//! One server receives at a time: with two blocked in RECV the round trip is slower
//! (measured 8 -> 10-12 µs; the wake-up goes to the other, colder thread). Before a
//! call that may take long (a load, a test run, netlink, a collection) the server makes
//! sure another one receives meanwhile, so the target's other threads, or the
//! target's other processes, are not held up; a helper parks again as soon as it
//! finds another server receiving. At most [`MAX_SERVERS`] per listener.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tracing::{debug, trace, warn};

use super::Daemon;
use crate::call::{Call, Reply};
use crate::proto::TraceSink;
use crate::sys::seccomp::{nr, Listener, Notif};
use crate::sys::wake;

/// Servers of one listener at most (threads of one target served at once).
pub const MAX_SERVERS: usize = 8;

#[derive(Default)]
struct State {
    /// Servers in (or on their way to) RECV, for the final interrupt; a server leaves
    /// this list as soon as RECV returns (a listed thread always exists).
    receiving: Vec<nix::sys::pthread::Pthread>,
    /// Servers started.
    servers: usize,
    /// Parked servers, and how many of them are asked to receive.
    parked: usize,
    wanted: usize,
    done: bool,
}

struct Pool<'a> {
    d: &'a Daemon,
    listener: Listener<'a>,
    sink: Option<&'a TraceSink>,
    state: Mutex<State>,
    unpark: Condvar,
}

/// Serves `listener` until no task uses the filter any more.
pub fn serve(d: &Daemon, listener: OwnedFd, sink: Option<TraceSink>) {
    let l = Listener::new(listener.as_fd());
    if let Err(e) = l.set_sync_wake_up() {
        debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable: {e}");
    }
    wake::install();
    let pool = Pool {
        d,
        listener: l,
        sink: sink.as_ref(),
        state: Mutex::new(State::default()),
        unpark: Condvar::new(),
    };
    std::thread::scope(|s| {
        pool.state.lock().unwrap().servers = 1;
        start_server(s, &pool);
        wait_orphaned(&listener);
        pool.state.lock().unwrap().done = true;
        pool.unpark.notify_all();
        // A server blocked in RECV returns EINTR and sees `done`; one between its
        // check and RECV is interrupted again on the next round.
        loop {
            let st = pool.state.lock().unwrap();
            if st.servers == 0 {
                break;
            }
            st.receiving.iter().for_each(|&t| wake::interrupt(t));
            drop(st);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    debug!("listener done");
}

/// Returns when no task uses the filter any more (or the listener is broken).
fn wait_orphaned(listener: &OwnedFd) {
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                warn!("poll on listener: {e}");
                return;
            }
        }
        let rev = fds[0].revents().unwrap_or(PollFlags::empty());
        if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            return;
        }
    }
}

/// Starts a server thread (`servers` already counts it).
fn start_server<'s, 'p: 's>(s: &'s std::thread::Scope<'s, 'p>, pool: &'p Pool<'p>) {
    let spawned = std::thread::Builder::new()
        .name("notif-server".into())
        .spawn_scoped(s, move || {
            server(s, pool);
            pool.state.lock().unwrap().servers -= 1;
        });
    if let Err(e) = spawned {
        pool.state.lock().unwrap().servers -= 1;
        warn!("starting a notification server: {e}");
    }
}

/// Makes sure some server receives while this one handles a long call.
fn ensure_receiver<'s, 'p: 's>(s: &'s std::thread::Scope<'s, 'p>, pool: &'p Pool<'p>) {
    let mut st = pool.state.lock().unwrap();
    if !st.receiving.is_empty() || st.done {
        return;
    }
    if st.parked > st.wanted {
        st.wanted += 1;
        pool.unpark.notify_one();
    } else if st.servers < MAX_SERVERS {
        st.servers += 1;
        drop(st);
        start_server(s, pool);
    }
}

/// Whether handling `n` may take long enough to hold up the target's other calls
/// (more are found by the handlers: [`Call::long_call`]).
fn may_take_long(n: &Notif) -> bool {
    use crate::bpf::cmd::*;
    match n.nr {
        nr::BPF => matches!(
            n.args[0] as i32,
            PROG_LOAD
                | BTF_LOAD
                | PROG_TEST_RUN
                | PROG_ATTACH
                | PROG_DETACH
                | LINK_CREATE
                | LINK_UPDATE
                | LINK_DETACH
                | MAP_LOOKUP_BATCH
                | MAP_LOOKUP_AND_DELETE_BATCH
                | MAP_UPDATE_BATCH
                | MAP_DELETE_BATCH
        ),
        nr::STATFS | nr::FSTATFS | nr::EPOLL_CTL | nr::PERF_EVENT_OPEN | nr::IOCTL => false,
        // rtnetlink requests (an attach takes milliseconds), receives that may wait,
        // mounts.
        _ => true,
    }
}

fn server<'s, 'p: 's>(s: &'s std::thread::Scope<'s, 'p>, pool: &'p Pool<'p>) {
    let me = wake::this_thread();
    let tasks = std::cell::RefCell::new(crate::tasks::TaskCache::default());
    let leave = |st: &mut State| st.receiving.retain(|&t| t != me);
    loop {
        {
            let mut st = pool.state.lock().unwrap();
            if st.done {
                return;
            }
            st.receiving.push(me);
        }
        let got = pool.listener.recv();
        leave(&mut pool.state.lock().unwrap());
        match got {
            Ok(n) => {
                let long = || ensure_receiver(s, pool);
                handle(pool.d, pool.listener, n, pool.sink, &tasks, &long);
            }
            Err(libc::EINTR) | Err(libc::ENOENT) => {}
            Err(e) => {
                warn!("SECCOMP_IOCTL_NOTIF_RECV: errno {e}");
                return;
            }
        }
        // Another server receives: park until asked (one receiver is fastest).
        let mut st = pool.state.lock().unwrap();
        if !st.receiving.is_empty() {
            st.parked += 1;
            while st.wanted == 0 && !st.done {
                st = pool.unpark.wait(st).unwrap();
            }
            st.parked -= 1;
            if st.wanted > 0 {
                st.wanted -= 1;
            }
        }
    }
}

fn handle(
    d: &Daemon,
    l: Listener<'_>,
    n: Notif,
    sink: Option<&TraceSink>,
    tasks: &std::cell::RefCell<crate::tasks::TaskCache>,
    long_call: &dyn Fn(),
) {
    d.notifications.fetch_add(1, Ordering::Relaxed);
    let call = Call::new(n, d, l, sink, tasks, long_call);
    if may_take_long(&n) {
        call.long_call();
    }
    if n.nr == nr::BPF && is_id_walk_start(&n) {
        // An enumeration (bpftool prog/map show) starts: collect first, so objects
        // whose last fd is closed are gone, as they would be in the kernel.
        call.long_call();
        d.gc();
    }
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
            nr::PERF_EVENT_OPEN => crate::perf_event::perf_event_open(&call),
            nr::IOCTL => crate::perf_event::ioctl(&call),
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
