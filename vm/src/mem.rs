//! Memory regions a run may touch. The interpreter checks every access it could not
//! prove at load time against these; helpers use the same check through `HelperCtx`.

/// A contiguous range of host memory a program may access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub writable: bool,
}

impl Region {
    pub fn new(start: u64, len: u64, writable: bool) -> Self {
        Self { start, len, writable }
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
