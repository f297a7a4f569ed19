//! The object registry: every map, program, link and BTF object the daemon owns,
//! with the kernel's per-kind ids, the identity of their fds, and their lifetime.
//!
//! Identity: each object has a handle (a memfd, or for mmap-able maps the map's own
//! memfd); the target holds dups of it. `(st_dev, st_ino)` of any fd the target
//! passes is looked up in [`Registry::by_key`]. This survives dup/fork/SCM_RIGHTS.
//!
//! Lifetime (mark and sweep, [`Registry::collect`]): an object lives while a process
//! other than the daemon holds an fd to (or a mapping of) its handle, or it is pinned
//! or held (attachments), or a live object references it (prog -> maps, BTF;
//! map -> BTF; link -> prog; the contents of PROG_ARRAY / map-in-map).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::btf::Btf;

/// `(st_dev, st_ino)` of an object handle.
pub type Key = (u64, u64);

/// Object kinds, each with its own id space (as the kernel's prog_idr, map_idr...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Prog,
    Map,
    Link,
    Btf,
    /// A BPF output perf event (perf_event_open): not a bpf object, but it lives as
    /// one (fds, mappings, the PERF_EVENT_ARRAY entries that hold it).
    PerfEvent,
}

impl Kind {
    fn idx(self) -> usize {
        self as usize
    }
    /// The memfd name: bpftool types an fd by `readlink` containing these.
    pub fn memfd_name(self) -> &'static str {
        match self {
            Kind::Prog => "bpf-prog",
            Kind::Map => "bpf-map",
            Kind::Link => "bpf_link",
            Kind::Btf => "btf",
            Kind::PerfEvent => "perf_event",
        }
    }
}

/// A map object.
pub struct MapObj {
    pub map: Arc<dyn bpftime_vm::maps::Map>,
    /// The BTF object given at creation (btf_fd), kept alive by the map.
    pub btf: Option<Arc<Object>>,
}

/// A program object.
pub struct ProgObj {
    pub prog: crate::bpf::prog_load::LoadedProg,
    /// Maps the program uses (from its instructions) and those bound with PROG_BIND_MAP.
    pub maps: Mutex<Vec<Arc<Object>>>,
    pub btf: Option<Arc<Object>>,
    pub run_time_ns: std::sync::atomic::AtomicU64,
    pub run_cnt: std::sync::atomic::AtomicU64,
}

/// A link object (bpf_link).
pub struct LinkObj {
    pub link_type: u32,
    pub prog: Mutex<Arc<Object>>,
    /// The interface (0 once detached with LINK_DETACH).
    pub ifindex: std::sync::atomic::AtomicU32,
    pub attach_type: u32,
    /// The data plane attachment this link owns (None once detached).
    pub attachment: Mutex<Option<bpftime_netdev::AttachmentId>>,
    /// Network namespace (inode) of the device.
    pub netns_ino: u64,
    /// Native (true) or generic mode.
    pub drv: bool,
}

/// What an object is.
pub enum Body {
    Map(MapObj),
    Prog(ProgObj),
    Link(LinkObj),
    Btf(Arc<Btf>),
    PerfEvent(Arc<bpftime_vm::maps::perf_event_array::PerfEvent>),
}

/// One emulated kernel object.
pub struct Object {
    pub id: u32,
    pub kind: Kind,
    /// The fd whose dups the targets hold.
    pub handle: OwnedFd,
    pub key: Key,
    pub body: Body,
    /// uid of the creator (bpf_prog_info.created_by_uid).
    pub uid: u32,
    /// CLOCK_BOOTTIME ns at creation (bpf_prog_info.load_time).
    pub load_time: u64,
}

impl Object {
    pub fn as_map(&self) -> Option<&MapObj> {
        match &self.body {
            Body::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_prog(&self) -> Option<&ProgObj> {
        match &self.body {
            Body::Prog(p) => Some(p),
            _ => None,
        }
    }
    pub fn as_perf_event(&self) -> Option<&Arc<bpftime_vm::maps::perf_event_array::PerfEvent>> {
        match &self.body {
            Body::PerfEvent(e) => Some(e),
            _ => None,
        }
    }
    pub fn as_link(&self) -> Option<&LinkObj> {
        match &self.body {
            Body::Link(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_btf(&self) -> Option<&Arc<Btf>> {
        match &self.body {
            Body::Btf(b) => Some(b),
            _ => None,
        }
    }
    /// Objects this one keeps alive.
    pub fn refs(&self) -> Vec<Arc<Object>> {
        match &self.body {
            Body::Map(m) => m.btf.iter().cloned().collect(),
            Body::Prog(p) => {
                let mut v = p.maps.lock().unwrap().clone();
                v.extend(p.btf.iter().cloned());
                v
            }
            Body::Link(l) => vec![l.prog.lock().unwrap().clone()],
            Body::Btf(_) | Body::PerfEvent(_) => vec![],
        }
    }
    /// The handle, borrowed (for ADDFD).
    pub fn handle(&self) -> BorrowedFd<'_> {
        self.handle.as_fd()
    }
}

/// fstat's (st_dev, st_ino) of an fd.
pub fn key_of(fd: BorrowedFd<'_>) -> std::io::Result<Key> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// The registry of live objects.
#[derive(Default)]
pub struct Registry {
    by_id: [BTreeMap<u32, Arc<Object>>; 5],
    next_id: [u32; 5],
    by_key: HashMap<Key, Arc<Object>>,
    /// Map identity (Arc<dyn Map> data pointer) -> map object id.
    map_ids: HashMap<usize, u32>,
    /// Extra holders (pins, attachments): object (kind, id) -> count.
    holds: HashMap<(Kind, u32), u32>,
}

impl Registry {
    /// Registers a new object and gives it the next id of its kind.
    pub fn insert(
        &mut self,
        kind: Kind,
        handle: OwnedFd,
        body: Body,
        uid: u32,
    ) -> std::io::Result<Arc<Object>> {
        let key = key_of(handle.as_fd())?;
        let i = kind.idx();
        let mut id = self.next_id[i].max(1);
        while self.by_id[i].contains_key(&id) {
            id = id.checked_add(1).unwrap_or(1);
        }
        self.next_id[i] = id.checked_add(1).unwrap_or(1);
        let obj = Arc::new(Object {
            id,
            kind,
            handle,
            key,
            body,
            uid,
            load_time: boottime_ns(),
        });
        if let Body::Map(m) = &obj.body {
            self.map_ids
                .insert(Arc::as_ptr(&m.map) as *const () as usize, id);
        }
        self.by_id[i].insert(id, obj.clone());
        self.by_key.insert(key, obj.clone());
        Ok(obj)
    }

    /// Removes an object at once (creation rolled back: its fd never reached the target).
    pub fn remove(&mut self, obj: &Object) {
        self.by_id[obj.kind.idx()].remove(&obj.id);
        self.by_key.remove(&obj.key);
        if let Body::Map(m) = &obj.body {
            self.map_ids
                .remove(&(Arc::as_ptr(&m.map) as *const () as usize));
        }
    }

    pub fn by_key(&self, key: &Key) -> Option<Arc<Object>> {
        self.by_key.get(key).cloned()
    }
    pub fn by_id(&self, kind: Kind, id: u32) -> Option<Arc<Object>> {
        self.by_id[kind.idx()].get(&id).cloned()
    }
    /// The smallest id of `kind` greater than `start`.
    pub fn next_id(&self, kind: Kind, start: u32) -> Option<u32> {
        self.by_id[kind.idx()]
            .range(start.saturating_add(1)..)
            .next()
            .map(|(k, _)| *k)
            .filter(|_| start != u32::MAX)
    }
    /// The id of the map object holding `map`.
    pub fn map_id(&self, map: &Arc<dyn bpftime_vm::maps::Map>) -> Option<u32> {
        self.map_ids
            .get(&(Arc::as_ptr(map) as *const () as usize))
            .copied()
    }
    /// The map object holding `map`.
    pub fn map_object(&self, map: &Arc<dyn bpftime_vm::maps::Map>) -> Option<Arc<Object>> {
        self.map_id(map).and_then(|id| self.by_id(Kind::Map, id))
    }
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Arc<Object>> {
        self.by_id[kind.idx()].values()
    }
    pub fn count(&self, kind: Kind) -> usize {
        self.by_id[kind.idx()].len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Adds a holder (a pin, an attachment) to an object.
    pub fn hold(&mut self, obj: &Object) {
        *self.holds.entry((obj.kind, obj.id)).or_default() += 1;
    }
    /// Whether something holds `obj` through [`Registry::hold`] (a pin, an attachment).
    pub fn is_held(&self, obj: &Object) -> bool {
        self.holds.contains_key(&(obj.kind, obj.id))
    }
    /// Drops a holder added with [`Registry::hold`].
    pub fn release(&mut self, obj: &Object) {
        if let Some(n) = self.holds.get_mut(&(obj.kind, obj.id)) {
            *n -= 1;
            if *n == 0 {
                self.holds.remove(&(obj.kind, obj.id));
            }
        }
    }

    /// Mark and sweep: keeps objects whose handle is in `live_keys` (held by some
    /// process), held, or referenced from a kept object. Returns what was removed.
    pub fn collect(&mut self, live_keys: &HashSet<Key>) -> Vec<Arc<Object>> {
        let mut marked: HashSet<Key> = HashSet::new();
        let mut stack: Vec<Arc<Object>> = Vec::new();
        for obj in self.by_key.values() {
            if live_keys.contains(&obj.key) || self.holds.contains_key(&(obj.kind, obj.id)) {
                stack.push(obj.clone());
            }
        }
        while let Some(o) = stack.pop() {
            if !marked.insert(o.key) {
                continue;
            }
            stack.extend(o.refs());
            if let Some(m) = o.as_map() {
                for (kind, id) in crate::bpf::map_refs(m) {
                    if let Some(obj) = self.by_id(kind, id) {
                        stack.push(obj);
                    }
                }
            }
        }
        let dead: Vec<Arc<Object>> = self
            .by_key
            .values()
            .filter(|o| !marked.contains(&o.key))
            .cloned()
            .collect();
        for o in &dead {
            self.remove(o);
        }
        dead
    }
}

/// CLOCK_BOOTTIME in ns.
pub fn boottime_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Scans every process except `skip_pid` for fds and shared mappings of memfds,
/// returning their (dev, ino). This is what keeps objects alive.
pub fn scan_live_keys(skip_pid: u32, wanted: &HashSet<Key>) -> HashSet<Key> {
    let mut live = HashSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return live;
    };
    for ent in dir.flatten() {
        let name = ent.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == skip_pid {
            continue;
        }
        let fddir = format!("/proc/{pid}/fd");
        if let Ok(fds) = std::fs::read_dir(&fddir) {
            for fd in fds.flatten() {
                let p = fd.path();
                let Ok(link) = std::fs::read_link(&p) else {
                    continue;
                };
                if !link.as_os_str().as_encoded_bytes().starts_with(b"/memfd:") {
                    continue;
                }
                if let Ok(st) = nix::sys::stat::stat(&p) {
                    let k = (st.st_dev, st.st_ino);
                    if wanted.contains(&k) {
                        live.insert(k);
                    }
                }
            }
        }
        // Shared mappings of a map's memfd keep it alive too (as mmap holds a map).
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            for line in maps.lines().filter(|l| l.contains("/memfd:")) {
                let mut it = line.split_whitespace();
                let (_, _, _, dev, ino) = (it.next(), it.next(), it.next(), it.next(), it.next());
                let (Some(dev), Some(ino)) = (dev, ino.and_then(|i| i.parse::<u64>().ok())) else {
                    continue;
                };
                let Some((maj, min)) = dev.split_once(':') else {
                    continue;
                };
                let (Ok(maj), Ok(min)) =
                    (u64::from_str_radix(maj, 16), u64::from_str_radix(min, 16))
                else {
                    continue;
                };
                let k = (nix::sys::stat::makedev(maj, min), ino);
                if wanted.contains(&k) {
                    live.insert(k);
                }
            }
        }
    }
    live
}

impl Registry {
    /// Every handle key (for [`scan_live_keys`]).
    pub fn keys(&self) -> HashSet<Key> {
        self.by_key.keys().copied().collect()
    }
}

/// Raw fd of an object handle, for logs.
pub fn raw(obj: &Object) -> i32 {
    obj.handle.as_raw_fd()
}
