//! BPF_PROG_ATTACH / BPF_PROG_DETACH (`bpf_prog_attach`, `bpf_prog_detach`) and
//! BPF_ITER_CREATE. bpftime attaches XDP only (netlink or BPF_LINK_CREATE); these
//! commands reach cgroups, sockmaps, lirc devices, the flow dissector and tcx, none of
//! which bpftime emulates. They still answer as the kernel does up to the point where
//! an attachment would be made: attr checks, the program fd, the target fd, in the
//! kernel's order; past it, EOPNOTSUPP (logged) where the kernel would act.
//! attr: target_fd/target_ifindex 0, attach_bpf_fd 4, attach_type 8, attach_flags 12,
//! replace_bpf_fd 16, relative_fd/relative_id 20, expected_revision 24.

use super::prog_load::prog_type as ptype;
use super::Attr;
use crate::call::{Call, Reply};
use crate::registry::Kind;

/// The kernel's `attach_type_to_prog_type`.
pub fn attach_type_to_prog_type(at: u32) -> u32 {
    use ptype::*;
    match at {
        0 | 1 => CGROUP_SKB,
        2 | 12 | 13 | 34 => CGROUP_SOCK,
        3 => SOCK_OPS,
        4 | 5 | 38 => SK_SKB,
        6 => CGROUP_DEVICE,
        7 => SK_MSG,
        8..=11 | 14 | 15 | 19 | 20 | 29..=32 | 49..=53 => CGROUP_SOCK_ADDR,
        16 => LIRC_MODE2,
        17 => FLOW_DISSECTOR,
        18 => CGROUP_SYSCTL,
        21 | 22 => CGROUP_SOCKOPT,
        28 => TRACING,
        36 => SK_LOOKUP,
        37 => XDP,
        43 => LSM,
        45 => NETFILTER,
        46 | 47 | 54 | 55 => SCHED_CLS,
        _ => UNSPEC,
    }
}

const BPF_F_ATTACH_MASK_BASE: u32 = 1 | 2 | 4;
/// REPLACE | BEFORE | AFTER | ID | LINK.
const BPF_F_ATTACH_MASK_MPROG: u32 = 4 | 8 | 16 | 32 | (1 << 13);

fn is_cgroup(p: u32) -> bool {
    use ptype::*;
    matches!(
        p,
        CGROUP_DEVICE
            | CGROUP_SKB
            | CGROUP_SOCK
            | CGROUP_SOCK_ADDR
            | CGROUP_SOCKOPT
            | CGROUP_SYSCTL
            | SOCK_OPS
            | LSM
    )
}

/// `bpf_prog_get_type(fd, p)`: EBADF closed, EINVAL not a program of type `p`.
fn prog_of_type(call: &Call<'_>, fd: i32, p: u32) -> Result<(), i32> {
    let obj = call.object(fd, Kind::Prog, libc::EINVAL)?;
    if obj.as_prog().unwrap().prog.prog_type != p {
        return Err(libc::EINVAL);
    }
    Ok(())
}

/// `cgroup_get_from_fd`: EBADF unless the fd is a cgroup directory.
fn cgroup_fd(call: &Call<'_>, fd: i32) -> Result<(), i32> {
    const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    call.fd_key(fd)?;
    match call.fd_fs_type(fd) {
        Some(CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC) => Ok(()),
        _ => Err(libc::EBADF),
    }
}

fn not_emulated(call: &Call<'_>, what: &str) -> i32 {
    call.trace(|| format!("bpf: {what} is not emulated by bpftime: EOPNOTSUPP"));
    tracing::info!(what, "unsupported attach target");
    libc::EOPNOTSUPP
}

pub fn prog_attach(call: &Call<'_>, a: &Attr) -> Reply {
    Reply::Errno(attach(call, a).err().unwrap_or(libc::EINVAL))
}

fn attach(call: &Call<'_>, a: &Attr) -> Result<(), i32> {
    let p = attach_type_to_prog_type(a.u32(8));
    if p == ptype::UNSPEC {
        return Err(libc::EINVAL);
    }
    let mask = if p == ptype::SCHED_CLS {
        BPF_F_ATTACH_MASK_MPROG
    } else {
        BPF_F_ATTACH_MASK_BASE
    };
    if a.u32(12) & !mask != 0 {
        return Err(libc::EINVAL);
    }
    // No program bpftime loads has a type these attach points take (XDP attaches
    // through netlink or links: bpf_prog_attach's switch has no XDP case).
    prog_of_type(call, a.i32(4), p)?;
    Err(libc::EINVAL)
}

pub fn prog_detach(call: &Call<'_>, a: &Attr) -> Reply {
    Reply::Errno(detach(call, a).err().unwrap_or(libc::EINVAL))
}

fn detach(call: &Call<'_>, a: &Attr) -> Result<(), i32> {
    use ptype::*;
    let p = attach_type_to_prog_type(a.u32(8));
    let (flags, relative, revision) = (a.u32(12), a.u32(20), a.u64(24));
    if p == SCHED_CLS {
        if flags & !BPF_F_ATTACH_MASK_MPROG != 0 {
            return Err(libc::EINVAL);
        }
        if a.i32(4) != 0 {
            prog_of_type(call, a.i32(4), p)?;
        }
    } else if is_cgroup(p) {
        // Cgroups take an expected revision.
        if flags != 0 || relative != 0 {
            return Err(libc::EINVAL);
        }
    } else if flags != 0 || relative != 0 || revision != 0 {
        return Err(libc::EINVAL);
    }
    match p {
        SK_MSG | SK_SKB => {
            // sock_map_prog_detach: the map, then the program, of the right type.
            call.object(a.i32(0), Kind::Map, libc::EINVAL)?;
            prog_of_type(call, a.i32(4), p)
        }
        LIRC_MODE2 | FLOW_DISSECTOR => prog_of_type(call, a.i32(4), p),
        _ if is_cgroup(p) => {
            cgroup_fd(call, a.i32(0))?;
            Err(not_emulated(call, "cgroup program detach"))
        }
        SCHED_CLS => Err(not_emulated(call, "tcx/netkit detach")),
        _ => Err(libc::EINVAL),
    }
}

/// BPF_ITER_CREATE (attr link_fd 0, flags 4): flags EINVAL, then the link: a closed
/// fd EBADF; bpftime has no iterator links, so any other fd is EINVAL.
pub fn iter_create(call: &Call<'_>, a: &Attr) -> Reply {
    if a.u32(4) != 0 {
        return Reply::Errno(libc::EINVAL);
    }
    Reply::Errno(call.closed_or(a.i32(0), libc::EINVAL))
}
