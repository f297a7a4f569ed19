//! The XDP attach state machine of a device: what `do_setlink` (net/core/rtnetlink.c,
//! the IFLA_XDP part), `dev_change_xdp_fd` and `dev_xdp_attach` (net/core/dev.c) decide,
//! with the kernel's errnos and extended-ack messages, in the kernel's order of checks.
//!
//! Pure logic: the device's current attachments and the request go in, a decision comes
//! out ([`XdpChange`] to commit, or [`XdpError`]). Program fds are resolved through a
//! closure the supervisor provides (fd in the caller's table -> [`ProgHandle`]).

use super::msg::XdpNest;

/// `XDP_FLAGS_UPDATE_IF_NOEXIST`.
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
/// `XDP_FLAGS_SKB_MODE` (generic).
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE` (native).
pub const XDP_FLAGS_DRV_MODE: u32 = 4;
/// `XDP_FLAGS_HW_MODE` (offload).
pub const XDP_FLAGS_HW_MODE: u32 = 8;
/// `XDP_FLAGS_REPLACE`.
pub const XDP_FLAGS_REPLACE: u32 = 16;
/// `XDP_FLAGS_MODES`.
pub const XDP_FLAGS_MODES: u32 = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE;
/// `XDP_FLAGS_MASK`.
pub const XDP_FLAGS_MASK: u32 = XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_MODES | XDP_FLAGS_REPLACE;

/// `BPF_PROG_TYPE_XDP`.
pub const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP_DEVMAP` expected attach type.
pub const BPF_XDP_DEVMAP: u32 = 33;
/// `BPF_XDP_CPUMAP` expected attach type.
pub const BPF_XDP_CPUMAP: u32 = 35;

/// Extack messages of dev.c, verbatim (checked against the running kernel by
/// tests/tests/netlink_xdp.rs).
pub mod extack {
    /// dev_xdp_attach, several mode bits (only reachable with a bpf_link; netlink is
    /// refused earlier by do_setlink without a message).
    pub const ONE_MODE: &str = "Only one XDP mode flag can be set";
    /// dev_xdp_attach, no mode and programs in several modes.
    pub const AMBIGUOUS: &str = "More than one program loaded, unset mode is ambiguous";
    /// dev_xdp_attach, old_prog without REPLACE.
    pub const NO_REPLACE: &str = "XDP_FLAGS_REPLACE is not specified";
    /// dev_xdp_attach, a bpf_link holds the mode.
    pub const LINK_ACTIVE: &str = "Can't replace active BPF XDP link";
    /// dev_xdp_attach, REPLACE and the current program differs.
    pub const NOT_EXPECTED: &str = "Active program does not match expected";
    /// dev_xdp_attach, UPDATE_IF_NOEXIST and a program is attached.
    pub const ALREADY: &str = "XDP program already attached";
    /// dev_xdp_attach, the other of SKB/DRV is in use.
    pub const NATIVE_AND_GENERIC: &str = "Native and generic XDP can't be active at the same time";
    /// dev_xdp_attach, DEVMAP program.
    pub const DEVMAP_PROG: &str = "BPF_XDP_DEVMAP programs can not be attached to a device";
    /// dev_xdp_attach, CPUMAP program.
    pub const CPUMAP_PROG: &str = "BPF_XDP_CPUMAP programs can not be attached to a device";
    /// dev_xdp_attach, no ndo_bpf.
    pub const NO_NATIVE: &str = "Underlying driver does not support XDP in native mode";
}

/// An XDP attach mode (`enum bpf_xdp_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XdpMode {
    /// Generic (skb) XDP.
    Skb,
    /// Native (driver) XDP.
    Drv,
    /// Offloaded XDP.
    Hw,
}

impl XdpMode {
    /// The `XDP_FLAGS_*_MODE` bit of this mode.
    pub fn flag(self) -> u32 {
        match self {
            XdpMode::Skb => XDP_FLAGS_SKB_MODE,
            XdpMode::Drv => XDP_FLAGS_DRV_MODE,
            XdpMode::Hw => XDP_FLAGS_HW_MODE,
        }
    }

    /// The `XDP_ATTACHED_*` value reporting only this mode.
    pub fn attached(self) -> u8 {
        match self {
            XdpMode::Drv => 1,
            XdpMode::Skb => 2,
            XdpMode::Hw => 3,
        }
    }
}

/// What the supervisor knows of a program a fd refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgHandle {
    /// Program id (as bpf_prog_info.id; identity for "same program").
    pub id: u32,
    /// prog_type (`BPF_PROG_TYPE_XDP` = 6 is required).
    pub prog_type: u32,
    /// expected_attach_type at load (DEVMAP/CPUMAP programs are refused).
    pub expected_attach_type: u32,
}

impl ProgHandle {
    /// Whether `bpf_prog_get_type_dev(fd, BPF_PROG_TYPE_XDP, ...)` accepts it.
    pub fn is_xdp(&self) -> bool {
        self.prog_type == BPF_PROG_TYPE_XDP
    }
}

/// The program of one mode of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Program id.
    pub prog_id: u32,
    /// Whether a bpf_link holds it (then netlink cannot change this mode: EBUSY).
    pub link: bool,
}

/// The XDP programs of a device, one per mode (`dev->xdp_state[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DevXdpState {
    /// Generic mode.
    pub skb: Option<Slot>,
    /// Native mode.
    pub drv: Option<Slot>,
    /// Offload mode.
    pub hw: Option<Slot>,
}

impl DevXdpState {
    /// The slot of `mode`.
    pub fn get(&self, mode: XdpMode) -> Option<Slot> {
        match mode {
            XdpMode::Skb => self.skb,
            XdpMode::Drv => self.drv,
            XdpMode::Hw => self.hw,
        }
    }

    /// The slot of `mode`, mutable.
    pub fn get_mut(&mut self, mode: XdpMode) -> &mut Option<Slot> {
        match mode {
            XdpMode::Skb => &mut self.skb,
            XdpMode::Drv => &mut self.drv,
            XdpMode::Hw => &mut self.hw,
        }
    }

    /// `dev_xdp_prog_count`.
    pub fn count(&self) -> usize {
        [self.skb, self.drv, self.hw]
            .iter()
            .filter(|s| s.is_some())
            .count()
    }

    /// What RTM_GETLINK reports for this state.
    pub fn attach_info(&self) -> XdpAttachInfo {
        XdpAttachInfo {
            skb: self.skb.map(|s| s.prog_id),
            drv: self.drv.map(|s| s.prog_id),
            hw: self.hw.map(|s| s.prog_id),
        }
    }
}

/// Program ids per mode, as reported in the IFLA_XDP nest of RTM_NEWLINK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpAttachInfo {
    /// IFLA_XDP_SKB_PROG_ID.
    pub skb: Option<u32>,
    /// IFLA_XDP_DRV_PROG_ID.
    pub drv: Option<u32>,
    /// IFLA_XDP_HW_PROG_ID.
    pub hw: Option<u32>,
}

/// What the device's driver offers (the kernel looks at `ndo_bpf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverXdp {
    /// The driver has `ndo_bpf` (native XDP): veth, virtio_net, tun, most NIC drivers.
    /// No mode flag then means DRV, else SKB.
    pub native: bool,
    /// The driver accepts `XDP_SETUP_PROG_HW` (netdevsim, nfp). veth does not: EINVAL.
    pub offload: bool,
}

impl DriverXdp {
    /// veth's answer.
    pub const VETH: DriverXdp = DriverXdp {
        native: true,
        offload: false,
    };
    /// A device without ndo_bpf (lo, dummy, bridge...).
    pub const GENERIC_ONLY: DriverXdp = DriverXdp {
        native: false,
        offload: false,
    };

    /// A heuristic (the kernel's truth is whether the driver has `ndo_bpf`, which
    /// userspace cannot read): what a driver (ethtool's driver name, see
    /// `FdSocket::driver_of`) offers. Listed: in-tree drivers implementing `ndo_bpf`
    /// (Linux 6.x); netdevsim and nfp also offload. Any other driver is taken as
    /// generic-only (the kernel's answer for such a device: DRV mode -> EOPNOTSUPP, no
    /// mode -> SKB).
    pub fn for_driver(driver: &str) -> DriverXdp {
        const NATIVE: &[&str] = &[
            "veth",
            "virtio_net",
            "tun",
            "bonding",
            "netdevsim",
            "nfp",
            "ixgbe",
            "ixgbevf",
            "i40e",
            "ice",
            "igb",
            "igc",
            "mlx4_en",
            "mlx5_core",
            "bnxt_en",
            "qede",
            "ena",
            "gve",
            "mana",
            "hv_netvsc",
            "vif",
            "xen-netfront",
            "nicvf",
            "mvneta",
            "mvpp2",
            "fsl_dpaa2_eth",
            "dpaa2-eth",
            "fsl_dpaa_eth",
            "fsl_enetc",
            "fec",
            "st_gmac",
            "stmmaceth",
            "sfc",
            "sfc_siena",
            "tsnep",
            "am65-cpsw-nuss",
            "cpsw",
            "cpsw-switch",
            "rvu_nicpf",
            "rvu_nicvf",
            "lan966x-switch",
            "mtk_soc_eth",
        ];
        DriverXdp {
            native: NATIVE.contains(&driver),
            offload: matches!(driver, "netdevsim" | "nfp"),
        }
    }
}

/// The extack message a driver sets when it refuses a native attach with `errno`, for
/// refusals the data plane learns without a message (bpf(LINK_CREATE) carries none).
/// veth's (drivers/net/veth.c, veth_xdp_set; NL_SET_ERR_MSG_MOD adds "veth: ").
pub fn driver_extack(driver: &str, errno: i32) -> Option<&'static str> {
    match (driver, errno) {
        ("veth", libc::ERANGE) => Some("veth: Peer MTU is too large to set XDP"),
        ("veth", libc::ENOTCONN) => Some("veth: Cannot set XDP when peer is detached"),
        ("veth", libc::ENOSPC) => {
            Some("veth: XDP expects number of rx queues not less than peer tx queues")
        }
        _ => None,
    }
}

/// Where `dev_xdp_attach` refuses a DRV/HW program for a device without `ndo_bpf`
/// (EOPNOTSUPP, [`extack::NO_NATIVE`]). Kernel builds differ; [`super::probe`] asks the
/// running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeCheck {
    /// Right after the REPLACE check, before the new-program checks (NOEXIST, the other
    /// mode in use, DEVMAP/CPUMAP programs). Seen on 6.18.44.
    BeforeProgChecks,
    /// When the driver is about to be called, after every other check: net/core/dev.c
    /// as published.
    AtInstall,
}

impl NativeCheck {
    /// The refusal, if `mode` needs `ndo_bpf`, the driver has none and a program is to be
    /// installed.
    pub fn refuses(mode: XdpMode, driver: DriverXdp, installs: bool) -> Option<XdpError> {
        (installs && mode != XdpMode::Skb && !driver.native)
            .then_some(XdpError::with(libc::EOPNOTSUPP, extack::NO_NATIVE))
    }
}

/// A validated legacy attach request: the arguments of `dev_change_xdp_fd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpRequest {
    /// IFLA_XDP_FD (negative: detach).
    pub fd: i32,
    /// IFLA_XDP_FLAGS.
    pub flags: u32,
    /// IFLA_XDP_EXPECTED_FD when REPLACE is set, else -1.
    pub expected_fd: i32,
}

/// A refusal: errno (positive) and the extended-ack message, if the kernel sets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("XDP attach refused: errno {errno} ({})", msg.unwrap_or("no message"))]
pub struct XdpError {
    /// Positive errno.
    pub errno: i32,
    /// NL_SET_ERR_MSG text.
    pub msg: Option<&'static str>,
}

impl XdpError {
    /// An error without extack message.
    pub const fn bare(errno: i32) -> Self {
        Self { errno, msg: None }
    }

    /// An error with extack message.
    pub const fn with(errno: i32, msg: &'static str) -> Self {
        Self {
            errno,
            msg: Some(msg),
        }
    }
}

/// The outcome of `do_setlink`'s IFLA_XDP checks before `dev_change_xdp_fd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestOutcome {
    /// No IFLA_XDP_FD: the kernel changes nothing (success).
    Nothing,
    /// `dev_change_xdp_fd` is called with this.
    Change(XdpRequest),
}

/// The checks `do_setlink` makes on the parsed nest (no extack messages there).
pub fn validate_nest(n: &XdpNest) -> Result<NestOutcome, XdpError> {
    if n.attached || n.prog_id {
        return Err(XdpError::bare(libc::EINVAL));
    }
    let flags = n.flags.unwrap_or(0);
    if flags & !XDP_FLAGS_MASK != 0 || (flags & XDP_FLAGS_MODES).count_ones() > 1 {
        return Err(XdpError::bare(libc::EINVAL));
    }
    let Some(fd) = n.fd else {
        return Ok(NestOutcome::Nothing);
    };
    let expected_fd = if flags & XDP_FLAGS_REPLACE != 0 {
        n.expected_fd.ok_or(XdpError::bare(libc::EINVAL))?
    } else {
        -1
    };
    Ok(NestOutcome::Change(XdpRequest {
        fd,
        flags,
        expected_fd,
    }))
}

/// `dev_xdp_mode`.
pub fn dev_xdp_mode(flags: u32, driver: DriverXdp) -> XdpMode {
    if flags & XDP_FLAGS_HW_MODE != 0 {
        XdpMode::Hw
    } else if flags & XDP_FLAGS_DRV_MODE != 0 {
        XdpMode::Drv
    } else if flags & XDP_FLAGS_SKB_MODE != 0 {
        XdpMode::Skb
    } else if driver.native {
        XdpMode::Drv
    } else {
        XdpMode::Skb
    }
}

/// A decided change, to commit with [`DevXdpState::apply`] once the data plane took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpChange {
    /// The mode changed.
    pub mode: XdpMode,
    /// The new program (None: detach).
    pub new: Option<ProgHandle>,
    /// The program it replaces.
    pub old: Option<u32>,
    /// Whether the effective program changes (the kernel calls the driver only then).
    pub changed: bool,
}

impl DevXdpState {
    /// Commits a decided change (`dev_xdp_set_prog`).
    pub fn apply(&mut self, c: &XdpChange) {
        *self.get_mut(c.mode) = c.new.map(|p| Slot {
            prog_id: p.id,
            link: false,
        });
    }
}

/// `dev_change_xdp_fd` + `dev_xdp_attach` for a netlink request (no link).
///
/// `resolve` maps a fd of the caller to its program: `Err(EBADF)` for a closed fd,
/// `Err(EINVAL)` for a fd that is not a BPF program (what `bpf_prog_get` answers).
pub fn change_xdp_fd(
    dev: &DevXdpState,
    driver: DriverXdp,
    order: NativeCheck,
    req: &XdpRequest,
    resolve: &mut dyn FnMut(i32) -> Result<ProgHandle, i32>,
) -> Result<XdpChange, XdpError> {
    let flags = req.flags;
    let mode = dev_xdp_mode(flags, driver);
    // bpf_prog_get_type_dev(fd, BPF_PROG_TYPE_XDP, ...) for fd, then expected_fd.
    let get = |resolve: &mut dyn FnMut(i32) -> Result<ProgHandle, i32>, fd: i32| {
        let p = resolve(fd).map_err(XdpError::bare)?;
        if !p.is_xdp() {
            return Err(XdpError::bare(libc::EINVAL));
        }
        Ok(p)
    };
    let new = if req.fd >= 0 {
        Some(get(resolve, req.fd)?)
    } else {
        None
    };
    let old = if req.expected_fd >= 0 {
        Some(get(resolve, req.expected_fd)?)
    } else {
        None
    };

    // dev_xdp_attach(dev, extack, NULL, new_prog, old_prog, flags)
    let num_modes = (flags & XDP_FLAGS_MODES).count_ones();
    if num_modes > 1 {
        return Err(XdpError::with(libc::EINVAL, extack::ONE_MODE));
    }
    if num_modes == 0 && dev.count() > 1 {
        return Err(XdpError::with(libc::EINVAL, extack::AMBIGUOUS));
    }
    if old.is_some() && flags & XDP_FLAGS_REPLACE == 0 {
        return Err(XdpError::with(libc::EINVAL, extack::NO_REPLACE));
    }
    let cur = dev.get(mode);
    if cur.is_some_and(|s| s.link) {
        return Err(XdpError::with(libc::EBUSY, extack::LINK_ACTIVE));
    }
    // (upper devices holding a program: not modelled, see mod.rs gaps)
    let cur_id = cur.map(|s| s.prog_id);
    if flags & XDP_FLAGS_REPLACE != 0 && cur_id != old.map(|p| p.id) {
        return Err(XdpError::with(libc::EEXIST, extack::NOT_EXPECTED));
    }
    let new_id = new.map(|p| p.id);
    let changed = new_id != cur_id;
    if order == NativeCheck::BeforeProgChecks {
        if let Some(e) = NativeCheck::refuses(mode, driver, changed) {
            return Err(e);
        }
    }
    if let Some(p) = new {
        let offload = mode == XdpMode::Hw;
        let other = if mode == XdpMode::Skb {
            XdpMode::Drv
        } else {
            XdpMode::Skb
        };
        if flags & XDP_FLAGS_UPDATE_IF_NOEXIST != 0 && cur.is_some() {
            return Err(XdpError::with(libc::EBUSY, extack::ALREADY));
        }
        if !offload && dev.get(other).is_some() {
            return Err(XdpError::with(libc::EEXIST, extack::NATIVE_AND_GENERIC));
        }
        if p.expected_attach_type == BPF_XDP_DEVMAP {
            return Err(XdpError::with(libc::EINVAL, extack::DEVMAP_PROG));
        }
        if p.expected_attach_type == BPF_XDP_CPUMAP {
            return Err(XdpError::with(libc::EINVAL, extack::CPUMAP_PROG));
        }
    }
    if changed {
        // dev_xdp_bpf_op: generic_xdp_install for SKB, ndo_bpf for DRV/HW.
        if let Some(e) = NativeCheck::refuses(mode, driver, true) {
            return Err(e);
        }
        // veth_xdp() and most drivers answer EINVAL to XDP_SETUP_PROG_HW.
        if mode == XdpMode::Hw && !driver.offload {
            return Err(XdpError::bare(libc::EINVAL));
        }
    }
    Ok(XdpChange {
        mode,
        new,
        old: cur_id,
        changed,
    })
}

/// The whole IFLA_XDP handling of `do_setlink` for one parsed nest: validation, then
/// `dev_change_xdp_fd`. `Ok(None)` when nothing is to change (no IFLA_XDP_FD).
pub fn decide(
    nest: &XdpNest,
    dev: &DevXdpState,
    driver: DriverXdp,
    order: NativeCheck,
    resolve: &mut dyn FnMut(i32) -> Result<ProgHandle, i32>,
) -> Result<Option<XdpChange>, XdpError> {
    match validate_nest(nest)? {
        NestOutcome::Nothing => Ok(None),
        NestOutcome::Change(req) => change_xdp_fd(dev, driver, order, &req, resolve).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: ProgHandle = ProgHandle {
        id: 11,
        prog_type: BPF_PROG_TYPE_XDP,
        expected_attach_type: 37,
    };
    const P2: ProgHandle = ProgHandle {
        id: 12,
        prog_type: BPF_PROG_TYPE_XDP,
        expected_attach_type: 37,
    };
    const SOCK: ProgHandle = ProgHandle {
        id: 13,
        prog_type: 1,
        expected_attach_type: 0,
    };

    fn res(fd: i32) -> Result<ProgHandle, i32> {
        match fd {
            3 => Ok(P1),
            4 => Ok(P2),
            5 => Ok(SOCK),
            6 => Err(libc::EINVAL), // not a prog
            _ => Err(libc::EBADF),
        }
    }

    fn run(dev: &DevXdpState, fd: i32, flags: u32, exp: i32) -> Result<XdpChange, XdpError> {
        change_xdp_fd(
            dev,
            DriverXdp::VETH,
            NativeCheck::AtInstall,
            &XdpRequest {
                fd,
                flags,
                expected_fd: exp,
            },
            &mut res,
        )
    }

    fn with(mode: XdpMode, id: u32, link: bool) -> DevXdpState {
        let mut d = DevXdpState::default();
        *d.get_mut(mode) = Some(Slot { prog_id: id, link });
        d
    }

    #[test]
    fn errno_table() {
        let empty = DevXdpState::default();
        let drv1 = with(XdpMode::Drv, 11, false);
        // Attach, default mode on veth is DRV.
        let c = run(&empty, 3, 0, -1).unwrap();
        assert_eq!((c.mode, c.changed), (XdpMode::Drv, true));
        assert_eq!(
            run(&empty, 3, XDP_FLAGS_SKB_MODE, -1).unwrap().mode,
            XdpMode::Skb
        );
        let c = change_xdp_fd(
            &empty,
            DriverXdp::GENERIC_ONLY,
            NativeCheck::BeforeProgChecks,
            &XdpRequest {
                fd: 3,
                flags: 0,
                expected_fd: -1,
            },
            &mut res,
        )
        .unwrap();
        assert_eq!(c.mode, XdpMode::Skb);
        // Bad fds.
        assert_eq!(
            run(&empty, 9, 0, -1).unwrap_err(),
            XdpError::bare(libc::EBADF)
        );
        assert_eq!(
            run(&empty, 6, 0, -1).unwrap_err(),
            XdpError::bare(libc::EINVAL)
        );
        assert_eq!(
            run(&empty, 5, 0, -1).unwrap_err(),
            XdpError::bare(libc::EINVAL)
        );
        // NOEXIST.
        assert_eq!(
            run(&drv1, 4, 1, -1).unwrap_err(),
            XdpError::with(libc::EBUSY, extack::ALREADY)
        );
        assert_eq!(
            run(&drv1, 3, 1, -1).unwrap_err(),
            XdpError::with(libc::EBUSY, extack::ALREADY)
        );
        assert!(run(&empty, 3, 1, -1).is_ok());
        // Replace without NOEXIST.
        let c = run(&drv1, 4, 0, -1).unwrap();
        assert_eq!((c.old, c.new.map(|p| p.id)), (Some(11), Some(12)));
        // Same program again: no driver call.
        assert!(!run(&drv1, 3, 0, -1).unwrap().changed);
        // Other mode in use.
        assert_eq!(
            run(&drv1, 4, XDP_FLAGS_SKB_MODE, -1).unwrap_err(),
            XdpError::with(libc::EEXIST, extack::NATIVE_AND_GENERIC)
        );
        // REPLACE.
        assert!(run(&drv1, 4, XDP_FLAGS_REPLACE, 3).is_ok());
        assert_eq!(
            run(&drv1, 4, XDP_FLAGS_REPLACE, 4).unwrap_err(),
            XdpError::with(libc::EEXIST, extack::NOT_EXPECTED)
        );
        assert_eq!(
            run(&drv1, 4, XDP_FLAGS_REPLACE, -1).unwrap_err(),
            XdpError::with(libc::EEXIST, extack::NOT_EXPECTED)
        );
        assert!(run(&empty, 4, XDP_FLAGS_REPLACE, -1).is_ok());
        assert_eq!(
            run(&empty, 4, XDP_FLAGS_REPLACE, 9).unwrap_err(),
            XdpError::bare(libc::EBADF)
        );
        // Links.
        let link = with(XdpMode::Drv, 11, true);
        assert_eq!(
            run(&link, 4, 0, -1).unwrap_err(),
            XdpError::with(libc::EBUSY, extack::LINK_ACTIVE)
        );
        assert_eq!(
            run(&link, -1, 0, -1).unwrap_err(),
            XdpError::with(libc::EBUSY, extack::LINK_ACTIVE)
        );
        assert_eq!(
            run(&link, 4, XDP_FLAGS_SKB_MODE, -1).unwrap_err(),
            XdpError::with(libc::EEXIST, extack::NATIVE_AND_GENERIC)
        );
        // Detach.
        assert!(!run(&empty, -1, 0, -1).unwrap().changed);
        let c = run(&drv1, -1, 0, -1).unwrap();
        assert!(c.changed && c.new.is_none());
        assert!(!run(&drv1, -1, XDP_FLAGS_SKB_MODE, -1).unwrap().changed);
        // HW on veth.
        assert_eq!(
            run(&empty, 3, XDP_FLAGS_HW_MODE, -1).unwrap_err(),
            XdpError::bare(libc::EINVAL)
        );
        assert!(!run(&empty, -1, XDP_FLAGS_HW_MODE, -1).unwrap().changed);
        // DRV without ndo_bpf, in both orders of checks.
        let generic = |dev: &DevXdpState, order, fd, flags| {
            change_xdp_fd(
                dev,
                DriverXdp::GENERIC_ONLY,
                order,
                &XdpRequest {
                    fd,
                    flags,
                    expected_fd: -1,
                },
                &mut res,
            )
        };
        let no_native = XdpError::with(libc::EOPNOTSUPP, extack::NO_NATIVE);
        let skb1 = with(XdpMode::Skb, 11, false);
        for order in [NativeCheck::BeforeProgChecks, NativeCheck::AtInstall] {
            let e = generic(&empty, order, 3, XDP_FLAGS_DRV_MODE).unwrap_err();
            assert_eq!(e, no_native);
            // Detaching what is not there calls no driver.
            assert!(
                !generic(&skb1, order, -1, XDP_FLAGS_DRV_MODE)
                    .unwrap()
                    .changed
            );
        }
        // With a generic program attached, the orders differ.
        let early = generic(&skb1, NativeCheck::BeforeProgChecks, 4, XDP_FLAGS_DRV_MODE);
        assert_eq!(early.unwrap_err(), no_native);
        let late = generic(&skb1, NativeCheck::AtInstall, 4, XDP_FLAGS_DRV_MODE);
        assert_eq!(
            late.unwrap_err(),
            XdpError::with(libc::EEXIST, extack::NATIVE_AND_GENERIC)
        );
    }

    #[test]
    fn drivers() {
        assert_eq!(DriverXdp::for_driver("veth"), DriverXdp::VETH);
        assert_eq!(DriverXdp::for_driver("dummy"), DriverXdp::GENERIC_ONLY);
        assert!(DriverXdp::for_driver("netdevsim").offload);
    }

    #[test]
    fn nest_validation() {
        let n = |fd, flags, exp, attached| XdpNest {
            fd,
            flags,
            expected_fd: exp,
            attached,
            prog_id: false,
        };
        assert_eq!(
            validate_nest(&n(None, None, None, false)),
            Ok(NestOutcome::Nothing)
        );
        assert_eq!(
            validate_nest(&n(Some(3), None, None, true)),
            Err(XdpError::bare(libc::EINVAL))
        );
        assert_eq!(
            validate_nest(&n(Some(3), Some(32), None, false)),
            Err(XdpError::bare(libc::EINVAL))
        );
        assert_eq!(
            validate_nest(&n(Some(3), Some(6), None, false)),
            Err(XdpError::bare(libc::EINVAL))
        );
        assert_eq!(
            validate_nest(&n(Some(3), Some(16), None, false)),
            Err(XdpError::bare(libc::EINVAL))
        );
        // Bad flags are refused even without FD.
        assert_eq!(
            validate_nest(&n(None, Some(6), None, false)),
            Err(XdpError::bare(libc::EINVAL))
        );
        // EXPECTED_FD without REPLACE is ignored.
        assert_eq!(
            validate_nest(&n(Some(3), Some(2), Some(4), false)),
            Ok(NestOutcome::Change(XdpRequest {
                fd: 3,
                flags: 2,
                expected_fd: -1
            }))
        );
    }
}
