//! The privilege gate every privileged test calls first.
//!
//! Without what the test needs (root, BPF, network namespaces, FUSE, seccomp user
//! notification) the test is skipped with a printed reason; when
//! `BPFTIME_REQUIRE_PRIVILEGED=1` (CI) it fails instead, so privileged tests never hide.
//!
//! ```ignore
//! if !bpftime_tests::privilege::require(&[Need::Root, Need::Bpf]) { return; }
//! ```

use std::path::Path;

/// One capability a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0.
    Root,
    /// The real bpf() syscall works (an ARRAY map can be created).
    Bpf,
    /// Network namespaces and veth (`ip netns` usable).
    Netns,
    /// /dev/fuse exists.
    Fuse,
    /// clang-19 is installed (to build BPF C at test time).
    Clang,
    /// bpftool is installed.
    Bpftool,
    /// Another program the test runs (e.g. `xdp-loader`, `setpriv`) is installed.
    Tool(&'static str),
    /// The Go toolchain (`go`) and Debian's cilium/ebpf and vishvananda/netlink sources
    /// (under /usr/share/gocode) are installed, to build Go loaders at test time.
    Go,
    /// A memory cgroup with a limit can be made below this process's own.
    MemCgroup,
}

/// Whether privileged tests must run (CI): then a missing capability is a failure.
pub fn required() -> bool {
    std::env::var("BPFTIME_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

/// Why `need` is not available here, or `None` if it is.
pub fn missing(need: Need) -> Option<String> {
    match need {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Need::Root => (unsafe { libc::geteuid() } != 0).then(|| "not running as root".to_string()),
        Need::Bpf => {
            (!bpf_works()).then(|| "bpf() cannot create a map (no CAP_BPF, or BPF disabled)".into())
        }
        Need::Netns => {
            if !Path::new("/proc/self/ns/net").exists() {
                Some("kernel without network namespaces".into())
            } else if which("ip").is_none() {
                Some("`ip` (iproute2) is not installed".into())
            } else {
                None
            }
        }
        Need::Fuse => (!Path::new("/dev/fuse").exists()).then(|| "/dev/fuse is missing".into()),
        Need::Clang => which("clang-19")
            .is_none()
            .then(|| "clang-19 is not installed".into()),
        Need::Bpftool => which("bpftool")
            .is_none()
            .then(|| "bpftool is not installed".into()),
        Need::Tool(prog) => which(prog)
            .is_none()
            .then(|| format!("`{prog}` is not installed (tests/install-deps.sh installs it)")),
        Need::MemCgroup => (!crate::cgroup::MemCgroup::available())
            .then(|| "no memory cgroup can be made here (v1 memory controller or v2 with memory delegated)".into()),
        Need::Go => {
            let src = Path::new("/usr/share/gocode/src/github.com");
            if which("go").is_none() {
                Some("go is not installed (tests/install-deps.sh installs golang-go)".into())
            } else if !src.join("cilium/ebpf").is_dir() || !src.join("vishvananda/netlink").is_dir()
            {
                Some("golang-github-cilium-ebpf-dev / golang-github-vishvananda-netlink-dev are not installed".into())
            } else {
                None
            }
        }
    }
}

/// Checks every need. Returns `true` when the test may run. Otherwise prints why it
/// is skipped and returns `false`, or panics when privileged tests are required.
#[track_caller]
pub fn require(needs: &[Need]) -> bool {
    let why: Vec<String> = needs.iter().filter_map(|n| missing(*n)).collect();
    if why.is_empty() {
        return true;
    }
    let loc = std::panic::Location::caller();
    let msg = format!("{}:{}: {}", loc.file(), loc.line(), why.join("; "));
    if required() {
        panic!("BPFTIME_REQUIRE_PRIVILEGED=1 but this test cannot run: {msg}");
    }
    eprintln!("SKIPPED (privileged test): {msg}");
    false
}

/// Finds `prog` on PATH (and the sbin directories, which root's PATH may lack).
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file());
    found
}

fn bpf_works() -> bool {
    // BPF_MAP_CREATE of a 1-entry ARRAY: the cheapest proof that bpf() works.
    let mut attr = [0u8; 72];
    attr[0..4].copy_from_slice(&2u32.to_ne_bytes()); // BPF_MAP_TYPE_ARRAY
    attr[4..8].copy_from_slice(&4u32.to_ne_bytes());
    attr[8..12].copy_from_slice(&4u32.to_ne_bytes());
    attr[12..16].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: attr is a valid, initialized buffer of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), attr.len()) };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd was just returned by bpf() and is owned here.
    unsafe { libc::close(fd as i32) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("definitely-not-a-program-xyz").is_none());
    }
}
