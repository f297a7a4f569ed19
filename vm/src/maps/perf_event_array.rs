//! BPF_MAP_TYPE_PERF_EVENT_ARRAY (kernel/bpf/arraymap.c, `perf_event_array_map_ops`)
//! and the perf events it holds: software `PERF_COUNT_SW_BPF_OUTPUT` events whose ring
//! has the kernel's mmap layout, so libbpf's `perf_buffer` reads records unchanged.
//!
//! A [`PerfEvent`] is a memfd (the target's perf event fd). Its size is known only once
//! the target has mapped it (the kernel learns it from mmap, which bpftime cannot see):
//! the supervisor then calls [`PerfEvent::map_ring`] with the mapping's length, and the
//! ring is `struct perf_event_mmap_page` in the first page, data in the rest:
//!
//! | offset in the first page | field                                        |
//! |--------------------------|----------------------------------------------|
//! | 1024                     | data_head (u64, written here, release)       |
//! | 1032                     | data_tail (u64, written by the reader)       |
//! | 1040 / 1048              | data_offset / data_size                      |
//!
//! Records are 8-byte aligned and wrap around the data area; a full ring drops the
//! sample, counts it, and writes a PERF_RECORD_LOST before the next sample that fits.
//! Readers are woken through an eventfd (the supervisor's epoll emulation) every
//! `wakeup_events` samples, or once `wakeup_watermark` bytes are unread.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::prog_array::{fd_array_check, fd_array_map_ops, index, FdSlots};
use super::shmem::{self, Shmem};
use super::{Common, CreateOpts, Map, MapAttr, MapError};

/// `PERF_SAMPLE_*` bits a BPF output event can carry here, in record order.
pub mod sample {
    pub const IP: u64 = 1 << 0;
    pub const TID: u64 = 1 << 1;
    pub const TIME: u64 = 1 << 2;
    pub const ADDR: u64 = 1 << 3;
    pub const ID: u64 = 1 << 6;
    pub const CPU: u64 = 1 << 7;
    pub const PERIOD: u64 = 1 << 8;
    pub const STREAM_ID: u64 = 1 << 9;
    pub const RAW: u64 = 1 << 10;
    pub const IDENTIFIER: u64 = 1 << 16;
    /// Everything above.
    pub const SUPPORTED: u64 =
        IP | TID | TIME | ADDR | ID | CPU | PERIOD | STREAM_ID | RAW | IDENTIFIER;
}

const PERF_RECORD_LOST: u16 = 2;
const PERF_RECORD_SAMPLE: u16 = 9;
const PERF_RECORD_MISC_KERNEL: u16 = 1;
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;

/// What `perf_event_open` asked for (the fields a BPF output event uses).
#[derive(Debug, Clone, Copy, Default)]
pub struct PerfEventAttr {
    pub sample_type: u64,
    /// Wake the reader every this many samples (0 counts as 1)...
    pub wakeup_events: u32,
    /// ... or, with `watermark`, once this many bytes are unread.
    pub watermark: bool,
    /// Created disabled (`attr.disabled`): outputs fail until PERF_EVENT_IOC_ENABLE.
    pub disabled: bool,
    /// `use_clockid` + `clockid` for PERF_SAMPLE_TIME (else CLOCK_MONOTONIC).
    pub clockid: Option<i32>,
    /// The CPU the event counts on (`perf_event_open`'s cpu).
    pub cpu: u32,
}

struct RingState {
    head: u64,
    /// Samples dropped since the last PERF_RECORD_LOST.
    lost: u64,
    /// Samples since the last wake-up.
    since_wakeup: u32,
}

/// One perf event (a target's fd): its ring once mapped.
pub struct PerfEvent {
    memfd: OwnedFd,
    attr: PerfEventAttr,
    id: u64,
    enabled: AtomicBool,
    ring: OnceLock<Shmem>,
    state: Mutex<RingState>,
    notify: Option<OwnedFd>,
}

impl std::fmt::Debug for PerfEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfEvent")
            .field("id", &self.id)
            .field("attr", &self.attr)
            .field("mapped", &self.ring.get().map(|r| r.len()))
            .finish()
    }
}

impl PerfEvent {
    /// A BPF output event: a fresh memfd named `name` (the target's fd).
    pub fn new(name: &str, attr: PerfEventAttr) -> Result<Arc<Self>, MapError> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        if attr.sample_type & !sample::SUPPORTED != 0 {
            return Err(MapError::OpNotSupp);
        }
        Ok(Arc::new(Self {
            memfd: shmem::memfd_unsized(name)?,
            attr,
            id: IDS.fetch_add(1, Ordering::Relaxed),
            enabled: AtomicBool::new(!attr.disabled),
            ring: OnceLock::new(),
            state: Mutex::new(RingState {
                head: 0,
                lost: 0,
                since_wakeup: 0,
            }),
            notify: shmem::eventfd(),
        }))
    }

    /// The fd the target holds.
    pub fn handle(&self) -> BorrowedFd<'_> {
        self.memfd.as_fd()
    }
    /// The eventfd signalled when the reader should wake.
    pub fn notify_fd(&self) -> Option<BorrowedFd<'_>> {
        self.notify.as_ref().map(|f| f.as_fd())
    }
    /// `PERF_EVENT_IOC_ID`.
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn attr(&self) -> &PerfEventAttr {
        &self.attr
    }
    /// `PERF_EVENT_IOC_ENABLE` / `DISABLE`.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }
    pub fn is_mapped(&self) -> bool {
        self.ring.get().is_some()
    }

    /// The target mapped `len` bytes of the fd: one header page and 2^n data pages, as
    /// the kernel's `perf_mmap` requires (EINVAL otherwise). Done once; later calls
    /// with another length are EINVAL, with the same length no-ops.
    pub fn map_ring(&self, len: usize) -> Result<(), MapError> {
        let page = shmem::page_size();
        if let Some(r) = self.ring.get() {
            return if r.len() == len {
                Ok(())
            } else {
                Err(MapError::Inval)
            };
        }
        let data = len.checked_sub(page).ok_or(MapError::Inval)?;
        if data == 0 || !(data / page).is_power_of_two() || !data.is_multiple_of(page) {
            return Err(MapError::Inval);
        }
        let mem = Shmem::map_memfd(&self.memfd, len)?;
        mem.u64_at(DATA_OFFSET)
            .store(page as u64, Ordering::Relaxed);
        mem.u64_at(DATA_SIZE).store(data as u64, Ordering::Relaxed);
        let _ = self.ring.set(mem);
        Ok(())
    }

    fn now(&self) -> u64 {
        shmem::clock_ns(self.attr.clockid.unwrap_or(libc::CLOCK_MONOTONIC))
    }

    /// `perf_event_output` of a sample whose raw data is the concatenation of `raw`
    /// (the kernel's `bpf_perf_event_output`, on CPU `cpu`): 0, or a negative errno.
    pub fn output(&self, raw: &[&[u8]], cpu: u32) -> i64 {
        if !self.enabled.load(Ordering::Acquire) || self.attr.cpu != cpu {
            // The kernel's `event->oncpu != cpu`: an event counts on its own CPU only.
            return -(libc::EOPNOTSUPP as i64);
        }
        let Some(ring) = self.ring.get() else {
            // No buffer yet (not mapped): the kernel has nowhere to write either.
            return -(libc::ENOSPC as i64);
        };
        let st = self.attr.sample_type;
        let raw_len: usize = raw.iter().map(|r| r.len()).sum();
        let mut rec: Vec<u8> = Vec::with_capacity(64 + raw_len);
        rec.extend_from_slice(&[0u8; 8]); // header, filled below
        let time = if st & sample::TIME != 0 {
            self.now()
        } else {
            0
        };
        let mut put = |bit: u64, v: u64| {
            if st & bit != 0 {
                rec.extend_from_slice(&v.to_ne_bytes());
            }
        };
        put(sample::IDENTIFIER, self.id);
        put(sample::IP, 0);
        put(sample::TID, 0);
        put(sample::TIME, time);
        put(sample::ADDR, 0);
        put(sample::ID, self.id);
        put(sample::STREAM_ID, self.id);
        put(sample::CPU, cpu as u64);
        put(sample::PERIOD, 1);
        if st & sample::RAW != 0 {
            // u32 size, the data, padded so that the record stays 8-byte aligned.
            let padded = (raw_len + 4).next_multiple_of(8) - 4;
            rec.extend_from_slice(&(padded as u32).to_ne_bytes());
            raw.iter().for_each(|r| rec.extend_from_slice(r));
            rec.resize(rec.len() + padded - raw_len, 0);
        }
        let Ok(size) = u16::try_from(rec.len()) else {
            return -(libc::E2BIG as i64);
        };
        rec[0..4].copy_from_slice(&(PERF_RECORD_SAMPLE as u32).to_ne_bytes());
        rec[4..6].copy_from_slice(&PERF_RECORD_MISC_KERNEL.to_ne_bytes());
        rec[6..8].copy_from_slice(&size.to_ne_bytes());
        self.write(ring, &rec)
    }

    fn write(&self, ring: &Shmem, rec: &[u8]) -> i64 {
        let page = shmem::page_size();
        let data = ring.len() - page;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tail = ring.u64_at(DATA_TAIL).load(Ordering::Acquire);
        let free = |head: u64| (data as u64).saturating_sub(head.wrapping_sub(tail));
        let put = |head: u64, bytes: &[u8]| {
            let off = (head % data as u64) as usize;
            let first = bytes.len().min(data - off);
            ring.write(page + off, &bytes[..first]);
            ring.write(page, &bytes[first..]);
        };
        if s.lost > 0 {
            // PERF_RECORD_LOST { header, u64 id, u64 lost } goes first when it fits.
            let mut lost = Vec::with_capacity(24);
            lost.extend_from_slice(&(PERF_RECORD_LOST as u32).to_ne_bytes());
            lost.extend_from_slice(&0u16.to_ne_bytes());
            lost.extend_from_slice(&24u16.to_ne_bytes());
            lost.extend_from_slice(&self.id.to_ne_bytes());
            lost.extend_from_slice(&s.lost.to_ne_bytes());
            if free(s.head) < (lost.len() + rec.len()) as u64 {
                s.lost += 1;
                return -(libc::ENOSPC as i64);
            }
            put(s.head, &lost);
            s.head += lost.len() as u64;
            s.lost = 0;
        } else if free(s.head) < rec.len() as u64 {
            s.lost += 1;
            return -(libc::ENOSPC as i64);
        }
        put(s.head, rec);
        s.head += rec.len() as u64;
        ring.u64_at(DATA_HEAD).store(s.head, Ordering::Release);
        s.since_wakeup += 1;
        let wake = if self.attr.watermark {
            s.head.wrapping_sub(tail) >= self.attr.wakeup_events.max(1) as u64
        } else {
            s.since_wakeup >= self.attr.wakeup_events.max(1)
        };
        if wake {
            s.since_wakeup = 0;
            if let Some(n) = &self.notify {
                shmem::eventfd_signal(n.as_fd());
            }
        }
        0
    }
}

/// A PERF_EVENT_ARRAY map: index -> perf event (stored by the supervisor from fds).
pub struct PerfEventArray {
    c: Common,
    slots: FdSlots<Arc<PerfEvent>>,
}

impl PerfEventArray {
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Self, MapError> {
        // BPF_F_PRESERVE_ELEMS is for this fd array only (array_map_alloc_check).
        fd_array_check(&MapAttr {
            map_flags: attr.map_flags & !super::map_flags::BPF_F_PRESERVE_ELEMS,
            ..attr.clone()
        })?;
        Ok(Self {
            c: Common::new(attr, opts),
            slots: FdSlots::new(attr.max_entries)?,
        })
    }

    /// Checks an update before the supervisor resolves the fd (the kernel's order).
    pub fn check_update(&self, key: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.sys_write_ok()?;
        if flags != super::update_flags::BPF_ANY {
            return Err(MapError::Inval);
        }
        if index(key) >= self.c.attr.max_entries {
            return Err(MapError::TooBig);
        }
        Ok(())
    }

    /// `BPF_MAP_UPDATE_ELEM` with a resolved perf event.
    pub fn set(&self, idx: u32, ev: Arc<PerfEvent>) -> Result<(), MapError> {
        self.slots.set(idx, ev)
    }

    /// The event at `idx`.
    pub fn get(&self, idx: u32) -> Option<Arc<PerfEvent>> {
        self.slots.get(idx)
    }

    /// `bpf_perf_event_output`'s `flags`: the index (BPF_F_CURRENT_CPU: the CPU's) and,
    /// in bits 32-51, how many bytes of the context (the packet) follow `data`.
    pub fn output(&self, flags: u64, raw: &[&[u8]], cpu: u32) -> i64 {
        const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
        const BPF_F_CURRENT_CPU: u64 = BPF_F_INDEX_MASK;
        let idx = match flags & BPF_F_INDEX_MASK {
            BPF_F_CURRENT_CPU => cpu,
            i => i as u32,
        };
        if idx >= self.c.attr.max_entries {
            return -(libc::E2BIG as i64);
        }
        match self.get(idx) {
            Some(ev) => ev.output(raw, cpu),
            None => -(libc::ENOENT as i64),
        }
    }
}

impl Map for PerfEventArray {
    fd_array_map_ops!();
    /// The kernel has no syscall lookup for this fd array: ENOTSUPP (524).
    fn sys_lookup(&self, _key: &[u8], _value: &mut [u8], flags: u64) -> Result<(), MapError> {
        self.c.lookup_flags_ok(flags)?;
        Err(MapError::NotSupp)
    }
    /// Userspace passes a perf event fd, which only the supervisor can resolve.
    fn sys_update(&self, key: &[u8], _value: &[u8], flags: u64) -> Result<(), MapError> {
        self.c.lock_flag_ok(flags)?;
        self.check_update(key, flags)?;
        Err(MapError::BadFd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sample_type: u64, wakeup_events: u32) -> Arc<PerfEvent> {
        let ev = PerfEvent::new(
            "test",
            PerfEventAttr {
                sample_type,
                wakeup_events,
                cpu: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let page = shmem::page_size();
        assert_eq!(ev.map_ring(4 * page), Err(MapError::Inval), "3 data pages");
        ev.map_ring(2 * page).unwrap();
        ev.map_ring(2 * page).unwrap();
        ev
    }

    /// (type, size, payload) of every record between tail and head; advances the tail.
    fn read_all(ev: &PerfEvent) -> Vec<(u32, Vec<u8>)> {
        let r = ev.ring.get().unwrap();
        let page = shmem::page_size();
        let data = r.len() - page;
        let head = r.u64_at(DATA_HEAD).load(Ordering::Acquire);
        let mut tail = r.u64_at(DATA_TAIL).load(Ordering::Acquire);
        let mut out = Vec::new();
        let byte = |at: u64| {
            let mut b = [0u8];
            r.read(page + (at % data as u64) as usize, &mut b);
            b[0]
        };
        while tail < head {
            let hdr: Vec<u8> = (0..8).map(|i| byte(tail + i)).collect();
            let ty = u32::from_ne_bytes(hdr[0..4].try_into().unwrap());
            let size = u16::from_ne_bytes(hdr[6..8].try_into().unwrap()) as u64;
            out.push((ty, (8..size).map(|i| byte(tail + i)).collect()));
            tail += size;
        }
        r.u64_at(DATA_TAIL).store(tail, Ordering::Release);
        out
    }

    #[test]
    fn samples_wrap_and_lost_records_follow_a_full_ring() {
        let ev = event(sample::RAW, 1);
        let r = ev.ring.get().unwrap();
        assert_eq!(
            r.u64_at(DATA_SIZE).load(Ordering::Relaxed),
            shmem::page_size() as u64
        );
        // Wrong CPU or disabled: the kernel's -EOPNOTSUPP.
        assert_eq!(ev.output(&[&[1]], 0), -(libc::EOPNOTSUPP as i64));
        ev.set_enabled(false);
        assert_eq!(ev.output(&[&[1]], 1), -(libc::EOPNOTSUPP as i64));
        ev.set_enabled(true);
        // 13 bytes of raw data: u32 size 20 (padded to 8 with the header), 32-byte records.
        let payload = [7u8; 13];
        let mut n = 0;
        while ev.output(&[&payload[..5], &payload[5..]], 1) == 0 {
            n += 1;
        }
        assert_eq!(n, shmem::page_size() / 32);
        assert_eq!(ev.output(&[&payload], 1), -(libc::ENOSPC as i64));
        let recs = read_all(&ev);
        assert_eq!(recs.len(), n);
        assert!(recs.iter().all(|(t, b)| *t == 9
            && b.len() == 24
            && u32::from_ne_bytes(b[0..4].try_into().unwrap()) == 20
            && b[4..17] == payload));
        // Room again: first the LOST record (2 samples dropped), then the sample.
        assert_eq!(ev.output(&[&payload[..3]], 1), 0);
        let recs = read_all(&ev);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].0, 2);
        assert_eq!(u64::from_ne_bytes(recs[0].1[8..16].try_into().unwrap()), 2);
        assert_eq!(recs[1].1[4..7], payload[..3]);
    }

    #[test]
    fn sample_fields_in_the_kernel_order() {
        let ev = event(
            sample::IDENTIFIER | sample::TIME | sample::CPU | sample::RAW,
            1,
        );
        let arr = PerfEventArray::new(
            &MapAttr {
                map_type: super::super::map_type::PERF_EVENT_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 2,
                ..Default::default()
            },
            &CreateOpts::default(),
        )
        .unwrap();
        arr.set(1, ev.clone()).unwrap();
        assert_eq!(arr.output(0xffff_ffff, &[&[1, 2, 3, 4]], 1), 0);
        assert_eq!(arr.output(0, &[&[1]], 1), -(libc::ENOENT as i64));
        let recs = read_all(&ev);
        let b = &recs[0].1;
        assert_eq!(u64::from_ne_bytes(b[0..8].try_into().unwrap()), ev.id());
        assert!(u64::from_ne_bytes(b[8..16].try_into().unwrap()) > 0, "time");
        assert_eq!(u32::from_ne_bytes(b[16..20].try_into().unwrap()), 1, "cpu");
        assert_eq!(
            u32::from_ne_bytes(b[24..28].try_into().unwrap()),
            4,
            "raw size"
        );
        assert_eq!(b[28..32], [1, 2, 3, 4]);
    }
}
