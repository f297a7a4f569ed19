//! epoll_ctl on a ring buffer map fd or a BPF output perf event fd. In the kernel they
//! poll readable when records are available; our handle is the ring's memfd, which
//! epoll refuses. So an epoll_ctl naming such a fd is done by the daemon on the target's
//! epoll instance (a pidfd_getfd duplicate: same instance) with the ring's eventfd,
//! which the vm signals on every commit, edge-triggered, with the target's event data.
//! Every other epoll_ctl: CONTINUE (no policy).

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

use crate::call::{Call, Reply};
use crate::registry::Kind;
use crate::sys::pidfd;

const EPOLL_CTL_ADD: i32 = 1;
const EPOLL_CTL_DEL: i32 = 2;
const EPOLL_CTL_MOD: i32 = 3;

/// epoll_ctl(epfd, op, fd, event).
pub fn epoll_ctl(call: &Call<'_>) -> Reply {
    let (epfd, op, fd, uev) = (
        call.arg(0) as i32,
        call.arg(1) as i32,
        call.arg(2) as i32,
        call.arg(3),
    );
    let Ok(Some(obj)) = call.any_object(fd) else {
        return Reply::Continue;
    };
    let notify = match obj.kind {
        Kind::Map => obj
            .as_map()
            .unwrap()
            .map
            .as_any()
            .downcast_ref::<bpftime_vm::maps::ringbuf::RingBuf>()
            .and_then(|rb| rb.notify_fd()),
        Kind::PerfEvent => {
            // A reader polls once it has mapped the ring: size it now.
            let _ = crate::perf_event::map_ring(call, &obj);
            obj.as_perf_event().unwrap().notify_fd()
        }
        _ => None,
    };
    let Some(notify) = notify else {
        return Reply::Continue;
    };
    let r = (|| -> Result<(), i32> {
        let pfd = pidfd::open_thread(call.tid())?;
        let ep = Epoll(pidfd::getfd(&pfd, epfd).map_err(|_| libc::EBADF)?);
        if !call.valid() {
            return Err(libc::EINTR);
        }
        let ev = || -> Result<EpollEvent, i32> {
            // struct epoll_event is packed on x86_64: u32 events, u64 data.
            let b = call.read(uev, 12)?;
            let events = u32::from_ne_bytes(b[0..4].try_into().unwrap());
            let data = u64::from_ne_bytes(b[4..12].try_into().unwrap());
            let flags = EpollFlags::from_bits_retain(events as i32) | EpollFlags::EPOLLET;
            Ok(EpollEvent::new(flags, data))
        };
        match op {
            EPOLL_CTL_ADD => ep.add(notify, ev()?).map_err(|e| e as i32),
            EPOLL_CTL_MOD => {
                let mut e = ev()?;
                ep.modify(notify, &mut e).map_err(|e| e as i32)
            }
            EPOLL_CTL_DEL => ep.delete(notify).map_err(|e| e as i32),
            _ => Err(libc::EINVAL),
        }
    })();
    call.trace(|| format!("epoll_ctl(op {op}) on {:?} {}: {r:?}", obj.kind, obj.id));
    match r {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}
