//! Memory cgroups for tests: a uniquely named child of this process's own memory
//! cgroup with a limit, on cgroup v1 (the `memory` controller) or v2, removed on drop
//! (its processes moved back to the parent first).

use std::path::{Path, PathBuf};

/// A memory cgroup made by a test.
pub struct MemCgroup {
    dir: PathBuf,
    parent: PathBuf,
}

/// This process's memory cgroup directory and whether it is v2.
fn own_memory_cgroup() -> Option<(PathBuf, bool)> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = |v2: bool| bpftime_vm::maps::reserve::mount_of(&mi, v2);
    // v1 first: on a hybrid host the v2 hierarchy has no memory controller.
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        if ctrl.split(',').any(|c| c == "memory") {
            return Some((PathBuf::from(format!("{}{path}", mount(false)?)), false));
        }
    }
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = PathBuf::from(format!("{}{path}", mount(true)?));
    let ctrls = std::fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
    ctrls
        .split_whitespace()
        .any(|c| c == "memory")
        .then_some((dir, true))
}

impl MemCgroup {
    /// A child cgroup named `name` + our pid, limited to `limit` bytes; `None` when
    /// none can be made here (no memory controller, or not allowed).
    pub fn new(name: &str, limit: u64) -> Option<Self> {
        let (parent, v2) = own_memory_cgroup()?;
        let dir = parent.join(format!("{name}_{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cg = MemCgroup {
            dir,
            parent: parent.clone(),
        };
        let file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(cg.dir.join(file), limit.to_string()).ok()?;
        Some(cg)
    }

    /// Whether a limited memory cgroup can be made here.
    pub fn available() -> bool {
        MemCgroup::new("bpftime_probe", 64 << 20).is_some()
    }

    /// Move process `pid` into the cgroup.
    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.dir.display()));
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
        }
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
