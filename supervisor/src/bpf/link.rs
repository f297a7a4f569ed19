//! LINK_CREATE / LINK_UPDATE / LINK_DETACH for BPF_XDP (`bpf_xdp_link_attach`,
//! `bpf_xdp_link_update`, `bpf_xdp_link_detach`): the attachment is the netdev data
//! plane's (AF_XDP + the kernel stub); the link object owns it and detaches it when
//! its last holder goes. Other attach types: EINVAL as a kernel that cannot attach
//! that program there.
//! attr (create): prog_fd 0, target_ifindex 4, attach_type 8, flags 12.
//! attr (update): link_fd 0, new_prog_fd 4, flags 8, old_prog_fd 12.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bpftime_netdev::{AttachSpec, XdpMode};

use super::prog_load::prog_type;
use super::Attr;
use crate::call::{cap, Call, Reply};
use crate::registry::{Body, Kind, LinkObj, Object};
use crate::sys::memfd;

/// `BPF_XDP` attach type.
pub const BPF_XDP: u32 = 37;
/// `BPF_LINK_TYPE_XDP`.
pub const LINK_TYPE_XDP: u32 = 6;
const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;
const XDP_FLAGS_HW_MODE: u32 = 8;
const BPF_F_REPLACE: u32 = 4;

fn vm_program(prog: &Object) -> Arc<dyn bpftime_netdev::XdpProgram> {
    Arc::new(bpftime_netdev::VmProgram::new(prog.as_prog().unwrap().prog.vm.clone()))
}

pub fn link_create(call: &Call<'_>, a: &Attr) -> Reply {
    match create(call, a) {
        Ok(r) => r,
        Err(e) => Reply::Errno(e),
    }
}

fn create(call: &Call<'_>, a: &Attr) -> Result<Reply, i32> {
    let prog = call.object(a.i32(0), Kind::Prog, libc::EINVAL)?;
    let p = prog.as_prog().unwrap();
    let attach_type = a.u32(8);
    if p.prog.prog_type != prog_type::XDP || attach_type != BPF_XDP {
        call.trace(|| format!("  LINK_CREATE: attach type {attach_type} for prog type {}: EINVAL", p.prog.prog_type));
        return Err(libc::EINVAL);
    }
    let flags = a.u32(12);
    let modes = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE;
    if flags & !modes != 0 || (flags & modes).count_ones() > 1 {
        return Err(libc::EINVAL);
    }
    if a.b[16..64].iter().any(|&b| b != 0) {
        return Err(libc::EINVAL);
    }
    let creds = call.creds()?;
    if !creds.has(cap::NET_ADMIN) {
        return Err(libc::EPERM);
    }
    if flags & XDP_FLAGS_HW_MODE != 0 {
        return Err(libc::EOPNOTSUPP);
    }
    let ifindex = a.u32(4);
    if ifindex == 0 {
        return Err(libc::EINVAL);
    }
    let netns = call.proc_path("ns/net");
    let modes: &[XdpMode] = match flags {
        XDP_FLAGS_SKB_MODE => &[XdpMode::Skb],
        XDP_FLAGS_DRV_MODE => &[XdpMode::Drv],
        // No mode: native if the driver has it, else generic (as dev_xdp_mode).
        _ => &[XdpMode::Drv, XdpMode::Skb],
    };
    let mut last = libc::EOPNOTSUPP;
    let mut attached = None;
    for &mode in modes {
        let spec = AttachSpec {
            netns: Some(netns.clone()),
            ifindex,
            mode,
            program: vm_program(&prog),
            queues: None,
            cpu_pinning: false,
        };
        match call.daemon.dataplane.attach(spec) {
            Ok(id) => {
                attached = Some(id);
                break;
            }
            Err(e) => {
                last = e.errno();
                call.trace(|| format!("  LINK_CREATE: {mode:?} attach to ifindex {ifindex}: {e}"));
                if last != libc::EOPNOTSUPP {
                    break;
                }
            }
        }
    }
    let id = attached.ok_or(last)?;
    let handle = match memfd::create(Kind::Link.memfd_name()) {
        Ok(h) => h,
        Err(e) => {
            let _ = call.daemon.dataplane.detach(id);
            return Err(e.raw_os_error().unwrap_or(libc::ENOMEM));
        }
    };
    let body = Body::Link(LinkObj {
        link_type: LINK_TYPE_XDP,
        prog: Mutex::new(prog.clone()),
        ifindex: ifindex.into(),
        attach_type,
        attachment: Mutex::new(Some(id)),
    });
    let r = call.daemon.registry.lock().unwrap().insert(Kind::Link, handle, body, creds.uid);
    match r {
        Ok(obj) => {
            call.trace(|| format!("  link {} prog {} ifindex {ifindex}", obj.id, prog.id));
            Ok(Reply::Object(obj))
        }
        Err(e) => {
            let _ = call.daemon.dataplane.detach(id);
            Err(e.raw_os_error().unwrap_or(libc::ENOMEM))
        }
    }
}

pub fn link_update(call: &Call<'_>, a: &Attr) -> Reply {
    let r = (|| -> Result<(), i32> {
        let link = call.object(a.i32(0), Kind::Link, libc::EINVAL)?;
        let flags = a.u32(8);
        if flags & !BPF_F_REPLACE != 0 {
            return Err(libc::EINVAL);
        }
        if flags & BPF_F_REPLACE == 0 && a.u32(12) != 0 {
            return Err(libc::EINVAL);
        }
        let new = call.object(a.i32(4), Kind::Prog, libc::EINVAL)?;
        let l = link.as_link().unwrap();
        let mut cur = l.prog.lock().unwrap();
        if flags & BPF_F_REPLACE != 0 {
            let old = call.object(a.i32(12), Kind::Prog, libc::EINVAL)?;
            if old.id != cur.id {
                return Err(libc::EPERM);
            }
        }
        if new.as_prog().unwrap().prog.prog_type != prog_type::XDP {
            return Err(libc::EINVAL);
        }
        let att = *l.attachment.lock().unwrap();
        let Some(id) = att else { return Err(libc::ENOLINK) };
        call.daemon.dataplane.replace(id, vm_program(&new)).map_err(|e| e.errno())?;
        *cur = new;
        Ok(())
    })();
    match r {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}

pub fn link_detach(call: &Call<'_>, a: &Attr) -> Reply {
    match call.object(a.i32(0), Kind::Link, libc::EINVAL) {
        Ok(link) => {
            let l = link.as_link().unwrap();
            if let Some(id) = l.attachment.lock().unwrap().take() {
                let _ = call.daemon.dataplane.detach(id);
            }
            l.ifindex.store(0, Ordering::Relaxed);
            Reply::Value(0)
        }
        Err(e) => Reply::Errno(e),
    }
}
