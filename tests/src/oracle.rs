//! The kernel oracle: loads a corpus object into the real kernel (with libbpf, through
//! libbpf-rs; nothing here is shared with bpftime's vm or supervisor), runs
//! BPF_PROG_TEST_RUN on packets, and reads and writes the object's maps.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use libbpf_rs::{MapCore, MapFlags, MapType, Object, ObjectBuilder};

use crate::corpus::{CorpusProg, Flavour, Setup};

/// Errors of the oracle.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    /// libbpf could not open or load the object.
    #[error("loading {path}: {source}")]
    Load {
        path: PathBuf,
        source: libbpf_rs::Error,
    },
    /// No program of that name in the object.
    #[error("no program named {0}")]
    NoProgram(String),
    /// No map of that name in the object.
    #[error("no map named {0}")]
    NoMap(String),
    /// A map operation failed.
    #[error("map {map}: {op}: {source}")]
    Map {
        map: String,
        op: &'static str,
        source: libbpf_rs::Error,
    },
    /// A bpf() command failed with this errno.
    #[error("bpf({op}) failed: errno {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Sys { op: &'static str, errno: i32 },
}

impl OracleError {
    /// The errno of a failed syscall, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            OracleError::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The result of one BPF_PROG_TEST_RUN on an XDP program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpRun {
    /// The program's return value (the verdict).
    pub retval: u32,
    /// The output frame: metadata (if any) followed by the packet, as the kernel returns it.
    pub data: Vec<u8>,
    /// Bytes of metadata at the start of `data` (ctx_out.data).
    pub meta_len: u32,
    /// Mean ns per run (the kernel's `duration`).
    pub duration_ns: u32,
}

impl XdpRun {
    /// The packet without its metadata.
    pub fn packet(&self) -> &[u8] {
        &self.data[self.meta_len as usize..]
    }
}

/// A corpus object loaded into the kernel.
pub struct KernelObject {
    obj: Object,
    path: PathBuf,
}

impl std::fmt::Debug for KernelObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelObject")
            .field("path", &self.path)
            .finish()
    }
}

/// libbpf's own name for an internal map of a section (`<obj prefix>.bss`), or `name`.
fn map_matches(map_name: &str, want: &str) -> bool {
    map_name == want || (want.starts_with('.') && map_name.ends_with(want))
}

impl KernelObject {
    /// Opens and loads an object file into the kernel.
    pub fn load_file(path: &Path) -> Result<Self, OracleError> {
        let open = ObjectBuilder::default()
            .open_file(path)
            .map_err(|e| OracleError::Load {
                path: path.into(),
                source: e,
            })?;
        let obj = open.load().map_err(|e| OracleError::Load {
            path: path.into(),
            source: e,
        })?;
        Ok(KernelObject {
            obj,
            path: path.into(),
        })
    }

    /// Loads a corpus program's object in `flavour` and applies its [`Setup`].
    pub fn load(prog: &CorpusProg, flavour: Flavour) -> Result<Self, OracleError> {
        let k = Self::load_file(&prog.object(flavour))?;
        k.apply_setup(prog.setup)?;
        Ok(k)
    }

    /// Applies setup steps in order.
    pub fn apply_setup(&self, setup: &[Setup]) -> Result<(), OracleError> {
        for s in setup {
            match *s {
                Setup::Update { map, key, value } => self.update(map, key, value, MapFlags::ANY)?,
                Setup::ProgArray { map, key, prog } => {
                    let fd = self.prog_fd(prog)?.as_raw_fd();
                    self.update(map, &key.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)?
                }
                Setup::InnerMap { outer, key, inner } => {
                    let fd = self.map_fd(inner)?.as_raw_fd();
                    self.update(outer, &key.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)?
                }
                Setup::Devmap { map, key, ifindex } => self.update(
                    map,
                    &key.to_ne_bytes(),
                    &ifindex.to_ne_bytes(),
                    MapFlags::ANY,
                )?,
            }
        }
        Ok(())
    }

    /// The object file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fd of program `name`.
    pub fn prog_fd(&self, name: &str) -> Result<BorrowedFd<'_>, OracleError> {
        let p = self
            .obj
            .progs()
            .find(|p| p.name() == name)
            .ok_or_else(|| OracleError::NoProgram(name.into()))?;
        // SAFETY: the fd belongs to a program owned by self.obj, which outlives the
        // returned borrow (both are tied to &self).
        Ok(unsafe { BorrowedFd::borrow_raw(p.as_fd().as_raw_fd()) })
    }

    /// Names of the object's maps (internal ones as libbpf names them, e.g. `xxx.bss`).
    pub fn map_names(&self) -> Vec<String> {
        self.obj
            .maps()
            .map(|m| m.name().to_string_lossy().into_owned())
            .collect()
    }

    fn with_map<T>(
        &self,
        name: &str,
        f: impl FnOnce(&libbpf_rs::Map<'_>) -> Result<T, OracleError>,
    ) -> Result<T, OracleError> {
        let m = self
            .obj
            .maps()
            .find(|m| map_matches(&m.name().to_string_lossy(), name))
            .ok_or_else(|| OracleError::NoMap(name.into()))?;
        f(&m)
    }

    /// The fd of map `name` (`.bss`, `.data`, `.rodata` find the internal maps).
    pub fn map_fd(&self, name: &str) -> Result<BorrowedFd<'_>, OracleError> {
        let raw = self.with_map(name, |m| Ok(m.as_fd().as_raw_fd()))?;
        // SAFETY: the fd belongs to a map owned by self.obj, which outlives the borrow.
        Ok(unsafe { BorrowedFd::borrow_raw(raw) })
    }

    /// The map's type.
    pub fn map_type(&self, name: &str) -> Result<MapType, OracleError> {
        self.with_map(name, |m| Ok(m.map_type()))
    }

    /// `map[key]`, or `None` when absent. Per-CPU maps: use [`Self::lookup_percpu`].
    pub fn lookup(&self, map: &str, key: &[u8]) -> Result<Option<Vec<u8>>, OracleError> {
        self.with_map(map, |m| {
            m.lookup(key, MapFlags::ANY).map_err(|e| OracleError::Map {
                map: map.into(),
                op: "lookup",
                source: e,
            })
        })
    }

    /// `map[key]` of a per-CPU map: one value per possible CPU.
    pub fn lookup_percpu(
        &self,
        map: &str,
        key: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>, OracleError> {
        self.with_map(map, |m| {
            m.lookup_percpu(key, MapFlags::ANY)
                .map_err(|e| OracleError::Map {
                    map: map.into(),
                    op: "lookup_percpu",
                    source: e,
                })
        })
    }

    /// `map[key] = value`.
    pub fn update(
        &self,
        map: &str,
        key: &[u8],
        value: &[u8],
        flags: MapFlags,
    ) -> Result<(), OracleError> {
        self.with_map(map, |m| {
            m.update(key, value, flags).map_err(|e| OracleError::Map {
                map: map.into(),
                op: "update",
                source: e,
            })
        })
    }

    /// Every key (BPF_MAP_GET_NEXT_KEY order).
    pub fn keys(&self, map: &str) -> Result<Vec<Vec<u8>>, OracleError> {
        self.with_map(map, |m| Ok(m.keys().collect()))
    }

    /// Every (key, value), sorted by key. Per-CPU values are summed as little-endian u64s
    /// per 8-byte lane (counters) — use [`Self::lookup_percpu`] for raw per-CPU values.
    pub fn dump(&self, map: &str) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, OracleError> {
        let ty = self.map_type(map)?;
        let percpu = matches!(
            ty,
            MapType::PercpuArray | MapType::PercpuHash | MapType::LruPercpuHash
        );
        let mut out = BTreeMap::new();
        for k in self.keys(map)? {
            if percpu {
                if let Some(vals) = self.lookup_percpu(map, &k)? {
                    out.insert(k, sum_percpu(&vals));
                }
            } else if let Some(v) = self.lookup(map, &k)? {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    /// Drains a RINGBUF map: every record, in order.
    pub fn ringbuf_records(&self, map: &str) -> Result<Vec<Vec<u8>>, OracleError> {
        let records = std::cell::RefCell::new(Vec::new());
        self.with_map(map, |m| {
            let mut b = libbpf_rs::RingBufferBuilder::new();
            let err = |e| OracleError::Map {
                map: map.into(),
                op: "ringbuf",
                source: e,
            };
            b.add(m, |d: &[u8]| {
                records.borrow_mut().push(d.to_vec());
                0
            })
            .map_err(err)?;
            let rb = b.build().map_err(err)?;
            rb.poll(Duration::from_millis(0)).map_err(err)?;
            rb.consume().map_err(err)?;
            Ok(())
        })?;
        Ok(records.into_inner())
    }

    /// Runs program `prog` once on `data` (BPF_PROG_TEST_RUN).
    pub fn run(&self, prog: &str, data: &[u8]) -> Result<XdpRun, OracleError> {
        self.run_repeat(prog, data, 1)
    }

    /// Runs program `prog` `repeat` times on `data`; `duration_ns` is the mean per run.
    pub fn run_repeat(&self, prog: &str, data: &[u8], repeat: u32) -> Result<XdpRun, OracleError> {
        test_run_xdp(self.prog_fd(prog)?, data, repeat)
    }
}

/// Sums per-CPU values lane by lane as little-endian u64 counters (value sizes are
/// multiples of 8 for the corpus' per-CPU maps; a tail shorter than 8 is taken from CPU 0).
pub fn sum_percpu(vals: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vals.first().cloned().unwrap_or_default();
    for lane in 0..out.len() / 8 {
        let s: u64 = vals
            .iter()
            .map(|v| u64::from_le_bytes(v[lane * 8..lane * 8 + 8].try_into().unwrap()))
            .fold(0u64, |a, b| a.wrapping_add(b));
        out[lane * 8..lane * 8 + 8].copy_from_slice(&s.to_le_bytes());
    }
    out
}

/// BPF_PROG_TEST_RUN on an XDP program fd: `data` in, output frame and verdict out. A ctx
/// `{data: 0, data_end: len}` goes in so the kernel reports the metadata length back.
pub fn test_run_xdp(prog: BorrowedFd<'_>, data: &[u8], repeat: u32) -> Result<XdpRun, OracleError> {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    // headroom 256 + data + room to grow the tail: the kernel caps frames at a page.
    let mut out = vec![0u8; data.len() + 4096];
    let mut ctx_in = [0u32; 6];
    ctx_in[1] = data.len() as u32; // data_end
    let mut ctx_out = [0u32; 6];
    let mut attr = [0u8; 80];
    let put32 =
        |a: &mut [u8; 80], off: usize, v: u32| a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    let put64 =
        |a: &mut [u8; 80], off: usize, v: u64| a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 8, data.len() as u32);
    put32(&mut attr, 12, out.len() as u32);
    put64(&mut attr, 16, data.as_ptr() as u64);
    put64(&mut attr, 24, out.as_mut_ptr() as u64);
    put32(&mut attr, 32, repeat);
    put32(&mut attr, 40, 24);
    put32(&mut attr, 44, 24);
    put64(&mut attr, 48, ctx_in.as_mut_ptr() as u64);
    put64(&mut attr, 56, ctx_out.as_mut_ptr() as u64);
    // SAFETY: attr is a valid bpf_attr for PROG_TEST_RUN whose pointers reference live
    // buffers of the sizes given (data: data.len(), out: out.len(), ctx: 24 bytes each).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr.as_mut_ptr(),
            attr.len(),
        )
    };
    if r < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(OracleError::Sys {
            op: "PROG_TEST_RUN",
            errno,
        });
    }
    let get32 = |off: usize| u32::from_ne_bytes(attr[off..off + 4].try_into().unwrap());
    let retval = get32(4);
    let size_out = get32(12) as usize;
    let duration_ns = get32(36);
    out.truncate(size_out.min(out.len()));
    Ok(XdpRun {
        retval,
        data: out,
        meta_len: ctx_out[0],
        duration_ns,
    })
}
