//! Loads a corpus ELF into bpftime's VM without the supervisor: `aya-obj` parses the
//! object and applies its relocations (maps, bpf-to-bpf calls, global data), so the ELF
//! handling is independent of bpftime's own loader. Global data sections (.bss, .data,
//! .rodata) become 1-entry ARRAY maps holding the section contents, BPF_F_MMAPABLE as
//! libbpf makes them (.rodata also BPF_F_RDONLY_PROG and frozen).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use aya_obj::EbpfSectionKind;
use bpftime_vm::maps::{self, map_flags, map_type, CreateOpts, Map, MapAttr};
use bpftime_vm::program::{attach_type, prog_type, MapResolver};
use bpftime_vm::run::NoHost;
use bpftime_vm::{ProgLoadSpec, Program, TestRunOut};

use crate::corpus::{CorpusProg, Flavour, Setup};

/// Errors of the VM loader.
#[derive(Debug, thiserror::Error)]
pub enum VmLoadError {
    #[error("reading the object: {0}")]
    Io(#[from] std::io::Error),
    #[error("aya-obj: {0}")]
    Parse(String),
    #[error("map {name}: create failed: errno {errno}")]
    MapCreate { name: String, errno: i32 },
    #[error("map {name}: {what}: errno {errno}")]
    MapOp {
        name: String,
        what: &'static str,
        errno: i32,
    },
    #[error("program {name}: load failed (errno {errno}): {log}")]
    ProgLoad {
        name: String,
        errno: i32,
        log: String,
    },
    #[error("no map or program named {0}")]
    Missing(String),
}

struct VmMap {
    map: Arc<dyn Map>,
    fd: i32,
}

/// A corpus object loaded into bpftime's VM.
pub struct VmObject {
    maps: BTreeMap<String, VmMap>,
    progs: HashMap<String, Arc<Program>>,
}

impl std::fmt::Debug for VmObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmObject")
            .field("maps", &self.maps.keys().collect::<Vec<_>>())
            .field("progs", &self.progs.keys().collect::<Vec<_>>())
            .finish()
    }
}

struct Resolver<'a>(&'a BTreeMap<String, VmMap>);

impl MapResolver for Resolver<'_> {
    fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>> {
        self.0.values().find(|m| m.fd == fd).map(|m| m.map.clone())
    }
    fn fd_array(&self, _idx: u32) -> Option<Arc<dyn Map>> {
        None
    }
}

/// Fake fds the relocations carry (the resolver maps them back).
const FD_BASE: i32 = 10_000;

fn insn_bytes(insns: &[aya_obj::generated::bpf_insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        out.push(i.code);
        out.push((i.src_reg() << 4) | (i.dst_reg() & 0xf));
        out.extend_from_slice(&i.off.to_le_bytes());
        out.extend_from_slice(&i.imm.to_le_bytes());
    }
    out
}

impl VmObject {
    /// Loads a corpus program's object in `flavour` and applies its [`Setup`].
    pub fn load(prog: &CorpusProg, flavour: Flavour) -> Result<Self, VmLoadError> {
        let bytes = std::fs::read(prog.object(flavour))?;
        Self::load_bytes(&bytes, prog.setup)
    }

    /// Loads an ELF object and applies `setup`.
    pub fn load_bytes(bytes: &[u8], setup: &[Setup]) -> Result<Self, VmLoadError> {
        let mut obj =
            aya_obj::Object::parse(bytes).map_err(|e| VmLoadError::Parse(e.to_string()))?;
        let defs = obj.maps.clone();
        let mut names: Vec<&String> = defs.keys().collect();
        // inner-map templates first: outer maps need them
        names.sort_by_key(|n| {
            (
                matches!(
                    defs[*n].map_type(),
                    map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
                ),
                *n,
            )
        });
        let mut vm_maps: BTreeMap<String, VmMap> = BTreeMap::new();
        for (i, name) in names.into_iter().enumerate() {
            let def = &defs[name];
            let kind = def.section_kind();
            let data_section = matches!(
                kind,
                EbpfSectionKind::Bss | EbpfSectionKind::Data | EbpfSectionKind::Rodata
            );
            let mut attr = MapAttr {
                map_type: def.map_type(),
                key_size: def.key_size(),
                value_size: def.value_size(),
                max_entries: def.max_entries(),
                map_flags: def.map_flags(),
                name: name.chars().take(15).collect(),
                ..Default::default()
            };
            if data_section {
                attr.map_type = map_type::ARRAY;
                attr.key_size = 4;
                attr.max_entries = 1;
                attr.map_flags = map_flags::BPF_F_MMAPABLE
                    | if kind == EbpfSectionKind::Rodata {
                        map_flags::BPF_F_RDONLY_PROG
                    } else {
                        0
                    };
            }
            let mut opts = CreateOpts::default();
            if matches!(
                attr.map_type,
                map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
            ) {
                // `__array(values, ...)` has no value type: libbpf sets the fd size
                if attr.value_size == 0 {
                    attr.value_size = 4;
                }
                // the template: the first inner map user space puts in it
                let inner = setup.iter().find_map(|s| match s {
                    Setup::InnerMap { outer, inner, .. } if outer == name => Some(*inner),
                    _ => None,
                });
                let inner = inner
                    .ok_or_else(|| VmLoadError::Missing(format!("inner map template of {name}")))?;
                opts.inner_map = Some(
                    vm_maps
                        .get(inner)
                        .ok_or_else(|| VmLoadError::Missing(inner.into()))?
                        .map
                        .clone(),
                );
            }
            let map = maps::create_with(&attr, opts).map_err(|e| VmLoadError::MapCreate {
                name: name.clone(),
                errno: e.errno(),
            })?;
            if data_section {
                let mut value = def.data().to_vec();
                value.resize(attr.value_size as usize, 0);
                map.sys_update(&0u32.to_ne_bytes(), &value, 0)
                    .map_err(|e| VmLoadError::MapOp {
                        name: name.clone(),
                        what: "initial value",
                        errno: e.errno(),
                    })?;
                if kind == EbpfSectionKind::Rodata {
                    map.freeze().map_err(|e| VmLoadError::MapOp {
                        name: name.clone(),
                        what: "freeze",
                        errno: e.errno(),
                    })?;
                }
            }
            vm_maps.insert(
                name.clone(),
                VmMap {
                    map,
                    fd: FD_BASE + i as i32,
                },
            );
        }

        let text_sections: hashbrown::HashSet<usize> =
            obj.functions.keys().map(|(s, _)| *s).collect();
        obj.relocate_maps(
            vm_maps.iter().map(|(n, m)| (n.as_str(), m.fd, &defs[n])),
            &text_sections,
        )
        .map_err(|e| VmLoadError::Parse(e.to_string()))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| VmLoadError::Parse(e.to_string()))?;

        let license = obj.license.to_string_lossy().into_owned();
        let mut progs = HashMap::new();
        for (name, p) in &obj.programs {
            let f = obj
                .functions
                .get(&p.function_key())
                .ok_or_else(|| VmLoadError::Missing(name.clone()))?;
            let spec = ProgLoadSpec {
                prog_type: prog_type::XDP,
                expected_attach_type: attach_type::BPF_XDP,
                insns: insn_bytes(&f.instructions),
                license: license.clone(),
                name: name.chars().take(15).collect(),
                ..Default::default()
            };
            let prog =
                Program::load(spec, &Resolver(&vm_maps)).map_err(|e| VmLoadError::ProgLoad {
                    name: name.clone(),
                    errno: e.errno,
                    log: e.log,
                })?;
            progs.insert(name.clone(), Arc::new(prog));
        }
        let vm = VmObject {
            maps: vm_maps,
            progs,
        };
        vm.apply_setup(setup)?;
        Ok(vm)
    }

    fn apply_setup(&self, setup: &[Setup]) -> Result<(), VmLoadError> {
        fn op(name: &str, what: &'static str) -> impl FnOnce(maps::MapError) -> VmLoadError {
            let name = name.to_string();
            move |e| VmLoadError::MapOp {
                name,
                what,
                errno: e.errno(),
            }
        }
        for (id, s) in setup.iter().enumerate() {
            let id = 1000 + id as u32;
            match *s {
                Setup::Update { map, key, value } => self
                    .map(map)?
                    .sys_update(key, value, 0)
                    .map_err(op(map, "update"))?,
                Setup::Devmap { map, key, ifindex } => self
                    .map(map)?
                    .sys_update(&key.to_ne_bytes(), &ifindex.to_ne_bytes(), 0)
                    .map_err(op(map, "update"))?,
                Setup::ProgArray { map, key, prog } => {
                    let m = self.map(map)?;
                    let pa = m
                        .as_any()
                        .downcast_ref::<maps::prog_array::ProgArray>()
                        .ok_or_else(|| VmLoadError::Missing(format!("{map} as PROG_ARRAY")))?;
                    let p = self
                        .progs
                        .get(prog)
                        .ok_or_else(|| VmLoadError::Missing(prog.into()))?;
                    pa.set(key, id, p.clone(), 0).map_err(op(map, "set prog"))?;
                }
                Setup::InnerMap { outer, key, inner } => {
                    let m = self.map(outer)?;
                    let mm = m
                        .as_any()
                        .downcast_ref::<maps::map_in_map::MapOfMaps>()
                        .ok_or_else(|| VmLoadError::Missing(format!("{outer} as map of maps")))?;
                    mm.set(&key.to_ne_bytes(), id, self.map(inner)?.clone(), 0)
                        .map_err(op(outer, "set inner"))?;
                }
            }
        }
        Ok(())
    }

    /// Map `name` (`.bss`, `.data`, `.rodata` for the sections).
    pub fn map(&self, name: &str) -> Result<&Arc<dyn Map>, VmLoadError> {
        self.maps
            .get(name)
            .map(|m| &m.map)
            .ok_or_else(|| VmLoadError::Missing(name.into()))
    }

    /// Names of the maps.
    pub fn map_names(&self) -> Vec<String> {
        self.maps.keys().cloned().collect()
    }

    /// Program `name`.
    pub fn prog(&self, name: &str) -> Result<&Arc<Program>, VmLoadError> {
        self.progs
            .get(name)
            .ok_or_else(|| VmLoadError::Missing(name.into()))
    }

    /// BPF_PROG_TEST_RUN in the VM, with the same ctx the oracle passes
    /// (`{data: 0, data_end: len}`); errors are errnos.
    /// How program `prog`'s memory accesses run (proven or checked at run time).
    pub fn memory_accesses(&self, prog: &str) -> Option<bpftime_vm::program::MemoryAccesses> {
        self.progs.get(prog).map(|p| p.memory_accesses())
    }

    pub fn run(&self, prog: &str, data: &[u8], repeat: u32) -> Result<TestRunOut, i32> {
        let p = self.progs.get(prog).ok_or(libc::ENOENT)?;
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        p.test_run_xdp(data, Some(&ctx), repeat, 0, &NoHost)
    }

    /// Every (key, value) of a map through the syscall-side operations, per-CPU values
    /// summed lane by lane as the oracle's [`crate::oracle::KernelObject::dump`] does.
    pub fn dump(&self, name: &str) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, VmLoadError> {
        let m = self.map(name)?;
        let attr = m.attr();
        let percpu = matches!(
            attr.map_type,
            map_type::PERCPU_ARRAY | map_type::PERCPU_HASH | map_type::LRU_PERCPU_HASH
        );
        let mut out = BTreeMap::new();
        let mut key: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; attr.key_size as usize];
            if m.sys_get_next_key(key.as_deref(), &mut next).is_err() {
                break;
            }
            let mut v = vec![0u8; m.sys_value_size()];
            if m.sys_lookup(&next, &mut v, 0).is_ok() {
                let v = if percpu {
                    let per = (attr.value_size as usize).div_ceil(8) * 8;
                    let vals: Vec<Vec<u8>> = v.chunks(per).map(|c| c.to_vec()).collect();
                    crate::oracle::sum_percpu(&vals)
                } else {
                    v
                };
                out.insert(next.clone(), v);
            }
            key = Some(next);
        }
        Ok(out)
    }

    /// The committed records of a RINGBUF map, read from its shared memory with the
    /// kernel's layout (consumer page, producer page, data; 8-byte record headers),
    /// from the consumer position to the producer position. Discarded records are skipped.
    pub fn ringbuf_records(&self, name: &str) -> Result<Vec<Vec<u8>>, VmLoadError> {
        let m = self.map(name)?;
        let fd = m
            .mmap_fd()
            .ok_or_else(|| VmLoadError::Missing(format!("{name} memory")))?;
        let page = 4096u64;
        let size = m.attr().max_entries as u64;
        let read = |off: u64, len: usize| -> Result<Vec<u8>, VmLoadError> {
            let mut b = vec![0u8; len];
            // SAFETY: b is a valid buffer of len bytes; pread does not retain it.
            let n = unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), len, off as i64) };
            if n != len as isize {
                return Err(VmLoadError::Io(std::io::Error::last_os_error()));
            }
            Ok(b)
        };
        let u64_at = |b: &[u8]| u64::from_ne_bytes(b[..8].try_into().unwrap());
        let mut cons = u64_at(&read(0, 8)?);
        let prod = u64_at(&read(page, 8)?);
        let mut out = Vec::new();
        while cons < prod {
            let hdr = read(2 * page + (cons & (size - 1)), 8)?;
            let len = u32::from_ne_bytes(hdr[..4].try_into().unwrap());
            let (busy, discard, n) = (
                len & (1 << 31) != 0,
                len & (1 << 30) != 0,
                (len & 0x3fff_ffff) as u64,
            );
            if busy {
                break;
            }
            if !discard {
                // the data area is mapped twice in the kernel; read it in up to two pieces
                let start = (cons + 8) & (size - 1);
                let first = n.min(size - start);
                let mut rec = read(2 * page + start, first as usize)?;
                if first < n {
                    rec.extend(read(2 * page, (n - first) as usize)?);
                }
                out.push(rec);
            }
            cons += (n + 8).div_ceil(8) * 8;
        }
        Ok(out)
    }
}
