//! Raw memory that programs, the control plane and (for mmap-able maps) the target
//! share: one zeroed, 8-byte aligned block, on the heap or in a memfd mapped
//! `MAP_SHARED`. This is the only module of the maps with `unsafe`: every access
//! goes through bounds-checked methods, and bytes are copied with relaxed atomic
//! word accesses so that a program writing the same value concurrently (as the
//! kernel allows) is not a data race in the Rust sense.

use std::alloc::Layout;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use std::sync::Arc;

use crossbeam_queue::SegQueue;

use super::MapError;

enum Backing {
    Heap(Layout),
    /// An anonymous private mapping of `len` bytes, populated when made.
    Anon(usize),
    Mmap {
        fd: OwnedFd,
        len: usize,
    },
    /// Slot `.1` of a [`Slab`], given back to it on drop.
    Slot(Arc<Slab>, u32),
}

/// `n` fixed-size slots carved out of one block, as the kernel preallocates hash
/// map elements: values then live at addresses that stay valid for the whole life
/// of the map, so a program may be given them without registering each one.
pub struct Slab {
    mem: Shmem,
    slot: usize,
    n: u32,
    /// Slots never handed out start at `next`; freed ones wait in `free`.
    next: AtomicU32,
    free: SegQueue<u32>,
}

impl Slab {
    /// `n` slots of `slot` bytes (a multiple of 8); `ENOMEM` when they cannot be had.
    pub fn new(slot: usize, n: u32) -> Result<Arc<Self>, MapError> {
        let len = slot.checked_mul(n as usize).ok_or(MapError::NoMem)?;
        Ok(Arc::new(Self {
            mem: Shmem::heap(len)?,
            slot,
            n,
            next: AtomicU32::new(0),
            free: SegQueue::new(),
        }))
    }

    /// A zeroed slot, or `None` when all are in use (or not yet given back).
    pub fn alloc(self: &Arc<Self>) -> Option<Shmem> {
        let i = match self.free.pop() {
            Some(i) => {
                self.mem.zero(i as usize * self.slot, self.slot);
                i
            }
            None => self
                .next
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    (v < self.n).then_some(v + 1)
                })
                .ok()?,
        };
        let ptr = NonNull::new(self.mem.addr(i as usize * self.slot) as *mut u8)?;
        Some(Shmem {
            ptr,
            len: self.slot,
            backing: Backing::Slot(self.clone(), i),
        })
    }

    /// Address of the first slot.
    pub fn base(&self) -> u64 {
        self.mem.addr(0)
    }

    /// Whether `addr` lies in the slab.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.base()) < self.mem.len() as u64
    }
}

/// A zeroed, 8-byte aligned block of shared memory.
pub struct Shmem {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: the block is plain memory owned by this value; every access goes through
// atomics (or is a read of immutable data), so sharing between threads is sound.
unsafe impl Send for Shmem {}
// SAFETY: see above.
unsafe impl Sync for Shmem {}

/// The page size of this machine.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// Total RAM of this machine in bytes (an upper bound for what a map may preallocate).
pub fn total_ram() -> u64 {
    // SAFETY: sysinfo only writes into the struct we pass.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is a valid, writable sysinfo struct.
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return u64::MAX;
    }
    (si.totalram as u64).saturating_mul(si.mem_unit.max(1) as u64)
}

/// `len` bytes mapped read-write (`flags`, `fd` as mmap takes them); a block of
/// [`MIN_RESERVED`](super::reserve::MIN_RESERVED) or more is reserved first and its pages
/// populated now, so that later use cannot fail or get the daemon OOM-killed.
fn map_reserved(len: usize, flags: i32, fd: i32) -> Result<NonNull<u8>, MapError> {
    let reserve = len >= super::reserve::MIN_RESERVED;
    let map = || {
        // SAFETY: a fresh mapping of `len` bytes (of our own fd, if any, truncated to at
        // least `len`); the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        if reserve && !populate(p, len) {
            // SAFETY: unmapping the mapping made just above.
            unsafe { libc::munmap(p, len) };
            return None;
        }
        NonNull::new(p.cast::<u8>())
    };
    if reserve {
        super::reserve::reserved(len, map)
    } else {
        map()
    }
    .ok_or(MapError::NoMem)
}

/// Fault in every page of `[p, p+len)` now (its memory is then the map's until it is
/// freed); false when the kernel cannot supply them. Kernels before 5.14 lack
/// `MADV_POPULATE_WRITE`: the pages then come on first use, as before.
fn populate(p: *mut libc::c_void, len: usize) -> bool {
    // SAFETY: advice on a mapping of `len` bytes we just made.
    let r = unsafe { libc::madvise(p, len, libc::MADV_POPULATE_WRITE) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

impl Shmem {
    /// `len` zeroed bytes on the heap; `ENOMEM` when they cannot be allocated.
    pub fn heap(len: usize) -> Result<Self, MapError> {
        let len = len.max(8);
        if len >= super::reserve::MIN_RESERVED {
            return Self::anon(len);
        }
        let layout = Layout::from_size_align(len, 8).map_err(|_| MapError::NoMem)?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(p).ok_or(MapError::NoMem)?;
        Ok(Self {
            ptr,
            len,
            backing: Backing::Heap(layout),
        })
    }

    /// `len` (rounded up to pages) zeroed bytes of private anonymous memory, reserved
    /// and populated now (`reserve`).
    fn anon(len: usize) -> Result<Self, MapError> {
        let len = len
            .checked_next_multiple_of(page_size())
            .ok_or(MapError::NoMem)?;
        let p = map_reserved(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)?;
        Ok(Self {
            ptr: p,
            len,
            backing: Backing::Anon(len),
        })
    }

    /// `len` (rounded up to pages) zeroed bytes in a memfd named `name`, mapped shared.
    pub fn memfd(name: &str, len: usize) -> Result<Self, MapError> {
        let len = len
            .max(1)
            .checked_next_multiple_of(page_size())
            .ok_or(MapError::NoMem)?;
        if len as u64 > total_ram() {
            return Err(MapError::NoMem);
        }
        Self::map_shared(memfd_unsized(name)?, len)
    }

    /// `len` bytes of the existing memfd `fd` (grown to `len`), mapped shared and
    /// populated now; the mapping keeps its own duplicate of the fd.
    pub fn map_memfd(fd: &OwnedFd, len: usize) -> Result<Self, MapError> {
        if len == 0 || !len.is_multiple_of(page_size()) || len as u64 > total_ram() {
            return Err(MapError::Inval);
        }
        Self::map_shared(fd.try_clone().map_err(|_| MapError::NoMem)?, len)
    }

    /// Sizes `fd` to `len` bytes and maps them shared (reserved and populated).
    fn map_shared(fd: OwnedFd, len: usize) -> Result<Self, MapError> {
        // SAFETY: ftruncate on our own fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(MapError::NoMem);
        }
        let ptr = map_reserved(len, libc::MAP_SHARED, fd.as_raw_fd())?;
        Ok(Self {
            ptr,
            len,
            backing: Backing::Mmap { fd, len },
        })
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (blocks have at least 8 bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd behind an mmap-able block.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backing {
            Backing::Mmap { fd, .. } => Some(fd.as_fd()),
            Backing::Heap(_) | Backing::Anon(_) | Backing::Slot(..) => None,
        }
    }

    /// Address of byte `off` (what a program receives as a pointer).
    #[inline]
    pub fn addr(&self, off: usize) -> u64 {
        assert!(off <= self.len, "shmem offset out of range");
        self.ptr.as_ptr() as u64 + off as u64
    }

    /// Whether `[addr, addr+len)` lies in this block; returns the offset.
    pub fn offset_of(&self, addr: u64, len: usize) -> Option<usize> {
        let base = self.ptr.as_ptr() as u64;
        let off = addr.checked_sub(base)? as usize;
        (off <= self.len && len <= self.len - off).then_some(off)
    }

    #[inline]
    fn check(&self, off: usize, len: usize) {
        assert!(
            off <= self.len && len <= self.len - off,
            "shmem access out of range"
        );
    }

    /// Copy `dst.len()` bytes from offset `off` out of the block.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        let mut i = 0;
        let base = self.ptr.as_ptr();
        while i < dst.len() {
            // SAFETY: in bounds (checked above); words only when 8-aligned.
            unsafe {
                let p = base.add(off + i);
                if (p as usize).is_multiple_of(8) && dst.len() - i >= 8 {
                    let w = (*(p as *const AtomicU64)).load(Ordering::Relaxed);
                    dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                    i += 8;
                } else {
                    dst[i] = (*(p as *const AtomicU8)).load(Ordering::Relaxed);
                    i += 1;
                }
            }
        }
    }

    /// Copy `src` into the block at offset `off`.
    pub fn write(&self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        let mut i = 0;
        let base = self.ptr.as_ptr();
        while i < src.len() {
            // SAFETY: in bounds (checked above); words only when 8-aligned.
            unsafe {
                let p = base.add(off + i);
                if (p as usize).is_multiple_of(8) && src.len() - i >= 8 {
                    let w = u64::from_ne_bytes(src[i..i + 8].try_into().unwrap());
                    (*(p as *const AtomicU64)).store(w, Ordering::Relaxed);
                    i += 8;
                } else {
                    (*(p as *const AtomicU8)).store(src[i], Ordering::Relaxed);
                    i += 1;
                }
            }
        }
    }

    /// Copy `len` bytes inside the block from `from` to `to` (non-overlapping).
    pub fn copy_within(&self, from: usize, to: usize, len: usize) {
        let mut buf = vec![0u8; len];
        self.read(from, &mut buf);
        self.write(to, &buf);
    }

    /// Set `len` bytes at `off` to zero.
    pub fn zero(&self, off: usize, len: usize) {
        self.check(off, len);
        let mut i = 0;
        let base = self.ptr.as_ptr();
        while i < len {
            // SAFETY: in bounds (checked above); words only when 8-aligned.
            unsafe {
                let p = base.add(off + i);
                if (p as usize).is_multiple_of(8) && len - i >= 8 {
                    (*(p as *const AtomicU64)).store(0, Ordering::Relaxed);
                    i += 8;
                } else {
                    (*(p as *const AtomicU8)).store(0, Ordering::Relaxed);
                    i += 1;
                }
            }
        }
    }

    /// The 32-bit word at `off` (4-aligned), as an atomic.
    pub fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4);
        assert!(off.is_multiple_of(4), "unaligned u32");
        // SAFETY: in bounds, aligned (the block is 8-aligned), lives as long as `self`.
        unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU32) }
    }

    /// The 64-bit word at `off` (8-aligned), as an atomic.
    pub fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8);
        assert!(off.is_multiple_of(8), "unaligned u64");
        // SAFETY: in bounds, aligned (the block is 8-aligned), lives as long as `self`.
        unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU64) }
    }
}

/// The 32-bit word at an absolute address that a caller has region-checked
/// (`bpf_spin_lock` on a map value). Returns `None` if unaligned.
pub fn lock_word(addr: u64, proof: &[u8]) -> Option<&AtomicU32> {
    if !addr.is_multiple_of(4) || proof.len() < 4 || proof.as_ptr() as u64 != addr {
        return None;
    }
    // SAFETY: `proof` is a live, region-checked slice of at least 4 bytes starting at
    // `addr` (aligned); the result borrows it.
    Some(unsafe { &*(addr as *const AtomicU32) })
}

/// An empty memfd named `name` (sized later, by [`Shmem::map_memfd`]).
pub fn memfd_unsized(name: &str) -> Result<OwnedFd, MapError> {
    let cname = CString::new(name).map_err(|_| MapError::Inval)?;
    // SAFETY: `cname` is a valid C string.
    let raw = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(MapError::NoMem);
    }
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Nanoseconds of clock `clock` (0 if it cannot be read).
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `t`.
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A non-blocking eventfd (ring buffer wake-ups for the supervisor's epoll emulation).
pub fn eventfd() -> Option<OwnedFd> {
    // SAFETY: eventfd with constant flags; the result is a fresh fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    // SAFETY: a fresh fd nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Signal an eventfd (adds 1; never blocks).
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local to our own fd.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

impl Drop for Shmem {
    fn drop(&mut self) {
        match &self.backing {
            // SAFETY: allocated in `heap` with this layout.
            Backing::Heap(layout) => unsafe { std::alloc::dealloc(self.ptr.as_ptr(), *layout) },
            // SAFETY: unmapping the mapping made in `anon`.
            Backing::Anon(len) => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), *len);
            },
            Backing::Mmap { len, .. } => {
                // SAFETY: unmapping the mapping made in `memfd`.
                unsafe { libc::munmap(self.ptr.as_ptr().cast(), *len) };
            }
            Backing::Slot(slab, i) => slab.free.push(*i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots are handed out once each, inside the slab; a dropped one comes back
    /// zeroed; none is left when all are held.
    #[test]
    fn slab_slots() {
        let slab = Slab::new(16, 3).unwrap();
        let a: Vec<Shmem> = (0..3).map(|_| slab.alloc().unwrap()).collect();
        assert!(slab.alloc().is_none(), "all slots held");
        let mut addrs: Vec<u64> = a.iter().map(|m| m.addr(0)).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 3);
        assert!(addrs
            .iter()
            .all(|&p| slab.contains(p) && slab.contains(p + 15)));
        assert!(!slab.contains(slab.base() + 48));
        let mut a = a;
        let one = a.remove(1);
        one.write(0, &[0xab; 16]);
        let freed = one.addr(0);
        drop(one);
        let b = slab.alloc().unwrap();
        assert_eq!(b.addr(0), freed, "the only free slot");
        let mut out = [1u8; 16];
        b.read(0, &mut out);
        assert_eq!(out, [0; 16], "a reused slot is zeroed");
    }

    #[test]
    fn heap_rw() {
        let m = Shmem::heap(20).unwrap();
        m.write(3, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let mut b = [0u8; 12];
        m.read(2, &mut b);
        assert_eq!(b, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0]);
        m.zero(4, 4);
        m.read(2, &mut b);
        assert_eq!(b, [0, 1, 0, 0, 0, 0, 6, 7, 8, 9, 10, 0]);
        assert_eq!(m.offset_of(m.addr(4), 4), Some(4));
        assert_eq!(m.offset_of(m.addr(20), 1), None);
    }

    #[test]
    fn memfd_shared() {
        let m = Shmem::memfd("bpf-map", 100).unwrap();
        assert_eq!(m.len(), page_size());
        m.write(0, b"hello");
        let fd = m.fd().unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert!(link.to_string_lossy().contains("bpf-map"));
        let mut b = [0u8; 5];
        // SAFETY: pread into a local buffer from our own fd.
        let n = unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), 5, 0) };
        assert_eq!(n, 5);
        assert_eq!(&b, b"hello");
    }

    #[test]
    fn too_big_is_enomem() {
        assert!(matches!(Shmem::heap(usize::MAX / 2), Err(MapError::NoMem)));
        assert!(matches!(
            Shmem::memfd("bpf-map", 1 << 50),
            Err(MapError::NoMem)
        ));
    }
}
