//! What `bpftime-run` checks before it starts anything: each missing piece of the
//! machine is named in one line with its fix, instead of a failure deep inside the
//! daemon or the target.

use std::path::Path;

use crate::call::cap;

/// A missing prerequisite: what is missing and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {fix}")]
pub struct Missing {
    pub what: String,
    pub fix: &'static str,
}

fn missing(what: impl Into<String>, fix: &'static str) -> Missing {
    Missing {
        what: what.into(),
        fix,
    }
}

/// Kernel release as (major, minor), from uname.
fn kernel_version() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    let rel = uts.release().to_string_lossy().into_owned();
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Checks the prerequisites of supervising a target; `caps` is the caller's
/// effective capability set.
pub fn check(caps: u64, kernel: Option<(u32, u32)>) -> Result<(), Missing> {
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !has(cap::SYS_ADMIN) {
        return Err(missing(
            "not running as root (bpftime-run needs CAP_SYS_ADMIN to mount the bpffs and supervise the target)",
            "run it with sudo",
        ));
    }
    match kernel {
        Some(v) if v < (5, 19) => {
            return Err(missing(
                format!("kernel {}.{} is too old", v.0, v.1),
                "bpftime needs Linux >= 5.19 (seccomp WAIT_KILLABLE_RECV, XDP live frames)",
            ))
        }
        _ => {}
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(missing(
            "no FUSE (/dev/fuse is missing); the bpffs is a FUSE filesystem",
            "load the fuse module (modprobe fuse) or give the container /dev/fuse",
        ));
    }
    // SAFETY: socket() takes integer arguments; the fd is closed right away.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
            return Err(missing(
                "the kernel has no AF_XDP sockets",
                "use a kernel built with CONFIG_XDP_SOCKETS=y",
            ));
        }
    } else {
        // SAFETY: fd was just returned by socket() and is owned here.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Runs [`check`] on this process and machine.
pub fn check_here() -> Result<(), Missing> {
    let caps = crate::call::read_creds(std::process::id())
        .map(|c| c.cap_eff)
        .unwrap_or(0);
    check(caps, kernel_version())
}

/// The one-line explanation of a failed filter installation in the child.
pub fn explain_install_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EBUSY) => "this process already has a seccomp listener (another supervisor, or a sandbox that uses user notification): only one listener per filter chain; run bpftime-run outside it".into(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) => format!("installing the seccomp filter failed ({e}): the kernel lacks seccomp user notification (needs CONFIG_SECCOMP_FILTER, Linux >= 5.0)"),
        Some(libc::EACCES) | Some(libc::EPERM) => format!("installing the seccomp filter was refused ({e}): run bpftime-run as root"),
        _ => format!("installing the seccomp filter failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: u64 = 1 << cap::SYS_ADMIN;

    #[test]
    fn names_what_is_missing() {
        let e = check(0, Some((6, 18))).unwrap_err().to_string();
        assert!(
            e.contains("not running as root") && e.contains("sudo"),
            "{e}"
        );
        let e = check(ROOT, Some((5, 10))).unwrap_err().to_string();
        assert!(
            e.contains("5.10 is too old") && e.contains(">= 5.19"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn explains_a_second_listener() {
        let e = explain_install_error(&std::io::Error::from_raw_os_error(libc::EBUSY));
        assert!(e.contains("already has a seccomp listener"), "{e}");
    }
}
