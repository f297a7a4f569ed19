//! perf_event_open(2) and perf's ioctls for BPF output events (`PERF_TYPE_SOFTWARE`,
//! `PERF_COUNT_SW_BPF_OUTPUT`): what libbpf's `perf_buffer` and xdpdump open, one per
//! CPU, to receive `bpf_perf_event_output` samples. The event is a memfd with the
//! kernel's ring layout ([`bpftime_vm::maps::perf_event_array`]); every other perf
//! event is the kernel's (CONTINUE).
//!
//! The kernel sizes the ring at mmap, which bpftime does not see: the first ioctl
//! ENABLE, epoll_ctl or PERF_EVENT_ARRAY update after the target mapped the fd reads
//! the mapping's length from `/proc/TID/maps` ([`map_ring`]).

use std::sync::Arc;

use bpftime_vm::maps::perf_event_array::{PerfEvent, PerfEventAttr};

use crate::call::{cap, Call, Reply};
use crate::registry::{Body, Kind, Object};

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_ATTR_SIZE_VER0: usize = 64;
/// The fields read here end with `clockid` (offset 92).
const ATTR_READ: usize = 96;
const PERF_FLAG_FD_CLOEXEC: u64 = 8;

/// perf_event_open(attr, pid, cpu, group_fd, flags).
pub fn perf_event_open(call: &Call<'_>) -> Reply {
    let (uattr, pid, cpu, group_fd, flags) = (
        call.arg(0),
        call.arg(1) as i32,
        call.arg(2) as i32,
        call.arg(3) as i32,
        call.arg(4),
    );
    let Ok(head) = call.read(uattr, 16) else {
        return Reply::Continue;
    };
    let ty = u32::from_ne_bytes(head[0..4].try_into().unwrap());
    let config = u64::from_ne_bytes(head[8..16].try_into().unwrap());
    if ty != PERF_TYPE_SOFTWARE || config != PERF_COUNT_SW_BPF_OUTPUT {
        return Reply::Continue;
    }
    // Only CPU-wide events (what perf buffers use) are emulated; a per-task output
    // event stays the kernel's, which bpftime's programs cannot write to.
    if pid != -1 || cpu < 0 || group_fd != -1 || flags & !PERF_FLAG_FD_CLOEXEC != 0 {
        call.trace(|| {
            format!("perf_event_open: BPF output event pid {pid} cpu {cpu}: left to the kernel")
        });
        return Reply::Continue;
    }
    match open(call, uattr, cpu as u32) {
        Ok(r) => r,
        Err(e) => Reply::Errno(e),
    }
}

fn open(call: &Call<'_>, uattr: u64, cpu: u32) -> Result<Reply, i32> {
    let size = u32::from_ne_bytes(call.read(uattr + 4, 4)?.try_into().unwrap()) as usize;
    let size = if size == 0 { PERF_ATTR_SIZE_VER0 } else { size };
    if !(PERF_ATTR_SIZE_VER0..=4096).contains(&size) {
        return Err(libc::E2BIG);
    }
    let mut a = call.read(uattr, size.min(ATTR_READ))?;
    a.resize(ATTR_READ, 0);
    let u64_at = |o: usize| u64::from_ne_bytes(a[o..o + 8].try_into().unwrap());
    if cpu as usize >= bpftime_vm::maps::possible_cpus() {
        return Err(libc::EINVAL);
    }
    // A CPU-wide event: perf_allow_cpu (CAP_PERFMON or CAP_SYS_ADMIN under the
    // default perf_event_paranoid).
    let creds = call.creds()?;
    if !creds.has(cap::PERFMON) && !creds.has(cap::SYS_ADMIN) {
        return Err(libc::EACCES);
    }
    let bits = u64_at(40);
    let bit = |n: u32| bits & (1 << n) != 0;
    let attr = PerfEventAttr {
        sample_type: u64_at(24),
        wakeup_events: u32::from_ne_bytes(a[48..52].try_into().unwrap()),
        watermark: bit(14),
        disabled: bit(0),
        clockid: bit(25).then(|| i32::from_ne_bytes(a[92..96].try_into().unwrap())),
        cpu,
    };
    let ev = PerfEvent::new(Kind::PerfEvent.memfd_name(), attr).map_err(|e| {
        call.trace(|| format!("perf_event_open: sample_type {:#x}: {e}", attr.sample_type));
        e.errno()
    })?;
    let handle = Call::dup(&ev.handle())?;
    let obj = call
        .daemon
        .registry
        .lock()
        .unwrap()
        .insert(Kind::PerfEvent, handle, Body::PerfEvent(ev), creds.uid)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    call.trace(|| format!("perf_event_open: BPF output event on CPU {cpu}: {attr:?}"));
    Ok(Reply::Object(obj))
}

/// The perf event behind the target's fd `fd`, if it is one of bpftime's.
fn event_of(call: &Call<'_>, fd: i32) -> Option<Arc<Object>> {
    call.any_object(fd)
        .ok()
        .flatten()
        .filter(|o| o.kind == Kind::PerfEvent)
}

/// ioctl(fd, request, arg) of perf's type on one of bpftime's events; any other fd is
/// the kernel's.
pub fn ioctl(call: &Call<'_>) -> Reply {
    const ENABLE: u64 = 0x2400;
    const DISABLE: u64 = 0x2401;
    const REFRESH: u64 = 0x2402;
    const RESET: u64 = 0x2403;
    const SET_OUTPUT: u64 = 0x2405;
    const ID: u64 = 0x8008_2407;
    const SET_BPF: u64 = 0x4004_2408;
    const PAUSE_OUTPUT: u64 = 0x4004_2409;
    let (fd, req, arg) = (call.arg(0) as i32, call.arg(1) as u32 as u64, call.arg(2));
    let Some(obj) = event_of(call, fd) else {
        return Reply::Continue;
    };
    let ev = obj.as_perf_event().unwrap();
    let r: Result<i64, i32> = match req {
        ENABLE => {
            let _ = map_ring(call, &obj);
            ev.set_enabled(true);
            Ok(0)
        }
        DISABLE => {
            ev.set_enabled(false);
            Ok(0)
        }
        RESET => Ok(0),
        // Overflow refresh applies to sampling events with a period: not this one.
        REFRESH => Err(libc::EINVAL),
        // Redirecting the output into another event's ring: only "none" (-1).
        SET_OUTPUT if arg as i32 == -1 => Ok(0),
        SET_OUTPUT => Err(libc::EINVAL),
        ID => call.write(arg, &ev.id().to_ne_bytes()).map(|_| 0),
        PAUSE_OUTPUT => {
            ev.set_enabled(arg == 0);
            Ok(0)
        }
        // A program attached to a software event: the kernel refuses too.
        SET_BPF => Err(libc::EINVAL),
        _ => Err(libc::ENOTTY),
    };
    call.trace(|| format!("ioctl(perf event {}, {req:#x}) = {r:?}", obj.id));
    r.into()
}

/// Sizes the ring of `obj` from the target's mapping of it, if there is one yet
/// (EINVAL: mapped with a size the kernel refuses; ENOENT: not mapped).
pub fn map_ring(call: &Call<'_>, obj: &Object) -> Result<(), i32> {
    let ev = obj.as_perf_event().ok_or(libc::EINVAL)?;
    if ev.is_mapped() {
        return Ok(());
    }
    let maps = std::fs::read_to_string(call.proc_path("maps")).map_err(|_| libc::ESRCH)?;
    let (dev, ino) = obj.key;
    let want_dev = format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev));
    let len = maps
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 || f[2] != "00000000" || f[3] != want_dev || f[4] != ino.to_string() {
                return None;
            }
            let (s, e) = f[0].split_once('-')?;
            Some(u64::from_str_radix(e, 16).ok()? - u64::from_str_radix(s, 16).ok()?)
        })
        .ok_or(libc::ENOENT)?;
    ev.map_ring(len as usize).map_err(|e| {
        call.trace(|| format!("perf event {}: a mapping of {len} bytes: {e}", obj.id));
        e.errno()
    })
}

/// A PERF_EVENT_ARRAY update: the value is a perf event fd of the target.
pub fn array_entry(call: &Call<'_>, fd: i32) -> Result<Arc<PerfEvent>, i32> {
    let Some(obj) = event_of(call, fd) else {
        // perf_event_get: EBADF for anything but a perf event. One the kernel made
        // (not a BPF output event) cannot receive bpftime's samples.
        let link =
            std::fs::read_link(call.proc_path(&format!("fd/{fd}"))).map_err(|_| libc::EBADF)?;
        if link.to_string_lossy().contains("[perf_event]") {
            call.trace(|| format!("PERF_EVENT_ARRAY: fd {fd} is a kernel perf event: EOPNOTSUPP"));
            return Err(libc::EOPNOTSUPP);
        }
        return Err(libc::EBADF);
    };
    let _ = map_ring(call, &obj);
    Ok(obj.as_perf_event().unwrap().clone())
}
