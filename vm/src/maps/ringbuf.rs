//! BPF_MAP_TYPE_RINGBUF (kernel/bpf/ringbuf.c) with the kernel's mmap layout, so
//! libbpf's `ring_buffer` consumer reads it unchanged from the map fd (a memfd):
//!
//! | file offset            | content                                   |
//! |------------------------|-------------------------------------------|
//! | 0                      | consumer_pos (u64, written by userspace)  |
//! | page                   | producer_pos (u64)                        |
//! | 2 pages                | data, `max_entries` bytes                 |
//! | 2 pages + max_entries  | the same data again                       |
//!
//! The kernel maps the data pages twice; a memfd cannot alias itself, so every
//! record byte is written to both copies on commit: a consumer reading a record
//! through the end of the first copy sees the wrap-around as with the kernel.
//! Records: 8-byte header `{u32 len | BUSY(1<<31) | DISCARD(1<<30); u32 pg_off}`.

use std::any::Any;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, Weak};

use super::shmem::{self, Shmem};
use super::{map_flags as mf, Common, CreateOpts, Map, MapAttr, MapError};
use crate::run::HelperCtx;

pub const BPF_RINGBUF_BUSY_BIT: u32 = 1 << 31;
pub const BPF_RINGBUF_DISCARD_BIT: u32 = 1 << 30;
pub const BPF_RINGBUF_HDR_SZ: usize = 8;
pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
pub const BPF_RB_AVAIL_DATA: u64 = 0;
pub const BPF_RB_RING_SIZE: u64 = 1;
pub const BPF_RB_CONS_POS: u64 = 2;
pub const BPF_RB_PROD_POS: u64 = 3;
const RINGBUF_MAX_RECORD_SZ: u64 = (u32::MAX / 4) as u64;

/// `bpf_ringbuf_submit`/`discard` got a pointer that is not a reserved record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotARecord;

/// A RINGBUF map.
pub struct RingBuf {
    c: Common,
    mem: Shmem,
    page: usize,
    size: usize,
    /// Serialises producers (the kernel's rb->spinlock); also holds pending_pos.
    lock: Mutex<u64>,
    notify: Option<OwnedFd>,
}

/// Ring buffers by data address, to find the map of a record in submit/discard.
static REGISTRY: RwLock<Vec<(u64, u64, Weak<RingBuf>)>> = RwLock::new(Vec::new());

impl RingBuf {
    /// The kernel's `ringbuf_map_alloc`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(attr: &MapAttr, opts: &CreateOpts) -> Result<Arc<dyn Map>, MapError> {
        Ok(Self::create(attr, opts)?)
    }

    /// As [`RingBuf::new`], typed.
    pub fn create(attr: &MapAttr, opts: &CreateOpts) -> Result<Arc<RingBuf>, MapError> {
        let page = shmem::page_size();
        if attr.map_flags & !mf::BPF_F_NUMA_NODE != 0
            || attr.key_size != 0
            || attr.value_size != 0
            || !attr.max_entries.is_power_of_two()
            || !(attr.max_entries as usize).is_multiple_of(page)
        {
            return Err(MapError::Inval);
        }
        let size = attr.max_entries as usize;
        let mem = Shmem::memfd("bpf-map", 2 * page + 2 * size)?;
        let rb = Arc::new(Self {
            c: Common::new(attr, opts),
            mem,
            page,
            size,
            lock: Mutex::new(0),
            notify: shmem::eventfd(),
        });
        let start = rb.mem.addr(2 * page);
        let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        reg.retain(|(_, _, w)| w.strong_count() > 0);
        reg.push((start, start + 2 * size as u64, Arc::downgrade(&rb)));
        drop(reg);
        Ok(rb)
    }

    /// The ring buffer whose data holds address `addr`.
    pub fn from_record(addr: u64) -> Option<Arc<RingBuf>> {
        let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        reg.iter()
            .find(|(s, e, _)| addr >= *s && addr < *e)
            .and_then(|(_, _, w)| w.upgrade())
    }

    /// An eventfd signalled when the kernel would wake the ring's epoll waiters.
    pub fn notify_fd(&self) -> Option<BorrowedFd<'_>> {
        self.notify.as_ref().map(|f| f.as_fd())
    }

    fn cons(&self) -> u64 {
        self.mem.u64_at(0).load(Ordering::Acquire)
    }
    fn prod(&self) -> u64 {
        self.mem.u64_at(self.page).load(Ordering::Acquire)
    }
    fn data_off(&self) -> usize {
        2 * self.page
    }
    fn hdr_len(&self, ring_off: usize) -> &std::sync::atomic::AtomicU32 {
        self.mem.u32_at(self.data_off() + ring_off)
    }

    /// `bpf_ringbuf_reserve`: the address of `size` writable bytes, or None.
    pub fn reserve(&self, size: u64) -> Option<u64> {
        if size > RINGBUF_MAX_RECORD_SZ {
            return None;
        }
        let len = (size as usize + BPF_RINGBUF_HDR_SZ + 7) & !7;
        if len > self.size {
            return None;
        }
        let mask = self.size as u64 - 1;
        let cons = self.cons();
        let mut pend = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let prod = self.prod();
        let new_prod = prod + len as u64;
        let mut pend_pos = (*pend).max(prod.saturating_sub(self.size as u64));
        while pend_pos < prod {
            let l = self
                .hdr_len((pend_pos & mask) as usize)
                .load(Ordering::Acquire);
            if l & BPF_RINGBUF_BUSY_BIT != 0 {
                break;
            }
            let t = ((l & !BPF_RINGBUF_DISCARD_BIT) as u64 + BPF_RINGBUF_HDR_SZ as u64 + 7) & !7;
            pend_pos += t;
        }
        *pend = pend_pos;
        if new_prod.wrapping_sub(cons) > mask || new_prod - pend_pos > mask {
            return None;
        }
        let off = (prod & mask) as usize;
        let pg_off = ((off + 3 * self.page) / self.page) as u32;
        self.mem
            .write(self.data_off() + off + 4, &pg_off.to_ne_bytes());
        self.mem
            .write(self.data_off() + self.size + off + 4, &pg_off.to_ne_bytes());
        self.hdr_len(off)
            .store(size as u32 | BPF_RINGBUF_BUSY_BIT, Ordering::Relaxed);
        self.hdr_len(self.size + off)
            .store(size as u32 | BPF_RINGBUF_BUSY_BIT, Ordering::Relaxed);
        self.mem
            .u64_at(self.page)
            .store(new_prod, Ordering::Release);
        Some(self.mem.addr(self.data_off() + off + BPF_RINGBUF_HDR_SZ))
    }

    /// `bpf_ringbuf_submit` / `bpf_ringbuf_discard` of the record at `sample`.
    /// Err if `sample` is not a reserved record of this ring.
    pub fn commit(&self, sample: u64, flags: u64, discard: bool) -> Result<(), NotARecord> {
        let hdr = sample
            .checked_sub(BPF_RINGBUF_HDR_SZ as u64)
            .ok_or(NotARecord)?;
        let off = self.mem.offset_of(hdr, 8).ok_or(NotARecord)?;
        if off < self.data_off() || off >= self.data_off() + self.size || off % 8 != 0 {
            return Err(NotARecord);
        }
        let ring_off = off - self.data_off();
        let l = self.hdr_len(ring_off).load(Ordering::Acquire);
        if l & BPF_RINGBUF_BUSY_BIT == 0 {
            return Err(NotARecord);
        }
        let size = (l & !(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) as usize;
        let len = (size + BPF_RINGBUF_HDR_SZ + 7) & !7;
        // Mirror the record body into the other copy (the header is handled below).
        let d = self.data_off();
        let first_end = (ring_off + len).min(self.size);
        if first_end > ring_off + 8 {
            self.mem.copy_within(
                d + ring_off + 8,
                d + self.size + ring_off + 8,
                first_end - ring_off - 8,
            );
        }
        if ring_off + len > self.size {
            let wrapped = ring_off + len - self.size;
            let skip = 8usize.saturating_sub(self.size - ring_off);
            if wrapped > skip {
                self.mem
                    .copy_within(d + self.size + skip, d + skip, wrapped - skip);
            }
        }
        let mut new_len = l ^ BPF_RINGBUF_BUSY_BIT;
        if discard {
            new_len |= BPF_RINGBUF_DISCARD_BIT;
        }
        self.hdr_len(self.size + ring_off)
            .store(new_len, Ordering::Release);
        self.hdr_len(ring_off).swap(new_len, Ordering::AcqRel);
        let cons = self.cons() & (self.size as u64 - 1);
        if flags & BPF_RB_FORCE_WAKEUP != 0
            || (cons == ring_off as u64 && flags & BPF_RB_NO_WAKEUP == 0)
        {
            if let Some(fd) = self.notify_fd() {
                shmem::eventfd_signal(fd);
            }
        }
        Ok(())
    }

    /// `bpf_ringbuf_output`: 0, -EINVAL (flags) or -EAGAIN (full).
    pub fn output(&self, data: &[u8], flags: u64) -> i64 {
        if flags & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
            return -(libc::EINVAL as i64);
        }
        let Some(addr) = self.reserve(data.len() as u64) else {
            return -(libc::EAGAIN as i64);
        };
        let off = self
            .mem
            .offset_of(addr, data.len())
            .expect("reserved record in the ring");
        self.mem.write(off, data);
        let _ = self.commit(addr, flags, false);
        0
    }

    /// `bpf_ringbuf_query`.
    pub fn query(&self, flags: u64) -> u64 {
        match flags {
            BPF_RB_AVAIL_DATA => self.prod().wrapping_sub(self.cons()),
            BPF_RB_RING_SIZE => self.size as u64,
            BPF_RB_CONS_POS => self.cons(),
            BPF_RB_PROD_POS => self.prod(),
            _ => 0,
        }
    }
}

impl Map for RingBuf {
    fn attr(&self) -> &MapAttr {
        &self.c.attr
    }
    fn sys_value_size(&self) -> usize {
        0
    }
    fn sys_lookup(&self, _key: &[u8], _value: &mut [u8], _flags: u64) -> Result<(), MapError> {
        Err(MapError::NotSupp)
    }
    fn sys_update(&self, _key: &[u8], _value: &[u8], _flags: u64) -> Result<(), MapError> {
        Err(MapError::NotSupp)
    }
    fn sys_delete(&self, _key: &[u8]) -> Result<(), MapError> {
        Err(MapError::NotSupp)
    }
    fn sys_get_next_key(&self, _key: Option<&[u8]>, _next: &mut [u8]) -> Result<(), MapError> {
        Err(MapError::NotSupp)
    }
    fn freeze(&self) -> Result<(), MapError> {
        self.c.freeze()
    }
    fn frozen(&self) -> bool {
        self.c.frozen()
    }
    fn prog_lookup(&self, _ctx: &mut dyn HelperCtx, _key: &[u8]) -> u64 {
        0
    }
    fn prog_update(
        &self,
        _ctx: &mut dyn HelperCtx,
        _key: &[u8],
        _value: &[u8],
        _flags: u64,
    ) -> i64 {
        -524
    }
    fn prog_delete(&self, _ctx: &mut dyn HelperCtx, _key: &[u8]) -> i64 {
        -524
    }
    fn mmap_fd(&self) -> Option<BorrowedFd<'_>> {
        self.mem.fd()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::map_type;

    fn rb(size: u32) -> Arc<RingBuf> {
        let attr = MapAttr {
            map_type: map_type::RINGBUF,
            max_entries: size,
            ..Default::default()
        };
        let r = RingBuf::create(&attr, &Default::default()).unwrap();
        let start = r.mem.addr(2 * r.page);
        assert!(Arc::ptr_eq(&RingBuf::from_record(start + 8).unwrap(), &r));
        r
    }

    /// A consumer as libbpf's ringbuf_process_ring, reading through the memfd's bytes.
    fn consume(r: &RingBuf) -> Vec<Vec<u8>> {
        let page = r.page;
        let mut out = vec![];
        let mut cons = r.cons();
        let prod = r.prod();
        let mut all = vec![0u8; r.mem.len()];
        r.mem.read(0, &mut all);
        let data = &all[2 * page..];
        while cons < prod {
            let off = (cons as usize) & (r.size - 1);
            let l = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap());
            if l & BPF_RINGBUF_BUSY_BIT != 0 {
                break;
            }
            let n = (l & !BPF_RINGBUF_DISCARD_BIT) as usize;
            if l & BPF_RINGBUF_DISCARD_BIT == 0 {
                out.push(data[off + 8..off + 8 + n].to_vec());
            }
            cons += ((n + 8 + 7) & !7) as u64;
        }
        r.mem.u64_at(0).store(cons, Ordering::Release);
        out
    }

    #[test]
    fn records_wrap_like_the_kernel() {
        let r = rb(4096);
        let mut expect = vec![];
        let mut got = vec![];
        for i in 0..200u32 {
            let n = (i as usize * 37) % 700 + 1;
            let rec: Vec<u8> = (0..n).map(|j| (i as usize + j) as u8).collect();
            if r.output(&rec, 0) == 0 {
                expect.push(rec);
            } else {
                got.extend(consume(&r));
                assert_eq!(r.output(&rec, 0), 0);
                expect.push(rec);
            }
            if i % 3 == 0 {
                let a = r.reserve(16).unwrap();
                r.commit(a, 0, true).unwrap();
            }
        }
        got.extend(consume(&r));
        assert_eq!(got, expect);
        assert_eq!(r.query(BPF_RB_AVAIL_DATA), 0);
        assert_eq!(r.query(BPF_RB_RING_SIZE), 4096);
        assert!(r.reserve(4096).is_none());
        assert!(r.commit(12345, 0, false).is_err());
    }

    #[test]
    fn create_checks() {
        let a = |n, k, v| MapAttr {
            map_type: map_type::RINGBUF,
            max_entries: n,
            key_size: k,
            value_size: v,
            ..Default::default()
        };
        assert!(RingBuf::new(&a(4096 * 3, 0, 0), &Default::default()).is_err());
        assert!(RingBuf::new(&a(4096, 4, 0), &Default::default()).is_err());
        assert!(RingBuf::new(&a(1024, 0, 0), &Default::default()).is_err());
        let m = RingBuf::new(&a(8192, 0, 0), &Default::default()).unwrap();
        assert_eq!(m.sys_get_next_key(None, &mut []), Err(MapError::NotSupp));
    }

    /// A consumer that maps the memfd as libbpf's `ring_buffer__add` does (consumer
    /// page read-write at offset 0; producer page + 2 x data read-only at offset one
    /// page) and reads records as `ringbuf_process_ring`, straight through the end
    /// of the first data copy.
    #[test]
    fn libbpf_style_mmap_consumer() {
        use std::os::fd::AsRawFd;
        let size = 4096usize;
        let r = rb(size as u32);
        let fd = r.mmap_fd().unwrap().as_raw_fd();
        let page = r.page;
        // SAFETY: mapping the ring's memfd with the sizes libbpf uses; unmapped below.
        let cons = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        // SAFETY: as above.
        let prod = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page + 2 * size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                page as i64,
            )
        };
        assert!(cons != libc::MAP_FAILED && prod != libc::MAP_FAILED);
        let cons_pos = cons as *const std::sync::atomic::AtomicU64;
        let prod_pos = prod as *const std::sync::atomic::AtomicU64;
        // SAFETY: the data area follows the producer page in this mapping.
        let data = unsafe { (prod as *const u8).add(page) };
        let mut sent = vec![];
        let mut got: Vec<Vec<u8>> = vec![];
        for i in 0..300usize {
            let n = (i * 53) % 1500 + 1;
            let rec: Vec<u8> = (0..n).map(|j| (i * 7 + j) as u8).collect();
            if r.output(&rec, 0) != 0 {
                // Drain like libbpf, then retry.
                // SAFETY: positions are u64s at the start of their pages.
                let (mut c, p) = unsafe {
                    (
                        (*cons_pos).load(Ordering::Acquire),
                        (*prod_pos).load(Ordering::Acquire),
                    )
                };
                while c < p {
                    let off = (c as usize) & (size - 1);
                    // SAFETY: the header and sample lie inside the doubly mapped data area.
                    let (len, sample) = unsafe {
                        let h = &*(data.add(off) as *const std::sync::atomic::AtomicU32);
                        let len = h.load(Ordering::Acquire);
                        (
                            len,
                            std::slice::from_raw_parts(
                                data.add(off + 8),
                                (len & !BPF_RINGBUF_DISCARD_BIT) as usize,
                            ),
                        )
                    };
                    assert_eq!(len & BPF_RINGBUF_BUSY_BIT, 0);
                    got.push(sample.to_vec());
                    c += ((len as usize & !(BPF_RINGBUF_DISCARD_BIT as usize)) + 8 + 7) as u64 & !7;
                    // SAFETY: as above.
                    unsafe { (*cons_pos).store(c, Ordering::Release) };
                }
                assert_eq!(r.output(&rec, 0), 0);
            }
            sent.push(rec);
        }
        // SAFETY: unmapping our own mappings.
        unsafe {
            libc::munmap(cons, page);
            libc::munmap(prod, page + 2 * size);
        }
        assert!(got.len() > 100, "the ring wrapped several times");
        assert_eq!(got[..], sent[..got.len()]);
    }
}
