//! Kernel builds that order `dev_xdp_attach`'s checks differently, told apart once per
//! daemon by asking the running kernel (as libbpf probes features), never assumed.
//!
//! The one difference seen so far: where a DRV/HW attach on a device without `ndo_bpf`
//! (a bridge, lo, dummy) is refused with EOPNOTSUPP "Underlying driver does not support
//! XDP in native mode". net/core/dev.c as published checks it only when it is about to
//! call the driver, after the new-program checks (UPDATE_IF_NOEXIST -> EBUSY, the other
//! mode in use -> EEXIST, DEVMAP/CPUMAP programs -> EINVAL). The 6.18.44 kernel this
//! project runs on refuses before those checks (and after the REPLACE check): a bridge
//! with a generic program answers a native attach with EOPNOTSUPP, not EEXIST.
//!
//! The probe: a native attach of a `BPF_XDP_DEVMAP` program to `lo` (ifindex 1 in every
//! network namespace; loopback has no `ndo_bpf`). It is refused in either order, so it
//! changes nothing: EOPNOTSUPP means the early check, EINVAL (the DEVMAP refusal) the
//! published order.

use std::sync::OnceLock;

use super::msg::{
    put_attr, IfInfoMsg, NlMsgHdr, IFLA_XDP, IFLA_XDP_FD, IFLA_XDP_FLAGS, RTM_SETLINK,
};
use super::reply::parse_error;
use super::session::KernelSocket;
use super::sock::FdSocket;
use super::xdp::{NativeCheck, BPF_XDP_DEVMAP, XDP_FLAGS_DRV_MODE};

/// What the running kernel does, probed on first use. A probe that cannot run (no
/// privilege, no BPF) falls back to the published order, and says so in the log.
pub fn native_check() -> NativeCheck {
    static ORDER: OnceLock<NativeCheck> = OnceLock::new();
    *ORDER.get_or_init(|| match probe() {
        Ok(order) => {
            tracing::debug!(?order, "probed dev_xdp_attach's native-mode check");
            order
        }
        Err(e) => {
            tracing::warn!(
                "cannot probe dev_xdp_attach's order of checks ({e}); using net/core/dev.c's"
            );
            NativeCheck::AtInstall
        }
    })
}

fn probe() -> Result<NativeCheck, String> {
    // r0 = XDP_PASS; exit
    let insns: [u64; 2] = [0x0000_0002_0000_00b7, 0x0000_0000_0000_0095];
    let prog = bpftime_netdev::prog_load_xdp_as(&insns, "bpftime_probe", BPF_XDP_DEVMAP)
        .map_err(|e| format!("loading the probe program: {e}"))?;
    let mut sock = FdSocket::open_route().map_err(|e| format!("netlink socket: errno {e}"))?;
    let msg = setlink_xdp(
        1,
        std::os::fd::AsRawFd::as_raw_fd(&prog),
        XDP_FLAGS_DRV_MODE,
    );
    sock.send(&msg)
        .map_err(|e| format!("netlink send: errno {e}"))?;
    let d = sock
        .recv(true)
        .map_err(|e| format!("netlink recv: errno {e}"))?
        .ok_or("no netlink answer")?;
    let errno = parse_error(&d.data).ok_or("no NLMSG_ERROR answer")?.errno;
    match errno {
        libc::EOPNOTSUPP => Ok(NativeCheck::BeforeProgChecks),
        libc::EINVAL => Ok(NativeCheck::AtInstall),
        e => Err(format!("unexpected answer errno {e}")),
    }
}

/// RTM_SETLINK { ifinfomsg(ifindex), IFLA_XDP { FD, FLAGS } } with NLM_F_REQUEST|ACK.
fn setlink_xdp(ifindex: u32, fd: i32, flags: u32) -> Vec<u8> {
    let mut nest = Vec::new();
    put_attr(&mut nest, IFLA_XDP_FD, &fd.to_ne_bytes());
    put_attr(&mut nest, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    let mut body = IfInfoMsg {
        index: ifindex as i32,
        ..IfInfoMsg::default()
    }
    .to_bytes()
    .to_vec();
    put_attr(&mut body, IFLA_XDP | libc::NLA_F_NESTED as u16, &nest);
    let hdr = NlMsgHdr {
        len: (16 + body.len()) as u32,
        ty: RTM_SETLINK,
        flags: (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        seq: 1,
        pid: 0,
    };
    let mut out = hdr.to_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}
