//! LINK_CREATE / LINK_UPDATE / LINK_DETACH for BPF_XDP (`bpf_xdp_link_attach`,
//! `bpf_xdp_link_update`, `bpf_xdp_link_detach`): the attachment is the netdev data
//! plane's (AF_XDP + the kernel stub); the link object owns it and detaches it when
//! its last holder goes. Other attach types: EINVAL as a kernel that cannot attach
//! that program there.
//! attr (create): prog_fd 0, target_ifindex 4, attach_type 8, flags 12.
//! attr (update): link_fd 0, new_prog_fd 4, flags 8, old_prog_fd 12.
//!
//! The device's emulated XDP state (`daemon.nl.devs`, keyed by (netns inode,
//! ifindex)) is shared with the netlink path, so the two exclude each other as in
//! `dev_xdp_attach` (net/core/dev.c): an active link in the mode -> EBUSY, a
//! netlink program in the mode -> EBUSY, the other mode in use -> EEXIST. The
//! interface is resolved in the calling thread's network namespace (dev_get_by_index
//! in current's netns; unknown -> EINVAL as the kernel).
//! Checked against the kernel by tests/tests/attach_errno.rs.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bpftime_netdev::{AttachSpec, XdpMode};

use super::prog_load::prog_type;
use super::Attr;
use crate::call::{cap, Call, Reply};
use crate::netlink::{self, DriverXdp, FdSocket, Slot};
use crate::registry::{Body, Kind, LinkObj, Object};
use crate::sys::memfd;

/// `BPF_XDP` attach type.
pub const BPF_XDP: u32 = 37;
/// `BPF_LINK_TYPE_XDP`.
pub const LINK_TYPE_XDP: u32 = 6;
const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;
const XDP_FLAGS_HW_MODE: u32 = 8;
const XDP_FLAGS_MODES: u32 = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE;
const BPF_F_REPLACE: u32 = 4;

fn vm_program(d: &crate::daemon::Daemon, prog: &Object) -> Arc<dyn bpftime_netdev::XdpProgram> {
    d.dataplane_program(prog.as_prog().unwrap().prog.vm.clone())
}

/// Whether `ifindex` exists in the network namespace at `netns`, and what its driver
/// offers (ETHTOOL_GDRVINFO through a socket made in that namespace).
fn device_in(netns: &Path, ifindex: u32) -> Result<DriverXdp, i32> {
    let sock = FdSocket::new(crate::sys::netns::socket_in(netns)?);
    sock.ifname_of(ifindex).map_err(|_| libc::EINVAL)?;
    let drv = sock.driver_of(ifindex).unwrap_or_default();
    Ok(DriverXdp::for_driver(&drv))
}

/// Links on the device whose last fd was closed (close() is not intercepted) and that
/// no pin holds: the kernel has released them already, bpftime's collection would
/// only at its next run. Release them now, so that re-attaching right after closing
/// the old link does not meet EBUSY. (Handlers run under the GC lock's shared side,
/// so this checks only these links instead of running a collection.)
fn reap_closed_links(call: &Call<'_>, ns: u64, ifindex: u32) {
    let d = call.daemon;
    let busy =
        d.nl.devs
            .lock()
            .unwrap()
            .get(&(ns, ifindex))
            .is_some_and(|dev| [dev.xdp.skb, dev.xdp.drv].iter().flatten().any(|s| s.link));
    if !busy {
        return;
    }
    let links: Vec<Arc<Object>> = {
        let reg = d.registry.lock().unwrap();
        reg.all(Kind::Link)
            .filter(|o| {
                let l = o.as_link().unwrap();
                l.netns_ino == ns
                    && l.ifindex.load(Ordering::Relaxed) == ifindex
                    && l.attachment.lock().unwrap().is_some()
                    && !reg.is_held(o)
            })
            .cloned()
            .collect()
    };
    for o in links {
        let wanted = std::collections::HashSet::from([o.key]);
        if crate::registry::scan_live_keys(std::process::id(), &wanted).is_empty() {
            call.trace(|| format!("  link {} has no holder left: released", o.id));
            d.link_released(&o);
        }
    }
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
        call.trace(|| {
            format!(
                "  LINK_CREATE: attach type {attach_type} for prog type {}: EINVAL",
                p.prog.prog_type
            )
        });
        return Err(libc::EINVAL);
    }
    if a.b[16..64].iter().any(|&b| b != 0) {
        return Err(libc::EINVAL);
    }
    let creds = call.creds()?;
    if !creds.has(cap::NET_ADMIN) {
        return Err(libc::EPERM);
    }
    // bpf_xdp_link_attach: only mode flags; then the device (in current's netns).
    let flags = a.u32(12);
    if flags & !XDP_FLAGS_MODES != 0 {
        return Err(libc::EINVAL);
    }
    let ifindex = a.u32(4);
    let netns = call.proc_path("ns/net");
    let ns = crate::nl::netns_ino(call)?;
    let driver = device_in(&netns, ifindex)?;
    if !call.valid() {
        return Err(libc::EINTR);
    }
    reap_closed_links(call, ns, ifindex);
    // dev_xdp_attach(dev, extack, link, NULL, NULL, flags), under the device state
    // lock so that a netlink attach cannot slip in between.
    let mut devs = call.daemon.nl.devs.lock().unwrap();
    let dev = devs.entry((ns, ifindex)).or_default();
    if (flags & XDP_FLAGS_MODES).count_ones() > 1 {
        return Err(libc::EINVAL);
    }
    if flags & XDP_FLAGS_MODES == 0 && dev.xdp.count() > 1 {
        return Err(libc::EINVAL);
    }
    let mode = netlink::xdp::dev_xdp_mode(flags, driver);
    let cur = dev.xdp.get(mode);
    if cur.is_some() {
        // "Can't replace active BPF XDP link" / "... XDP program with BPF link".
        return Err(libc::EBUSY);
    }
    if netlink::probe::native_check() == netlink::NativeCheck::BeforeProgChecks
        && netlink::NativeCheck::refuses(mode, driver, true).is_some()
    {
        return Err(libc::EOPNOTSUPP);
    }
    let other = if mode == netlink::XdpMode::Skb {
        netlink::XdpMode::Drv
    } else {
        netlink::XdpMode::Skb
    };
    if mode != netlink::XdpMode::Hw && dev.xdp.get(other).is_some() {
        return Err(libc::EEXIST);
    }
    let dp_mode = match mode {
        netlink::XdpMode::Skb => XdpMode::Skb,
        netlink::XdpMode::Drv if driver.native => XdpMode::Drv,
        netlink::XdpMode::Drv => return Err(libc::EOPNOTSUPP),
        // No offload here; drivers without it answer EINVAL (veth_xdp).
        netlink::XdpMode::Hw if driver.offload => return Err(libc::EOPNOTSUPP),
        netlink::XdpMode::Hw => return Err(libc::EINVAL),
    };
    let spec = AttachSpec {
        netns: Some(netns),
        ifindex,
        mode: dp_mode,
        program: vm_program(call.daemon, &prog),
        queues: None,
        cpu_pinning: false,
    };
    let id = call.daemon.dataplane.attach(spec).map_err(|e| {
        call.trace(|| format!("  LINK_CREATE: {dp_mode:?} attach to ifindex {ifindex}: {e}"));
        e.errno()
    })?;
    let drv = dp_mode == XdpMode::Drv;
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
        netns_ino: ns,
        drv,
    });
    let r = call
        .daemon
        .registry
        .lock()
        .unwrap()
        .insert(Kind::Link, handle, body, creds.uid);
    match r {
        Ok(obj) => {
            *dev.xdp.get_mut(mode) = Some(Slot {
                prog_id: prog.id,
                link: true,
            });
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
        // link_update: flags, the link, the new program, then the old one.
        let flags = a.u32(8);
        if flags & !BPF_F_REPLACE != 0 {
            return Err(libc::EINVAL);
        }
        let link = call.object(a.i32(0), Kind::Link, libc::EINVAL)?;
        let new = call.object(a.i32(4), Kind::Prog, libc::EINVAL)?;
        if flags & BPF_F_REPLACE == 0 && a.u32(12) != 0 {
            return Err(libc::EINVAL);
        }
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
        let Some(id) = att else {
            return Err(libc::ENOLINK);
        };
        call.daemon
            .dataplane
            .replace(id, vm_program(call.daemon, &new))
            .map_err(|e| e.errno())?;
        // What netlink queries report follows the link's program.
        let ifindex = l.ifindex.load(Ordering::Relaxed);
        if let Some(dev) = call
            .daemon
            .nl
            .devs
            .lock()
            .unwrap()
            .get_mut(&(l.netns_ino, ifindex))
        {
            let slot = if l.drv {
                &mut dev.xdp.drv
            } else {
                &mut dev.xdp.skb
            };
            if let Some(s) = slot.as_mut().filter(|s| s.link) {
                s.prog_id = new.id;
            }
        }
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
                crate::nl::link_detached(
                    &call.daemon.nl,
                    l.netns_ino,
                    l.ifindex.load(Ordering::Relaxed),
                    l.drv,
                );
            }
            l.ifindex.store(0, Ordering::Relaxed);
            Reply::Value(0)
        }
        Err(e) => Reply::Errno(e),
    }
}

/// Who holds each data plane attachment, for `bpftime status`: attachment id ->
/// {holder ("link" or "netlink"), link_id, prog_id, netns_ino}.
pub fn attachment_owners(
    d: &crate::daemon::Daemon,
) -> std::collections::HashMap<u64, serde_json::Value> {
    let mut m = std::collections::HashMap::new();
    for ((ns, _), dev) in d.nl.devs.lock().unwrap().iter() {
        for (id, prog) in dev.atts.values() {
            m.insert(
                id.0,
                serde_json::json!({"holder": "netlink", "prog_id": prog.id, "netns_ino": ns}),
            );
        }
    }
    let reg = d.registry.lock().unwrap();
    for o in reg.all(Kind::Link) {
        let Some(l) = o.as_link() else { continue };
        if let Some(id) = *l.attachment.lock().unwrap() {
            m.insert(
                id.0,
                serde_json::json!({"holder": "link", "link_id": o.id,
                    "prog_id": l.prog.lock().unwrap().id, "netns_ino": l.netns_ino}),
            );
        }
    }
    m
}
