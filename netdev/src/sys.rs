//! The real `bpf()` syscall, for the few kernel objects the data plane owns: the
//! XSKMAP and the redirect stub, the bpf_link that attaches it, the pass stub run
//! with `BPF_PROG_TEST_RUN` (live frames). One typed wrapper per command; `bpf_attr`
//! never leaves this module.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: i64 = 0;
const BPF_MAP_UPDATE_ELEM: i64 = 2;
const BPF_PROG_LOAD: i64 = 5;
const BPF_PROG_TEST_RUN: i64 = 10;
const BPF_LINK_CREATE: i64 = 28;

/// `BPF_PROG_TYPE_XDP`.
const PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` attach type.
const ATTACH_XDP: u32 = 37;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`.
const F_TEST_XDP_LIVE_FRAMES: u32 = 2;

/// Size of the attr we pass: large enough for every field we set (PROG_LOAD's
/// log_true_size ends at 144).
const ATTR_SIZE: usize = 144;

fn bpf(cmd: i64, attr: &mut [u8; ATTR_SIZE]) -> io::Result<i64> {
    // SAFETY: attr is a valid, initialized buffer of ATTR_SIZE bytes; every pointer
    // stored in it points to memory that outlives this call (callers keep it alive).
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), ATTR_SIZE) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put32(attr: &mut [u8], off: usize, v: u32) {
    attr[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put64(attr: &mut [u8], off: usize, v: u64) {
    attr[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: fd was just returned by bpf() as a new descriptor that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// `BPF_MAP_CREATE`.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = [0u8; ATTR_SIZE];
    put32(&mut attr, 0, map_type);
    put32(&mut attr, 4, key_size);
    put32(&mut attr, 8, value_size);
    put32(&mut attr, 12, max_entries);
    let n = name.len().min(15);
    attr[28..28 + n].copy_from_slice(&name.as_bytes()[..n]);
    bpf(BPF_MAP_CREATE, &mut attr).map(owned)
}

/// `BPF_MAP_UPDATE_ELEM` with a u32 key and u32 value (XSKMAP: queue -> socket fd).
pub fn map_update_u32(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
    let mut attr = [0u8; ATTR_SIZE];
    let k = key.to_ne_bytes();
    let v = value.to_ne_bytes();
    put32(&mut attr, 0, map.as_raw_fd() as u32);
    put64(&mut attr, 8, k.as_ptr() as u64);
    put64(&mut attr, 16, v.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// `BPF_PROG_LOAD` of an XDP program from raw instructions (8 bytes each).
pub fn prog_load_xdp(insns: &[u64], name: &str) -> io::Result<OwnedFd> {
    prog_load_xdp_as(insns, name, ATTACH_XDP)
}

/// `BPF_PROG_LOAD` of an XDP program with another expected attach type (BPF_XDP_DEVMAP
/// 33, BPF_XDP_CPUMAP 35): the supervisor's probes of the kernel's attach checks.
pub fn prog_load_xdp_as(insns: &[u64], name: &str, attach_type: u32) -> io::Result<OwnedFd> {
    prog_load(PROG_TYPE_XDP, insns, name, attach_type)
}

/// `BPF_PROG_LOAD` of a program of `prog_type` from raw instructions.
pub fn prog_load(
    prog_type: u32,
    insns: &[u64],
    name: &str,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut log = vec![0u8; 4096];
    let license = b"GPL\0";
    let mut attr = [0u8; ATTR_SIZE];
    put32(&mut attr, 0, prog_type);
    put32(&mut attr, 4, insns.len() as u32);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    let n = name.len().min(15);
    attr[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
    put32(&mut attr, 68, attach_type);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(e) => {
            // Retry with the verifier log to say why (the stubs are fixed code, so
            // this only happens on a kernel that refuses XDP altogether).
            put32(&mut attr, 24, 1);
            put32(&mut attr, 28, log.len() as u32);
            put64(&mut attr, 32, log.as_mut_ptr() as u64);
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            tracing::warn!(prog = name, log = %String::from_utf8_lossy(&log[..end]), "stub load failed: {e}");
            Err(e)
        }
    }
}

/// `BPF_LINK_CREATE` of an XDP program on `ifindex` (resolved in the calling
/// thread's network namespace) with the mode flags (XDP_FLAGS_SKB_MODE 2 / DRV_MODE 4).
pub fn link_create_xdp(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    link_create(prog, ifindex, ATTACH_XDP, flags)
}

/// `BPF_LINK_CREATE` of `prog` on device `ifindex` with `attach_type`.
pub fn link_create(
    prog: &OwnedFd,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = [0u8; ATTR_SIZE];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, ifindex);
    put32(&mut attr, 8, attach_type);
    put32(&mut attr, 12, flags);
    bpf(BPF_LINK_CREATE, &mut attr).map(owned)
}

/// `struct xdp_md` as `BPF_PROG_TEST_RUN` takes it.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`: runs `prog` once on a copy
/// of `frame` (`meta_len` bytes of metadata first) as if received on `ifindex`
/// queue `queue` (ifindex resolved in the calling thread's network namespace). With
/// a program returning XDP_PASS this hands the frame to the kernel stack.
pub fn test_run_live(
    prog: &OwnedFd,
    frame: &[u8],
    meta_len: u32,
    ifindex: u32,
    queue: u32,
) -> io::Result<()> {
    let md = XdpMd {
        data: meta_len,
        data_end: frame.len() as u32,
        ingress_ifindex: ifindex,
        rx_queue_index: queue,
        ..XdpMd::default()
    };
    let mut attr = [0u8; ATTR_SIZE];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 8, frame.len() as u32);
    put64(&mut attr, 16, frame.as_ptr() as u64);
    put32(&mut attr, 32, 1); // repeat
    put32(&mut attr, 40, std::mem::size_of::<XdpMd>() as u32);
    put64(&mut attr, 48, &md as *const XdpMd as u64);
    put32(&mut attr, 64, F_TEST_XDP_LIVE_FRAMES);
    // retval (offset 4) is always 0 in live mode.
    bpf(BPF_PROG_TEST_RUN, &mut attr).map(|_| ())
}
