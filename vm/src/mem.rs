//! Memory regions a run may touch. The interpreter checks every access it could not
//! prove at load time against these; helpers use the same check through `HelperCtx`.
//!
//! # Who owns what a run touches
//! The verifier's type facts come first: only a value it types as a pointer (context,
//! stack, packet, a map value or record a helper returned, global data) can be
//! dereferenced; a number read from a map or the packet never can, whatever address
//! it holds. The run-time check below backs that up, never the other way round.
//!
//! | region | kept alive by | valid until |
//! |---|---|---|
//! | stack (all frames) | the thread's `Scratch` | the run ends |
//! | packet `[data_meta, data_end)` | the caller of the run (frame, test buffer) | read live: adjust_head/meta/tail move it |
//! | the caller's extra region (raw memory, fake skb) | the caller of the run | the run ends |
//! | global data, array values (`Program::static_regions`, `value_areas`) | the program's `Arc<dyn Map>`s | a tail call leaves the program |
//! | a value or record a helper returned (`add_region`) | the program's maps, inner maps in `Scratch::maps`, the epoch guard for hash elements | a tail call leaves the program |
//!
//! A tail call ends the running program: what it derived is no longer reachable from
//! its target (`RunCtx::forget_derived`; a tail call from a subprogram hands it back
//! when the target returns), but every program entered and every map touched stays
//! alive until the run ends (`Scratch::entered`, `Scratch::kept_maps`), as the
//! kernel's RCU read section keeps them, so closing fds or emptying a prog array
//! during a run frees nothing it may still use. `bpf_ringbuf_submit`/`discard` end a
//! record's region (`HelperCtx::remove_region`): the record is the reader's then.
//!
//! Known gap until the verifier tracks the caller's stack in callees: an 8-byte load
//! through a pointer into a calling frame may be a pointer the caller spilled, so it is
//! dereferenceable and checked here at run time only.

/// A contiguous range of host memory a program may access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub writable: bool,
}

impl Region {
    pub fn new(start: u64, len: u64, writable: bool) -> Self {
        Self {
            start,
            len,
            writable,
        }
    }

    /// Whether `[addr, addr+len)` lies inside this region (and it may be written, if asked).
    #[inline]
    pub fn contains(&self, addr: u64, len: u64, write: bool) -> bool {
        (!write || self.writable)
            && addr >= self.start
            && len <= self.len
            && addr - self.start <= self.len - len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_bounds() {
        let r = Region::new(100, 10, false);
        assert!(r.contains(100, 10, false));
        assert!(r.contains(105, 5, false));
        assert!(!r.contains(105, 6, false));
        assert!(!r.contains(99, 1, false));
        assert!(!r.contains(100, 1, true));
        assert!(!r.contains(u64::MAX, 2, false));
    }
}

/// Raw access to memory the caller has checked against a [`Region`] (or that the
/// verifier proved in bounds). These are the only places the VM dereferences
/// addresses computed by a program.
pub(crate) mod raw {
    /// Read `size` (1, 2, 4 or 8) bytes at `addr`, zero-extended.
    ///
    /// # Safety
    /// `[addr, addr+size)` must be readable memory (inside a region of the run).
    #[inline(always)]
    pub unsafe fn load(addr: u64, size: usize) -> u64 {
        let p = addr as *const u8;
        // SAFETY: the caller guarantees [addr, addr+size) is readable; unaligned reads are used.
        unsafe {
            match size {
                1 => p.read() as u64,
                2 => (p as *const u16).read_unaligned() as u64,
                4 => (p as *const u32).read_unaligned() as u64,
                _ => (p as *const u64).read_unaligned(),
            }
        }
    }

    /// Write the low `size` (1, 2, 4 or 8) bytes of `v` at `addr`.
    ///
    /// # Safety
    /// `[addr, addr+size)` must be writable memory (inside a writable region of the run).
    #[inline(always)]
    pub unsafe fn store(addr: u64, size: usize, v: u64) {
        let p = addr as *mut u8;
        // SAFETY: the caller guarantees [addr, addr+size) is writable; unaligned writes are used.
        unsafe {
            match size {
                1 => p.write(v as u8),
                2 => (p as *mut u16).write_unaligned(v as u16),
                4 => (p as *mut u32).write_unaligned(v as u32),
                _ => (p as *mut u64).write_unaligned(v),
            }
        }
    }

    /// Atomic read-modify-write of 4 or 8 bytes at a naturally aligned `addr`;
    /// `f(old) -> Some(new)` stores `new` (compare-exchange loop). Returns the old value.
    ///
    /// # Safety
    /// `[addr, addr+size)` must be writable memory and `addr` aligned to `size`.
    #[inline]
    pub unsafe fn atomic_rmw(addr: u64, size: usize, f: impl Fn(u64) -> Option<u64>) -> u64 {
        use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
        if size == 4 {
            // SAFETY: writable, 4-byte aligned memory per the caller's contract.
            let a = unsafe { AtomicU32::from_ptr(addr as *mut u32) };
            let mut old = a.load(SeqCst);
            loop {
                let Some(new) = f(old as u64) else {
                    return old as u64;
                };
                match a.compare_exchange_weak(old, new as u32, SeqCst, SeqCst) {
                    Ok(_) => return old as u64,
                    Err(cur) => old = cur,
                }
            }
        } else {
            // SAFETY: writable, 8-byte aligned memory per the caller's contract.
            let a = unsafe { AtomicU64::from_ptr(addr as *mut u64) };
            let mut old = a.load(SeqCst);
            loop {
                let Some(new) = f(old) else { return old };
                match a.compare_exchange_weak(old, new, SeqCst, SeqCst) {
                    Ok(_) => return old,
                    Err(cur) => old = cur,
                }
            }
        }
    }

    /// A byte slice over checked memory.
    ///
    /// # Safety
    /// `[addr, addr+len)` must be readable for the lifetime `'a` and not written
    /// through other paths while the slice is alive.
    pub unsafe fn slice<'a>(addr: u64, len: usize) -> &'a [u8] {
        if len == 0 {
            return &[];
        }
        // SAFETY: per the caller's contract.
        unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
    }

    /// A mutable byte slice over checked memory.
    ///
    /// # Safety
    /// `[addr, addr+len)` must be writable for the lifetime `'a` and not accessed
    /// through other paths while the slice is alive.
    pub unsafe fn slice_mut<'a>(addr: u64, len: usize) -> &'a mut [u8] {
        if len == 0 {
            return &mut [];
        }
        // SAFETY: per the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) }
    }
}
