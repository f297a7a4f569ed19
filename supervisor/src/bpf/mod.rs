//! bpf(2): the dispatcher with the kernel's attr rules (`__sys_bpf` and
//! `CHECK_ATTR` in kernel/bpf/syscall.c), and one module per command family.
//!
//! Support table (gVisor-style: the table is the documentation):
//!
//! | command | status |
//! |---|---|
//! | MAP_CREATE, MAP_{LOOKUP,UPDATE,DELETE}_ELEM, MAP_GET_NEXT_KEY, MAP_LOOKUP_AND_DELETE_ELEM, MAP_FREEZE | supported (map types of bpftime-vm; PROG_ARRAY and map-in-map values resolved from the caller's fds) |
//! | MAP_{LOOKUP,LOOKUP_AND_DELETE,UPDATE,DELETE}_BATCH | supported |
//! | PROG_LOAD | XDP and SOCKET_FILTER (bpftime-vm's pipeline); other types EINVAL with a log line |
//! | BTF_LOAD | supported (blob parsed, checked and kept) |
//! | PROG_TEST_RUN | XDP and SOCKET_FILTER; XDP live frames (verdicts carried out by the kernel, bpftime_netdev::live) |
//! | {PROG,MAP,LINK,BTF}_GET_NEXT_ID, *_GET_FD_BY_ID | supported (open_flags checked, not enforced per fd) |
//! | OBJ_GET_INFO_BY_FD | prog, map, link, BTF |
//! | PROG_BIND_MAP, ENABLE_STATS | supported |
//! | OBJ_PIN, OBJ_GET | through the FUSE bpffs (bpftime-fs); RDONLY/WRONLY give map fds of that access mode, enforced per fd |
//! | LINK_CREATE, LINK_UPDATE, LINK_DETACH | BPF_XDP into the netdev data plane; other attach types EINVAL |
//! | TOKEN_CREATE | no delegation: the kernel's checks, then EOPNOTSUPP for a bpffs root (`token`) |
//! | PROG_ATTACH, PROG_DETACH, ITER_CREATE | no cgroup/sockmap/tcx/iterator targets: the kernel's checks in its order, then EOPNOTSUPP where it would act (`prog_attach`) |
//! | everything else (PROG_QUERY, RAW_TRACEPOINT_OPEN, TASK_FD_QUERY...) | EINVAL, traced |
//!
//! Attr rules as `__sys_bpf`: size > PAGE_SIZE E2BIG, non-zero bytes past
//! `sizeof(union bpf_attr)` (168 on 6.18) E2BIG, a bad pointer EFAULT, non-zero bytes
//! after the command's last field EINVAL, unknown command EINVAL.

pub mod btf_load;
pub mod enable_stats;
pub mod ids;
pub mod link;
pub mod log;
pub mod map_batch;
pub mod map_create;
pub mod map_elem;
pub mod obj_info;
pub mod obj_pin;
pub mod prog_attach;
pub mod prog_bind_map;
pub mod prog_load;
pub mod test_run;
pub mod token;

use crate::call::{Call, Reply};
use crate::registry::MapObj;

/// `sizeof(union bpf_attr)` of the kernel this emulates (6.18): 168.
pub const ATTR_SIZE: usize = 168;
/// PAGE_SIZE: larger attrs are E2BIG.
pub const PAGE_SIZE: usize = 4096;

/// Command numbers.
pub mod cmd {
    pub const MAP_CREATE: i32 = 0;
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const MAP_GET_NEXT_KEY: i32 = 4;
    pub const PROG_LOAD: i32 = 5;
    pub const OBJ_PIN: i32 = 6;
    pub const OBJ_GET: i32 = 7;
    pub const PROG_ATTACH: i32 = 8;
    pub const PROG_DETACH: i32 = 9;
    pub const PROG_TEST_RUN: i32 = 10;
    pub const PROG_GET_NEXT_ID: i32 = 11;
    pub const MAP_GET_NEXT_ID: i32 = 12;
    pub const PROG_GET_FD_BY_ID: i32 = 13;
    pub const MAP_GET_FD_BY_ID: i32 = 14;
    pub const OBJ_GET_INFO_BY_FD: i32 = 15;
    pub const PROG_QUERY: i32 = 16;
    pub const RAW_TRACEPOINT_OPEN: i32 = 17;
    pub const BTF_LOAD: i32 = 18;
    pub const BTF_GET_FD_BY_ID: i32 = 19;
    pub const TASK_FD_QUERY: i32 = 20;
    pub const MAP_LOOKUP_AND_DELETE_ELEM: i32 = 21;
    pub const MAP_FREEZE: i32 = 22;
    pub const BTF_GET_NEXT_ID: i32 = 23;
    pub const MAP_LOOKUP_BATCH: i32 = 24;
    pub const MAP_LOOKUP_AND_DELETE_BATCH: i32 = 25;
    pub const MAP_UPDATE_BATCH: i32 = 26;
    pub const MAP_DELETE_BATCH: i32 = 27;
    pub const LINK_CREATE: i32 = 28;
    pub const LINK_UPDATE: i32 = 29;
    pub const LINK_GET_FD_BY_ID: i32 = 30;
    pub const LINK_GET_NEXT_ID: i32 = 31;
    pub const ENABLE_STATS: i32 = 32;
    pub const ITER_CREATE: i32 = 33;
    pub const LINK_DETACH: i32 = 34;
    pub const PROG_BIND_MAP: i32 = 35;
    pub const TOKEN_CREATE: i32 = 36;
    pub const PROG_STREAM_READ_BY_FD: i32 = 37;
}

/// Name of a command (traces).
pub fn cmd_name(c: i32) -> &'static str {
    const N: [&str; 38] = [
        "MAP_CREATE",
        "MAP_LOOKUP_ELEM",
        "MAP_UPDATE_ELEM",
        "MAP_DELETE_ELEM",
        "MAP_GET_NEXT_KEY",
        "PROG_LOAD",
        "OBJ_PIN",
        "OBJ_GET",
        "PROG_ATTACH",
        "PROG_DETACH",
        "PROG_TEST_RUN",
        "PROG_GET_NEXT_ID",
        "MAP_GET_NEXT_ID",
        "PROG_GET_FD_BY_ID",
        "MAP_GET_FD_BY_ID",
        "OBJ_GET_INFO_BY_FD",
        "PROG_QUERY",
        "RAW_TRACEPOINT_OPEN",
        "BTF_LOAD",
        "BTF_GET_FD_BY_ID",
        "TASK_FD_QUERY",
        "MAP_LOOKUP_AND_DELETE_ELEM",
        "MAP_FREEZE",
        "BTF_GET_NEXT_ID",
        "MAP_LOOKUP_BATCH",
        "MAP_LOOKUP_AND_DELETE_BATCH",
        "MAP_UPDATE_BATCH",
        "MAP_DELETE_BATCH",
        "LINK_CREATE",
        "LINK_UPDATE",
        "LINK_GET_FD_BY_ID",
        "LINK_GET_NEXT_ID",
        "ENABLE_STATS",
        "ITER_CREATE",
        "LINK_DETACH",
        "PROG_BIND_MAP",
        "TOKEN_CREATE",
        "PROG_STREAM_READ_BY_FD",
    ];
    usize::try_from(c)
        .ok()
        .and_then(|i| N.get(i))
        .copied()
        .unwrap_or("?")
}

/// `offsetofend` of each command's last field (`CMD_LAST_FIELD`, 6.18). Bytes after
/// it must be zero (EINVAL).
fn last_field_end(c: i32) -> Option<usize> {
    use cmd::*;
    Some(match c {
        MAP_CREATE => 92,
        MAP_LOOKUP_ELEM | MAP_UPDATE_ELEM | MAP_LOOKUP_AND_DELETE_ELEM => 32,
        MAP_DELETE_ELEM => 16,
        MAP_GET_NEXT_KEY => 24,
        MAP_FREEZE => 4,
        MAP_LOOKUP_BATCH | MAP_LOOKUP_AND_DELETE_BATCH | MAP_UPDATE_BATCH | MAP_DELETE_BATCH => 56,
        PROG_LOAD => 168,
        OBJ_PIN | OBJ_GET => 20,
        PROG_ATTACH | PROG_DETACH => 32,
        PROG_TEST_RUN => 76,
        PROG_GET_NEXT_ID | MAP_GET_NEXT_ID | BTF_GET_NEXT_ID | LINK_GET_NEXT_ID => 8,
        PROG_GET_FD_BY_ID | MAP_GET_FD_BY_ID | BTF_GET_FD_BY_ID => 16,
        LINK_GET_FD_BY_ID => 4,
        OBJ_GET_INFO_BY_FD => 16,
        PROG_QUERY => 64,
        RAW_TRACEPOINT_OPEN => 24,
        BTF_LOAD => 40,
        TASK_FD_QUERY => 48,
        LINK_CREATE => 64,
        LINK_UPDATE => 16,
        LINK_DETACH => 4,
        ENABLE_STATS => 4,
        ITER_CREATE => 8,
        PROG_BIND_MAP => 12,
        TOKEN_CREATE => 8,
        PROG_STREAM_READ_BY_FD => 20,
        _ => return None,
    })
}

/// The copied `union bpf_attr` (zero-padded to [`ATTR_SIZE`]) and where it lives.
pub struct Attr {
    pub b: [u8; ATTR_SIZE],
    /// The caller's attr pointer (for writing fields back).
    pub uptr: u64,
    /// The size the caller passed (clamped to ATTR_SIZE).
    pub size: usize,
}

impl Attr {
    pub fn u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.b[off..off + 4].try_into().unwrap())
    }
    pub fn i32(&self, off: usize) -> i32 {
        self.u32(off) as i32
    }
    pub fn u64(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.b[off..off + 8].try_into().unwrap())
    }
    /// A `char name[16]` field: up to the first NUL.
    pub fn name(&self, off: usize) -> Vec<u8> {
        let f = &self.b[off..off + 16];
        let end = f.iter().position(|&c| c == 0).unwrap_or(16);
        f[..end].to_vec()
    }
    /// Writes a u32 field back into the caller's attr.
    pub fn put_u32(&self, call: &Call<'_>, off: usize, v: u32) -> Result<(), i32> {
        call.write(self.uptr + off as u64, &v.to_ne_bytes())
    }
}

/// The kernel's `bpf_obj_name_cpy`: names are [A-Za-z0-9_.], NUL-terminated within
/// 16 bytes; else EINVAL.
pub fn obj_name(raw: &[u8; 16]) -> Result<String, i32> {
    let end = raw.iter().position(|&c| c == 0).ok_or(libc::EINVAL)?;
    let s = &raw[..end];
    if !s
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    {
        return Err(libc::EINVAL);
    }
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// Handles one bpf() call.
pub fn dispatch(call: &Call<'_>) -> Reply {
    let c = call.arg(0) as i32;
    let reply = dispatch_inner(call, c);
    if call.tracing() {
        let res = match &reply {
            Reply::Value(v) => v.to_string(),
            Reply::Errno(e) => format!("-1 {}", errno_name(*e)),
            Reply::Object(o) => format!("new fd ({} id {})", o.kind.memfd_name(), o.id),
            Reply::Shared(o) => format!("fd ({} id {})", o.kind.memfd_name(), o.id),
            Reply::Fd(_) => "new fd".into(),
            Reply::Continue => "CONTINUE".into(),
        };
        call.trace(|| {
            format!(
                "bpf(BPF_{}, {:#x}, {}) = {res}",
                cmd_name(c),
                call.arg(1),
                call.arg(2) as u32
            )
        });
    }
    reply
}

fn dispatch_inner(call: &Call<'_>, c: i32) -> Reply {
    let uptr = call.arg(1);
    let size = call.arg(2) as u32 as usize;
    // bpf_check_uarg_tail_zero.
    if size > PAGE_SIZE {
        return Reply::Errno(libc::E2BIG);
    }
    if size > ATTR_SIZE {
        match call.read(uptr + ATTR_SIZE as u64, size - ATTR_SIZE) {
            Err(e) => return Reply::Errno(e),
            Ok(tail) if tail.iter().any(|&b| b != 0) => return Reply::Errno(libc::E2BIG),
            Ok(_) => {}
        }
    }
    let n = size.min(ATTR_SIZE);
    let mut attr = Attr {
        b: [0; ATTR_SIZE],
        uptr,
        size: n,
    };
    let elem_op = matches!(
        c,
        cmd::MAP_LOOKUP_ELEM | cmd::MAP_UPDATE_ELEM | cmd::MAP_DELETE_ELEM
    );
    let read = if elem_op {
        call.read_attr(uptr, n)
    } else {
        call.read(uptr, n)
    };
    match read {
        Ok(v) => attr.b[..n].copy_from_slice(&v),
        Err(e) => return Reply::Errno(e),
    }

    let Some(end) = last_field_end(c) else {
        call.trace(|| format!("bpf: unknown command {c}: EINVAL"));
        return Reply::Errno(libc::EINVAL);
    };
    if attr.b[end..].iter().any(|&b| b != 0) {
        return Reply::Errno(libc::EINVAL);
    }
    if elem_op {
        let reply = match c {
            cmd::MAP_LOOKUP_ELEM => map_elem::lookup(call, &attr, false),
            cmd::MAP_UPDATE_ELEM => map_elem::update(call, &attr),
            _ => map_elem::delete(call, &attr),
        };
        call.remember_reads();
        return reply;
    }
    use cmd::*;
    match c {
        MAP_CREATE => map_create::map_create(call, &attr),
        MAP_LOOKUP_ELEM => map_elem::lookup(call, &attr, false),
        MAP_LOOKUP_AND_DELETE_ELEM => map_elem::lookup(call, &attr, true),
        MAP_UPDATE_ELEM => map_elem::update(call, &attr),
        MAP_DELETE_ELEM => map_elem::delete(call, &attr),
        MAP_GET_NEXT_KEY => map_elem::get_next_key(call, &attr),
        MAP_FREEZE => map_elem::freeze(call, &attr),
        MAP_LOOKUP_BATCH | MAP_LOOKUP_AND_DELETE_BATCH | MAP_UPDATE_BATCH | MAP_DELETE_BATCH => {
            map_batch::batch(call, &attr, c)
        }
        PROG_LOAD => prog_load::prog_load(call, &attr),
        BTF_LOAD => btf_load::btf_load(call, &attr),
        PROG_TEST_RUN => test_run::test_run(call, &attr),
        PROG_GET_NEXT_ID | MAP_GET_NEXT_ID | BTF_GET_NEXT_ID | LINK_GET_NEXT_ID => {
            ids::get_next_id(call, &attr, c)
        }
        PROG_GET_FD_BY_ID | MAP_GET_FD_BY_ID | BTF_GET_FD_BY_ID | LINK_GET_FD_BY_ID => {
            ids::get_fd_by_id(call, &attr, c)
        }
        OBJ_GET_INFO_BY_FD => obj_info::get_info(call, &attr),
        PROG_BIND_MAP => prog_bind_map::prog_bind_map(call, &attr),
        ENABLE_STATS => enable_stats::enable_stats(call, &attr),
        OBJ_PIN => obj_pin::obj_pin(call, &attr),
        OBJ_GET => obj_pin::obj_get(call, &attr),
        LINK_CREATE => link::link_create(call, &attr),
        LINK_UPDATE => link::link_update(call, &attr),
        LINK_DETACH => link::link_detach(call, &attr),
        RAW_TRACEPOINT_OPEN => raw_tracepoint_open(call, &attr),
        PROG_ATTACH => prog_attach::prog_attach(call, &attr),
        PROG_DETACH => prog_attach::prog_detach(call, &attr),
        ITER_CREATE => prog_attach::iter_create(call, &attr),
        TOKEN_CREATE => token::token_create(call, &attr),
        _ => unsupported(call, c),
    }
}

/// BPF_RAW_TRACEPOINT_OPEN: bpftime runs no tracing programs, so every program is the
/// wrong type (EINVAL); but `bpf_prog_get` comes first: a closed fd is EBADF.
fn raw_tracepoint_open(call: &Call<'_>, a: &Attr) -> Reply {
    if let Err(e) = call.fd_key(a.i32(8)) {
        return Reply::Errno(e);
    }
    unsupported(call, cmd::RAW_TRACEPOINT_OPEN)
}

/// A command bpftime does not emulate: the kernel's answer for a missing feature.
pub fn unsupported(call: &Call<'_>, c: i32) -> Reply {
    let e = libc::EINVAL;
    call.trace(|| {
        format!(
            "bpf: BPF_{} is not supported by bpftime: {}",
            cmd_name(c),
            errno_name(e)
        )
    });
    tracing::info!(cmd = cmd_name(c), "unsupported bpf command");
    Reply::Errno(e)
}

/// What a map keeps alive: the programs of a PROG_ARRAY and the inner maps of a
/// map-in-map, as (kind, id) — a userspace lookup of those returns the id.
pub fn map_refs(m: &MapObj) -> Vec<(crate::registry::Kind, u32)> {
    use bpftime_vm::maps::map_type;
    let a = m.map.attr();
    let kind = match a.map_type {
        map_type::PROG_ARRAY => crate::registry::Kind::Prog,
        map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS => crate::registry::Kind::Map,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    let mut next = vec![0u8; a.key_size as usize];
    let mut val = vec![0u8; m.map.sys_value_size().max(4)];
    for _ in 0..a.max_entries.min(1 << 20) {
        if m.map.sys_get_next_key(key.as_deref(), &mut next).is_err() {
            break;
        }
        if m.map.sys_lookup(&next, &mut val, 0).is_ok() {
            out.push((kind, u32::from_ne_bytes(val[..4].try_into().unwrap())));
        }
        key = Some(next.clone());
    }
    out
}

/// Symbolic errno (traces).
pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::E2BIG => "E2BIG",
        libc::ENOTSUP => "EOPNOTSUPP",
        libc::ENODEV => "ENODEV",
        libc::ENOSYS => "ENOSYS",
        524 => "ENOTSUPP",
        _ => return format!("errno {e}"),
    };
    n.to_string()
}
