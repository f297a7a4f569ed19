//! One AF_XDP socket with its own UMEM: the kernel's ring ABI (`linux/if_xdp.h`).
//!
//! Four single-producer/single-consumer rings are shared with the kernel through
//! mmap: FILL (we produce free frames), RX (kernel produces received descriptors),
//! TX (we produce descriptors to send), COMPLETION (kernel produces sent frames).
//! Protocol: the producer writes entries, then publishes its index with a Release
//! store; the consumer reads the producer index with Acquire, reads the entries,
//! then publishes its own index with Release. Indices are free-running u32.
//!
//! The UMEM is `nframes` frames of `FRAME_SIZE` bytes (aligned mode). The kernel
//! writes a received packet at `frame + XDP_PACKET_HEADROOM (256)`, so every RX
//! descriptor leaves 256 bytes of headroom in its frame for adjust_head/meta.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Size of one UMEM frame (one page, as the kernel's XDP buffers).
pub const FRAME_SIZE: u32 = 4096;

/// `XDP_USE_SG` bind flag.
const XDP_USE_SG: u16 = 1 << 4;
/// `XDP_PKT_CONTD` in an RX descriptor's options.
const XDP_PKT_CONTD: u32 = 1;

/// One mmap'ed ring.
struct Ring {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    size: u32,
    map: *mut libc::c_void,
    map_len: usize,
}

impl Ring {
    /// Maps the ring at page offset `pgoff` of the socket.
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        entries: u32,
        entry_size: usize,
        pgoff: u64,
    ) -> io::Result<Ring> {
        let map_len = off.desc as usize + entries as usize * entry_size;
        // SAFETY: mapping a fresh shared region of the AF_XDP socket at the kernel's
        // documented page offset for this ring; the result is checked below.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = map as *mut u8;
        // SAFETY: the kernel reported these offsets for this mapping; they lie within
        // map_len and are 4-byte aligned u32 indices the kernel updates atomically.
        unsafe {
            Ok(Ring {
                producer: base.add(off.producer as usize) as *const AtomicU32,
                consumer: base.add(off.consumer as usize) as *const AtomicU32,
                flags: base.add(off.flags as usize) as *const AtomicU32,
                desc: base.add(off.desc as usize),
                mask: entries - 1,
                size: entries,
                map,
                map_len,
            })
        }
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (unmapped only in Drop).
        unsafe { &*self.producer }
    }
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as prod().
        unsafe { &*self.consumer }
    }
    fn need_wakeup(&self) -> bool {
        // SAFETY: as prod().
        (unsafe { &*self.flags }).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map() mapped; no reference outlives self.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// An AF_XDP socket bound to one queue of one interface, with its UMEM.
pub struct Xsk {
    fill: Ring,
    comp: Ring,
    rx: Ring,
    tx: Ring,
    fd: Option<OwnedFd>,
    umem: *mut u8,
    umem_len: usize,
    nframes: u32,
    zero_copy: bool,
}

// SAFETY: the socket is owned by one worker thread at a time (moved, not shared);
// the raw pointers are to mappings owned by this value.
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: val points to a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Xsk {
    /// Creates the socket, its UMEM of `nframes` frames and rings of `nframes`
    /// entries (a power of two), and binds it to `ifindex`/`queue` (resolved in the
    /// calling thread's network namespace) with need_wakeup; zero-copy when the
    /// driver has it, copy mode otherwise. All frames start in the FILL ring. With `sg`,
    /// packets larger than a frame arrive as descriptor chains (`XDP_USE_SG`, kernel
    /// 6.6+; without it the kernel drops them); a kernel that refuses the flag gets a
    /// socket without it.
    pub fn new(ifindex: u32, queue: u32, nframes: u32, sg: bool) -> io::Result<Xsk> {
        assert!(nframes.is_power_of_two());
        // SAFETY: plain socket creation; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem_len = nframes as usize * FRAME_SIZE as usize;
        // SAFETY: fresh anonymous private mapping; checked below.
        let umem = unsafe {
            libc::mmap(
                ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let umem = umem as *mut u8;
        let unmap = |e: io::Error| {
            // SAFETY: unmapping the UMEM mapped just above, on an error path where no
            // ring or socket refers to it any more.
            unsafe { libc::munmap(umem as *mut libc::c_void, umem_len) };
            e
        };
        let reg = libc::xdp_umem_reg {
            addr: umem as u64,
            len: umem_len as u64,
            chunk_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        let s = fd.as_raw_fd();
        setsockopt(s, libc::XDP_UMEM_REG, &reg).map_err(unmap)?;
        let n = nframes as libc::c_int;
        for opt in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
            libc::XDP_TX_RING,
        ] {
            setsockopt(s, opt, &n).map_err(unmap)?;
        }
        // SAFETY: an all-zero xdp_mmap_offsets is a valid value (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: off/len point to live, correctly sized values.
        let r = unsafe {
            libc::getsockopt(
                s,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                &mut off as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if r < 0 {
            return Err(unmap(io::Error::last_os_error()));
        }
        let desc = std::mem::size_of::<libc::xdp_desc>();
        let rings = (|| {
            Ok::<_, io::Error>((
                Ring::map(s, &off.fr, nframes, 8, libc::XDP_UMEM_PGOFF_FILL_RING)?,
                Ring::map(s, &off.cr, nframes, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
                Ring::map(s, &off.rx, nframes, desc, libc::XDP_PGOFF_RX_RING as u64)?,
                Ring::map(
                    s,
                    &off.tx,
                    nframes,
                    desc,
                    libc::XDP_PGOFF_TX_RING as u32 as u64,
                )?,
            ))
        })();
        let (fill, comp, rx, tx) = rings.map_err(unmap)?;
        let mut xsk = Xsk {
            fill,
            comp,
            rx,
            tx,
            fd: Some(fd),
            umem,
            umem_len,
            nframes,
            zero_copy: false,
        };
        let all: Vec<u64> = (0..nframes as u64).map(|i| i * FRAME_SIZE as u64).collect();
        xsk.fill_submit(&all);
        let mut sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP | if sg { XDP_USE_SG } else { 0 },
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // A socket closed on this queue a moment ago releases its pool from a
        // workqueue (xp_release_deferred): until then bind says EBUSY. Retry briefly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            // SAFETY: sa is a live sockaddr_xdp of the size passed.
            let r = unsafe {
                libc::bind(
                    s,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if sa.sxdp_flags & XDP_USE_SG != 0 && e.raw_os_error() == Some(libc::EINVAL) {
                tracing::info!("AF_XDP without XDP_USE_SG: frames larger than 4 KiB are dropped");
                sa.sxdp_flags &= !XDP_USE_SG;
                continue;
            }
            if e.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() > deadline {
                return Err(e);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut opts = libc::xdp_options { flags: 0 };
        let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: opts/len point to live, correctly sized values.
        if unsafe {
            libc::getsockopt(
                s,
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                &mut opts as *mut _ as *mut libc::c_void,
                &mut len,
            )
        } == 0
        {
            xsk.zero_copy = opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;
        }
        Ok(xsk)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }
    pub fn nframes(&self) -> u32 {
        self.nframes
    }
    /// Address of UMEM offset 0 (frame addresses are offsets from it).
    pub fn umem_base(&self) -> u64 {
        self.umem as u64
    }

    /// Returns free frames (UMEM offsets) to the kernel; how many were taken.
    pub fn fill_submit(&mut self, addrs: &[u64]) -> usize {
        let r = &self.fill;
        let prod = r.prod().load(Ordering::Relaxed);
        let cons = r.cons().load(Ordering::Acquire);
        let free = r.size - prod.wrapping_sub(cons);
        let n = addrs.len().min(free as usize);
        for (i, a) in addrs[..n].iter().enumerate() {
            let idx = (prod.wrapping_add(i as u32) & r.mask) as usize;
            // SAFETY: idx <= mask, inside the ring's u64 entry array; the slot is ours
            // until we publish the producer index.
            unsafe { (r.desc as *mut u64).add(idx).write(*a) };
        }
        r.prod()
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Takes sent frames back from the COMPLETION ring into `out`.
    pub fn comp_drain(&mut self, out: &mut Vec<u64>) -> usize {
        let r = &self.comp;
        let cons = r.cons().load(Ordering::Relaxed);
        let prod = r.prod().load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons);
        for i in 0..n {
            let idx = (cons.wrapping_add(i) & r.mask) as usize;
            // SAFETY: idx inside the entry array; published by the kernel (Acquire).
            out.push(unsafe { (r.desc as *const u64).add(idx).read() });
        }
        r.cons().store(prod, Ordering::Release);
        n as usize
    }

    /// Reads up to `max` received descriptors into `out` (without releasing them):
    /// (UMEM offset, length, more fragments of the same packet follow).
    pub fn rx_peek(&mut self, out: &mut Vec<(u64, u32, bool)>, max: usize) -> usize {
        let r = &self.rx;
        let cons = r.cons().load(Ordering::Relaxed);
        let prod = r.prod().load(Ordering::Acquire);
        let n = (prod.wrapping_sub(cons) as usize).min(max);
        for i in 0..n {
            let idx = (cons.wrapping_add(i as u32) & r.mask) as usize;
            // SAFETY: idx inside the xdp_desc array; published by the kernel (Acquire).
            let d = unsafe { (r.desc as *const libc::xdp_desc).add(idx).read() };
            out.push((d.addr, d.len, d.options & XDP_PKT_CONTD != 0));
        }
        n
    }

    /// Releases `n` RX descriptors read by [`Xsk::rx_peek`].
    pub fn rx_release(&mut self, n: usize) {
        let r = &self.rx;
        let cons = r.cons().load(Ordering::Relaxed);
        r.cons()
            .store(cons.wrapping_add(n as u32), Ordering::Release);
    }

    /// Queues frames to send (UMEM offset of the first byte, length); how many fit.
    pub fn tx_submit(&mut self, descs: &[(u64, u32)]) -> usize {
        let r = &self.tx;
        let prod = r.prod().load(Ordering::Relaxed);
        let cons = r.cons().load(Ordering::Acquire);
        let free = r.size - prod.wrapping_sub(cons);
        let n = descs.len().min(free as usize);
        for (i, &(addr, len)) in descs[..n].iter().enumerate() {
            let idx = (prod.wrapping_add(i as u32) & r.mask) as usize;
            // SAFETY: idx inside the xdp_desc array; the slot is ours until published.
            unsafe {
                (r.desc as *mut libc::xdp_desc)
                    .add(idx)
                    .write(libc::xdp_desc {
                        addr,
                        len,
                        options: 0,
                    })
            };
        }
        r.prod()
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Whether the kernel asks to be woken to send (copy mode: always, to send).
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.need_wakeup()
    }
    /// Whether the kernel asks to be woken to refill RX.
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.need_wakeup()
    }

    /// Kicks the kernel to send what is on the TX ring.
    pub fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length sendto on our socket; no buffer is read.
        let r = unsafe {
            libc::sendto(
                self.fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS)
                | Some(libc::ENETDOWN) => Ok(()),
                _ => Err(e),
            }
        } else {
            Ok(())
        }
    }

    /// Waits up to `timeout_ms` for received packets (also wakes the driver when the
    /// FILL ring needs it), or until `also` is readable.
    pub fn poll_rx(&self, timeout_ms: i32, also: RawFd) -> bool {
        let mut p = [
            libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: also,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: p is an array of two live pollfds.
        let r = unsafe { libc::poll(p.as_mut_ptr(), 2, timeout_ms) };
        r > 0
    }

    /// The frame holding UMEM offset `addr`: (frame start address, frame offset).
    pub fn frame_of(&self, addr: u64) -> u64 {
        addr & !(FRAME_SIZE as u64 - 1)
    }

    /// Whether `[addr, addr+len)` (UMEM offsets) lies inside one frame of the UMEM.
    pub fn valid(&self, addr: u64, len: u32) -> bool {
        let f = self.frame_of(addr);
        addr.checked_add(len as u64)
            .is_some_and(|end| end <= f + FRAME_SIZE as u64)
            && (f as usize) < self.umem_len
    }

    /// The UMEM bytes `[off, off+len)` (UMEM offsets), if they lie inside one frame.
    pub fn bytes(&self, off: u64, len: usize) -> Option<&[u8]> {
        if !self.valid(off, u32::try_from(len).ok()?) {
            return None;
        }
        // SAFETY: [off, off+len) was checked to lie inside one frame of the live UMEM
        // mapping. The kernel does not write a frame while it is ours (taken from RX,
        // not yet on FILL or TX), so nobody mutates these bytes during the borrow.
        Some(unsafe { std::slice::from_raw_parts(self.umem.add(off as usize), len) })
    }

    /// The UMEM bytes `[off, off+len)`, writable, if they lie inside one frame.
    pub fn bytes_mut(&mut self, off: u64, len: usize) -> Option<&mut [u8]> {
        if !self.valid(off, u32::try_from(len).ok()?) {
            return None;
        }
        // SAFETY: as in `bytes`; the frame is ours, and `&mut self` makes this the only
        // borrow of the UMEM from this socket's side.
        Some(unsafe { std::slice::from_raw_parts_mut(self.umem.add(off as usize), len) })
    }

    /// Kernel statistics of the socket (`XDP_STATISTICS`).
    pub fn kernel_stats(&self) -> Option<libc::xdp_statistics> {
        // SAFETY: all-zero is a valid xdp_statistics (plain integers).
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: st/len point to live, correctly sized values.
        let r = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                &mut st as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        (r == 0).then_some(st)
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // Close the socket first (the kernel unpins the UMEM), then unmap it; the
        // rings are unmapped when their fields drop.
        self.fd.take();
        // SAFETY: unmapping the UMEM this value mapped; the socket is closed and the
        // worker that used frame pointers has stopped (Xsk is dropped by its owner).
        unsafe { libc::munmap(self.umem as *mut libc::c_void, self.umem_len) };
    }
}
