//! Memory reserved at map creation, as the kernel does: arrays, preallocated hash
//! elements and ring buffers get their pages when the map is created, charged to the
//! memory cgroup of the process holding them, and creation answers ENOMEM when they
//! cannot be had. Here that process is the daemon, which every loader shares, so one
//! user's map must never get it OOM-killed: before populating a block we ask how much
//! memory is left (the system's `MemAvailable` and, up the daemon's memory cgroup, each
//! level's limit minus its usage, cgroup v1 or v2) and refuse what does not fit with a
//! margin; then the pages are populated (`MADV_POPULATE_WRITE`), so that filling the
//! map later cannot fail or kill. Creations are serialised so that two of them cannot
//! both pass the check on the same headroom.
//!
//! Not covered: maps that allocate per element (hashes with `BPF_F_NO_PREALLOC`, LPM
//! tries) grow on the heap without this check.

use std::sync::Mutex;

/// Left unreserved for the daemon itself (its threads, buffers, the next request).
const MARGIN: u64 = 32 << 20;

/// Blocks smaller than this come from the heap unchecked (their pages are touched
/// when zeroed, a few kilobytes).
pub(crate) const MIN_RESERVED: usize = 256 << 10;

static LOCK: Mutex<()> = Mutex::new(());

/// Bytes that can still be populated without hitting a limit: the least of the
/// system's available memory and each memory cgroup level's headroom.
pub fn headroom() -> u64 {
    let mut room = meminfo_available().unwrap_or(u64::MAX);
    for (limit, usage) in cgroup_levels() {
        room = room.min(limit.saturating_sub(usage));
    }
    room
}

/// Run `populate` (which allocates `len` bytes) only if they fit, one at a time.
pub(crate) fn reserved<T>(len: usize, populate: impl FnOnce() -> Option<T>) -> Option<T> {
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let room = headroom();
    if (len as u64).saturating_add(MARGIN) > room {
        tracing::info!(len, headroom = room, "map memory refused: ENOMEM");
        return None;
    }
    populate()
}

fn meminfo_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// (limit, usage) of every level of this process's memory cgroup that has a limit.
fn cgroup_levels() -> Vec<(u64, u64)> {
    let (Ok(cg), Ok(mi)) = (
        std::fs::read_to_string("/proc/self/cgroup"),
        std::fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let v2 = id == "0" && ctrl.is_empty();
        if !v2 && !ctrl.split(',').any(|c| c == "memory") {
            continue;
        }
        let Some(root) = mount_of(&mi, v2) else {
            continue;
        };
        let (limit_f, usage_f) = if v2 {
            ("memory.max", "memory.current")
        } else {
            ("memory.limit_in_bytes", "memory.usage_in_bytes")
        };
        let mut dir = std::path::PathBuf::from(format!("{root}{path}"));
        loop {
            let read = |f: &str| {
                std::fs::read_to_string(dir.join(f))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
            };
            if let (Some(l), Some(u)) = (read(limit_f), read(usage_f)) {
                out.push((l, u));
            }
            if dir.as_os_str().len() <= root.len() || !dir.pop() {
                break;
            }
        }
    }
    out
}

/// Where the memory controller (v1) or the unified hierarchy (v2) is mounted, from
/// the text of `/proc/self/mountinfo`.
pub fn mount_of(mountinfo: &str, v2: bool) -> Option<String> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split_whitespace();
        let fstype = post.next()?;
        let opts = post.nth(1)?;
        let ok = if v2 {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && opts.split(',').any(|o| o == "memory")
        };
        ok.then(|| pre.split_whitespace().nth(4).map(str::to_string))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_finds_memory_controllers() {
        let mi =
            "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
                  31 25 0:27 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_of(mi, false).as_deref(),
            Some("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            mount_of(mi, true).as_deref(),
            Some("/sys/fs/cgroup/unified")
        );
        assert!(headroom() > 0);
    }
}
