//! BPF_PROG_LOAD (`bpf_prog_load`): attribute checks, copies of insns, license,
//! func/line info, then the vm pipeline; the log goes back to the caller.

use std::sync::Arc;

use bpftime_vm::maps::Map;

use super::Attr;
use crate::call::{cap, Call, Reply};
use crate::registry::{Body, Kind, Object, ProgObj};
use crate::sys::memfd;

/// Program types (`enum bpf_prog_type`) the supervisor names.
pub mod prog_type {
    pub const UNSPEC: u32 = 0;
    pub const SOCKET_FILTER: u32 = 1;
    pub const SCHED_CLS: u32 = 3;
    pub const XDP: u32 = 6;
    pub const CGROUP_SKB: u32 = 8;
    pub const CGROUP_SOCK: u32 = 9;
    pub const SOCK_OPS: u32 = 13;
    pub const SK_SKB: u32 = 14;
    pub const CGROUP_DEVICE: u32 = 15;
    pub const SK_MSG: u32 = 16;
    pub const CGROUP_SOCK_ADDR: u32 = 18;
    pub const LIRC_MODE2: u32 = 20;
    pub const SK_REUSEPORT: u32 = 21;
    pub const FLOW_DISSECTOR: u32 = 22;
    pub const CGROUP_SYSCTL: u32 = 23;
    pub const CGROUP_SOCKOPT: u32 = 25;
    pub const TRACING: u32 = 26;
    pub const STRUCT_OPS: u32 = 27;
    pub const EXT: u32 = 28;
    pub const LSM: u32 = 29;
    pub const SK_LOOKUP: u32 = 30;
    pub const SYSCALL: u32 = 31;
    pub const NETFILTER: u32 = 32;
}

/// `BPF_F_XDP_HAS_FRAGS` in `prog_flags` (`xdp.frags` sections).
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// A loaded program as the registry keeps it.
pub struct LoadedProg {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub name: String,
    pub tag: [u8; 8],
    /// The instructions as loaded (8 bytes each).
    pub insns: Vec<u8>,
    /// What `bpftool prog dump xlated` reads: map ld_imm64 carry map ids.
    pub xlated: Vec<u8>,
    pub gpl_compatible: bool,
    pub prog_flags: u32,
    pub func_info: Vec<u8>,
    pub func_info_rec_size: u32,
    pub line_info: Vec<u8>,
    pub line_info_rec_size: u32,
    /// The vm's program (what test runs and the data plane execute).
    pub vm: Arc<bpftime_vm::program::Program>,
}

impl LoadedProg {
    pub fn insn_cnt(&self) -> u32 {
        (self.insns.len() / 8) as u32
    }
}

/// The kernel's `license_is_gpl_compatible`.
pub fn gpl_compatible(lic: &[u8]) -> bool {
    matches!(
        lic,
        b"GPL"
            | b"GPL v2"
            | b"GPL and additional rights"
            | b"Dual BSD/GPL"
            | b"Dual MIT/GPL"
            | b"Dual MPL/GPL"
    )
}

/// Resolves the target's map fds while the vm links a program.
pub struct Resolver<'c, 'a> {
    pub call: &'c Call<'a>,
    pub fd_array: u64,
    /// Map objects the program referenced (kept alive by the program).
    pub used: std::cell::RefCell<Vec<Arc<Object>>>,
}

impl Resolver<'_, '_> {
    pub fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>> {
        let obj = self.call.object(fd, Kind::Map, libc::EINVAL).ok()?;
        let m = obj.as_map().unwrap().map.clone();
        self.used.borrow_mut().push(obj);
        Some(m)
    }
    pub fn fd_array(&self, idx: u32) -> Option<Arc<dyn Map>> {
        if self.fd_array == 0 {
            return None;
        }
        let b = self.call.read(self.fd_array + 4 * idx as u64, 4).ok()?;
        self.map_by_fd(i32::from_ne_bytes(b.try_into().ok()?))
    }
}

/// What bpf_prog_load checks before it copies anything: the attach target named by
/// attach_prog_fd (a program, else a kernel BTF object) or attach_btf_id (vmlinux),
/// and `bpf_prog_load_check_attach` (after `bpf_prog_load_fixup_attach_type`).
fn attach_target(call: &Call<'_>, a: &Attr, prog_type: u32) -> Result<(), i32> {
    use prog_type::*;
    const BTF_MAX_TYPE: u32 = 0xfffff;
    const BPF_CGROUP_INET_SOCK_CREATE: u32 = 2;
    const BPF_SK_REUSEPORT_SELECT: u32 = 39;
    const BPF_SK_REUSEPORT_SELECT_OR_MIGRATE: u32 = 40;
    let (btf_id, target_fd) = (a.u32(108), a.i32(112));
    let mut expected = a.u32(68);
    match prog_type {
        CGROUP_SOCK if expected == 0 => expected = BPF_CGROUP_INET_SOCK_CREATE,
        SK_REUSEPORT if expected == 0 => expected = BPF_SK_REUSEPORT_SELECT,
        _ => {}
    }
    let mut dst_prog = false;
    let mut attach_btf = false;
    if target_fd != 0 {
        match call.any_object(target_fd) {
            Ok(Some(o)) if o.kind == Kind::Prog => dst_prog = true,
            // btf_get_by_fd on the same fd: a BTF of a program is not a kernel BTF.
            Ok(Some(o)) if o.kind == Kind::Btf => return Err(524),
            _ => return Err(libc::EINVAL),
        }
    } else if btf_id != 0 {
        attach_btf = true; // the running kernel's vmlinux BTF
    }
    if btf_id != 0 {
        if btf_id > BTF_MAX_TYPE || (!attach_btf && !dst_prog) {
            return Err(libc::EINVAL);
        }
        if !matches!(prog_type, TRACING | LSM | STRUCT_OPS | EXT) {
            return Err(libc::EINVAL);
        }
    }
    if dst_prog && !matches!(prog_type, TRACING | EXT) {
        return Err(libc::EINVAL);
    }
    // The types whose expected attach type must be one of their own (the attach types
    // `attach_type_to_prog_type` maps to them).
    let ok = match prog_type {
        CGROUP_SOCK | CGROUP_SOCK_ADDR | CGROUP_SKB | CGROUP_SOCKOPT | SK_LOOKUP | NETFILTER => {
            super::prog_attach::attach_type_to_prog_type(expected) == prog_type
        }
        SK_REUSEPORT => matches!(
            expected,
            BPF_SK_REUSEPORT_SELECT | BPF_SK_REUSEPORT_SELECT_OR_MIGRATE
        ),
        SYSCALL | EXT => expected == 0,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(libc::EINVAL)
    }
}

pub fn prog_load(call: &Call<'_>, a: &Attr) -> Reply {
    match load(call, a) {
        Ok(r) => r,
        Err(e) => Reply::Errno(e),
    }
}

fn load(call: &Call<'_>, a: &Attr) -> Result<Reply, i32> {
    let prog_type = a.u32(0);
    let insn_cnt = a.u32(4);
    let (log_level, log_size, log_buf) = (a.u32(24), a.u32(28), a.u64(32));
    let prog_flags = a.u32(44);
    const KNOWN_FLAGS: u32 = 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | (1 << 16);
    if prog_flags & !KNOWN_FLAGS != 0 {
        return Err(libc::EINVAL);
    }
    if prog_flags & (1 << 16) != 0 {
        return Err(super::token::refuse(call, a.i32(144)));
    }
    let creds = call.creds()?;
    let bpf_cap = creds.bpf_capable();
    if !bpf_cap {
        // sysctl unprivileged_bpf_disabled (Debian's default) refuses everyone else.
        return Err(libc::EPERM);
    }
    if insn_cnt == 0 || insn_cnt > 1_000_000 {
        return Err(libc::E2BIG);
    }
    if prog_type == prog_type::XDP && !(creds.has(cap::NET_ADMIN) || creds.has(cap::SYS_ADMIN)) {
        return Err(libc::EPERM);
    }
    attach_target(call, a, prog_type)?;
    if a.u64(152) != 0 || a.u32(160) != 0 || a.i32(164) != 0 {
        // Signed programs are not emulated.
        return Err(libc::EINVAL);
    }
    // bpf_prog_load copies the instructions, then the license (a NULL one is EFAULT),
    // before it looks at the device.
    let insns = call.read(a.u64(8), insn_cnt as usize * 8)?;
    let license = call.read_cstr(a.u64(16), 127).map_err(|_| libc::EFAULT)?;
    if a.u32(64) != 0 {
        // prog_ifindex: offload needs a device driver that offloads.
        return Err(libc::EINVAL);
    }
    let mut raw_name = [0u8; 16];
    raw_name.copy_from_slice(&a.b[48..64]);
    let name = super::obj_name(&raw_name)?;
    if !super::log::attr_valid(log_level, log_buf, log_size) {
        return Err(libc::EINVAL);
    }
    // BTF and func/line info.
    let btf_fd = a.u32(72);
    let (fi_rec, fi_cnt) = (a.u32(76), a.u32(88));
    let (li_rec, li_cnt) = (a.u32(92), a.u32(104));
    let btf = if btf_fd != 0 {
        Some(call.object(btf_fd as i32, Kind::Btf, libc::EINVAL)?)
    } else {
        None
    };
    if btf.is_none() && (fi_cnt != 0 || li_cnt != 0) {
        return Err(libc::EINVAL);
    }
    let func_info = if fi_cnt != 0 {
        call.read(a.u64(80), (fi_rec as usize).saturating_mul(fi_cnt as usize))?
    } else {
        vec![]
    };
    let line_info = if li_cnt != 0 {
        call.read(a.u64(96), (li_rec as usize).saturating_mul(li_cnt as usize))?
    } else {
        vec![]
    };
    let original = insns.clone();
    let xlated = xlate(call, &insns, a.u64(120));
    let resolver = Resolver {
        call,
        fd_array: a.u64(120),
        used: Default::default(),
    };
    let spec = VmSpec {
        prog_type,
        expected_attach_type: a.u32(68),
        insns,
        license: license.clone(),
        prog_flags,
        name: name.clone(),
        kern_version: a.u32(40),
        log_level,
        func_info: func_info.clone(),
        func_info_rec_size: fi_rec,
        line_info: line_info.clone(),
        line_info_rec_size: li_rec,
        btf: btf.as_ref().map(|o| o.as_btf().unwrap().clone()),
    };
    let btf_id = btf.as_ref().map_or(0, |o| o.id);
    let result = vm_load(spec, btf_id, &resolver);
    let (vm, log) = match result {
        Ok(v) => v,
        Err((errno, log)) => {
            let ts = super::log::write(call, log_level, log_buf, log_size, &log);
            if a.size >= 144 && log_level != 0 {
                a.put_u32(call, 140, log.len() as u32 + 1)?;
            }
            call.trace(|| {
                format!(
                    "  PROG_LOAD '{name}' refused: {}",
                    log.lines().last().unwrap_or("")
                )
            });
            let _ = ts;
            return Err(errno);
        }
    };
    let ts = super::log::write(call, log_level, log_buf, log_size, &log);
    if a.size >= 144 && log_level != 0 {
        a.put_u32(call, 140, log.len() as u32 + 1)?;
    }
    ts?;
    let mut used = resolver.used.into_inner();
    used.sort_by_key(|o| o.id);
    used.dedup_by_key(|o| o.id);
    // bpf_check_tail_call: the prog arrays it uses belong to its type (their first user
    // or stored program decides).
    for o in &used {
        let m = &o.as_map().unwrap().map;
        if let Some(pa) = m
            .as_any()
            .downcast_ref::<bpftime_vm::maps::prog_array::ProgArray>()
        {
            if !pa.compatible(prog_type, prog_flags & BPF_F_XDP_HAS_FRAGS != 0) {
                call.trace(|| {
                    format!(
                        "  PROG_LOAD '{name}': prog array {} owned by another program type",
                        o.id
                    )
                });
                return Err(libc::EINVAL);
            }
        }
    }
    let prog = LoadedProg {
        prog_type,
        expected_attach_type: a.u32(68),
        name: name.clone(),
        tag: vm.tag(),
        insns: original,
        xlated,
        gpl_compatible: gpl_compatible(&license),
        prog_flags,
        func_info,
        func_info_rec_size: fi_rec,
        line_info,
        line_info_rec_size: li_rec,
        vm,
    };
    let handle = memfd::create(Kind::Prog.memfd_name())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    let body = Body::Prog(ProgObj {
        prog,
        maps: std::sync::Mutex::new(used),
        btf,
        run_time_ns: Default::default(),
        run_cnt: Default::default(),
    });
    let obj = call
        .daemon
        .registry
        .lock()
        .unwrap()
        .insert(Kind::Prog, handle, body, creds.uid)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    call.trace(|| {
        format!(
            "  prog {} '{}' type {} insns {}",
            obj.id, name, prog_type, insn_cnt
        )
    });
    Ok(Reply::Object(obj))
}

/// The instructions as dumped: imm of map ld_imm64 = map id (src MAP_FD /
/// MAP_VALUE; fd_array indexes resolved the same way).
fn xlate(call: &Call<'_>, insns: &[u8], fd_array: u64) -> Vec<u8> {
    let mut v = insns.to_vec();
    let mut i = 0;
    while i + 16 <= v.len() {
        if v[i] != 0x18 {
            i += 8;
            continue;
        }
        let src = v[i + 1] >> 4;
        let imm = i32::from_ne_bytes(v[i + 4..i + 8].try_into().unwrap());
        let fd = match src {
            1 | 2 => Some(imm),
            5 | 6 if fd_array != 0 => call
                .read(fd_array + 4 * imm as u32 as u64, 4)
                .ok()
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap())),
            _ => None,
        };
        if let Some(fd) = fd {
            if let Ok(obj) = call.object(fd, Kind::Map, libc::EINVAL) {
                v[i + 4..i + 8].copy_from_slice(&obj.id.to_ne_bytes());
                // src 5/6 are dumped as their MAP_FD / MAP_VALUE forms.
                let nsrc = match src {
                    5 => 1,
                    6 => 2,
                    s => s,
                };
                v[i + 1] = (v[i + 1] & 0x0f) | (nsrc << 4);
            }
        }
        i += 16;
    }
    v
}

/// What the vm pipeline needs (copied out of the target).
pub struct VmSpec {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub insns: Vec<u8>,
    pub license: Vec<u8>,
    pub prog_flags: u32,
    pub name: String,
    pub kern_version: u32,
    pub log_level: u32,
    pub func_info: Vec<u8>,
    pub func_info_rec_size: u32,
    pub line_info: Vec<u8>,
    pub line_info_rec_size: u32,
    pub btf: Option<Arc<crate::btf::Btf>>,
}

impl bpftime_vm::program::MapResolver for Resolver<'_, '_> {
    fn map_by_fd(&self, fd: i32) -> Option<Arc<dyn Map>> {
        Resolver::map_by_fd(self, fd)
    }
    fn fd_array(&self, idx: u32) -> Option<Arc<dyn Map>> {
        Resolver::fd_array(self, idx)
    }
    fn not_a_map(&self, fd_or_idx: i32, from_array: bool) -> i32 {
        let fd = if from_array {
            match self
                .call
                .read(self.fd_array + 4 * fd_or_idx as u32 as u64, 4)
            {
                Ok(b) => i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])),
                Err(e) => return e,
            }
        } else {
            fd_or_idx
        };
        self.call.closed_or(fd, libc::EINVAL)
    }
}

/// The adapter to bpftime-vm's `Program::load`: Ok((program, log)) or
/// Err((errno, log)).
fn vm_load(
    spec: VmSpec,
    btf_id: u32,
    resolver: &Resolver<'_, '_>,
) -> Result<(Arc<bpftime_vm::program::Program>, String), (i32, String)> {
    let log_level = spec.log_level;
    let vspec = bpftime_vm::program::ProgLoadSpec {
        prog_type: spec.prog_type,
        expected_attach_type: spec.expected_attach_type,
        insns: spec.insns,
        license: String::from_utf8_lossy(&spec.license).into_owned(),
        prog_flags: spec.prog_flags,
        name: spec.name,
        kern_version: spec.kern_version,
        log_level: spec.log_level,
        func_info: spec.func_info,
        func_info_rec_size: spec.func_info_rec_size,
        line_info: spec.line_info,
        line_info_rec_size: spec.line_info_rec_size,
        prog_btf_id: btf_id,
    };
    match bpftime_vm::program::Program::load(vspec, resolver) {
        Ok(p) => {
            let mut log = p.log().to_string();
            if log.is_empty() && log_level != 0 {
                // The kernel always ends a logged load with its statistics line.
                log = format!(
                    "processed {} insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n",
                    p.insn_cnt()
                );
            }
            let p = Arc::new(p);
            p.compile_in_background();
            Ok((p, log))
        }
        Err(e) => Err((e.errno, e.log)),
    }
}
