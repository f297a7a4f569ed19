//! `bpftime-run`: runs a command under supervision.
//!
//! Connects to the daemon (starting it when none answers), forks; the child enters
//! a private mount namespace with the daemon's bpffs bind-mounted at the bpffs path,
//! installs the seccomp filter (NEW_LISTENER), hands the listener to the daemon,
//! waits for its ack and execs the command. The parent waits and returns the
//! child's exit status (128+signal when killed).

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::mount::{mount, MsFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::ForkResult;
use tracing::debug;

use crate::proto::{self, LineReader, Request};
use crate::sys::seccomp::{self, nr};

/// Options of `bpftime-run`.
#[derive(Debug, Clone)]
pub struct RunOpts {
    pub socket: PathBuf,
    /// Where the target sees the bpffs.
    pub bpffs: PathBuf,
    pub trace: bool,
    pub cmd: Vec<OsString>,
}

/// The syscalls the filter sends to the daemon.
pub const NOTIFIED: &[i32] = &[
    nr::BPF,
    nr::STATFS,
    nr::FSTATFS,
    nr::MOUNT,
    nr::SENDTO,
    nr::SENDMSG,
    nr::RECVFROM,
    nr::RECVMSG,
    nr::EPOLL_CTL,
    nr::PERF_EVENT_OPEN,
];

/// ioctls of this type are notified too: perf's (`'$'`), for the emulated BPF output
/// perf events.
pub const NOTIFIED_IOCTL_TYPE: u8 = b'$';

/// Connects to the daemon at `socket`, starting one if none answers.
pub fn connect_or_start(socket: &Path) -> anyhow::Result<UnixStream> {
    if let Ok(s) = UnixStream::connect(socket) {
        return Ok(s);
    }
    let exe = std::env::current_exe()?;
    let bpftime = exe.with_file_name("bpftime");
    if !bpftime.exists() {
        bail!(
            "no daemon on {} and {} is missing",
            socket.display(),
            bpftime.display()
        );
    }
    let dir = socket.parent().unwrap_or(Path::new("/run/bpftime"));
    std::fs::create_dir_all(dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("bpftimed.log"))
        .context("opening the daemon log")?;
    debug!(
        "starting the daemon: {} daemon --socket {}",
        bpftime.display(),
        socket.display()
    );
    // The daemon is one per host: start it in the host's mount and network
    // namespaces even when bpftime-run itself runs inside others (`ip netns exec`),
    // so its bpffs mount is the one every later bpftime-run finds.
    let ns_of = |p: &str| nix::sys::stat::stat(p).map(|s| (s.st_dev, s.st_ino)).ok();
    // (Only when pid 1's namespaces can be read and differ: in a sandbox where pid 1
    // is out of reach, start it where we are.)
    let differs = |a: &str, b: &str| matches!((ns_of(a), ns_of(b)), (Some(x), Some(y)) if x != y);
    let foreign = differs("/proc/self/ns/mnt", "/proc/1/ns/mnt")
        || differs("/proc/self/ns/net", "/proc/1/ns/net");
    let mut cmd = match (foreign, crate::run::which("nsenter")) {
        (true, Some(nsenter)) => {
            let mut c = std::process::Command::new(nsenter);
            c.args(["--mount=/proc/1/ns/mnt", "--net=/proc/1/ns/net", "--"])
                .arg(&bpftime);
            c
        }
        _ => std::process::Command::new(&bpftime),
    };
    let mut child = cmd
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", bpftime.display()))?;
    let start = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(socket) {
            // The daemon runs on after we exit (no waiter thread: we fork later and
            // must stay single-threaded).
            drop(child);
            return Ok(s);
        }
        if let Ok(Some(st)) = child.try_wait() {
            // It may have lost a race with another daemon: try once more.
            if let Ok(s) = UnixStream::connect(socket) {
                return Ok(s);
            }
            bail!(
                "the daemon exited ({st}); see {}",
                dir.join("bpftimed.log").display()
            );
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!(
                "the daemon did not answer on {} within 10 s",
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Finds `prog` on PATH or in the sbin directories.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file());
    found
}

fn own_caps() -> u64 {
    crate::call::read_creds(std::process::id())
        .map(|c| c.cap_eff)
        .unwrap_or(0)
}

/// Runs the command; returns the exit code for bpftime-run.
pub fn run(opts: RunOpts) -> anyhow::Result<i32> {
    if std::env::consts::ARCH != "x86_64" {
        bail!(
            "bpftime-run supports x86_64 only (this is {})",
            std::env::consts::ARCH
        );
    }
    if opts.cmd.is_empty() {
        bail!("no command given");
    }
    crate::preflight::check_here()?;
    let conn = connect_or_start(&opts.socket)?;
    proto::send(&conn, &Request::Hello, &[])?;
    let mut reader = LineReader::new();
    let (line, _) = reader
        .next(&conn)?
        .ok_or_else(|| anyhow!("daemon closed the connection"))?;
    let hello: serde_json::Value = serde_json::from_slice(&line)?;
    let daemon_bpffs = PathBuf::from(
        hello["bpffs"]
            .as_str()
            .ok_or_else(|| anyhow!("bad hello: {hello}"))?,
    );
    let args: Vec<CString> = opts
        .cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let (exec_r, exec_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // The child hands its listener over without sendmsg (which its own filter would
    // send to the daemon that is still waiting for that listener): it writes the fd
    // number to `lst`, the parent takes the fd with pidfd_getfd, registers it and
    // answers on `ack`.
    let (lst_r, lst_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (ack_r, ack_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let need_nnp = own_caps() & (1 << crate::call::cap::SYS_ADMIN) == 0;

    match crate::sys::process::fork_single_threaded()? {
        ForkResult::Child => {
            drop(exec_r);
            drop(lst_r);
            drop(ack_w);
            drop(conn);
            let err = child(&opts, &daemon_bpffs, need_nnp, &args, lst_w, ack_r);
            let code = err.raw_os_error().unwrap_or(libc::EINVAL);
            let _ = nix::unistd::write(&exec_w, &code.to_ne_bytes());
            let _ = nix::unistd::write(
                std::io::stderr(),
                format!("bpftime-run: {err}\n").as_bytes(),
            );
            crate::sys::process::exit_now(127);
        }
        ForkResult::Parent { child } => {
            drop(exec_w);
            drop(lst_w);
            drop(ack_r);
            register(&opts, &conn, child, lst_r, ack_w);
            parent(opts, conn, child, exec_r)
        }
    }
}

/// Parent side of the hand-over: take the child's listener, register it, ack.
fn register(
    opts: &RunOpts,
    conn: &UnixStream,
    child: nix::unistd::Pid,
    lst_r: OwnedFd,
    ack_w: OwnedFd,
) {
    let mut b = [0u8; 4];
    let mut f = std::fs::File::from(lst_r);
    if f.read_exact(&mut b).is_err() {
        return; // The child failed before installing the filter; exec_r tells why.
    }
    let ok = (|| -> anyhow::Result<()> {
        let pid = child.as_raw() as u32;
        let pidfd = crate::sys::pidfd::open(pid).map_err(std::io::Error::from_raw_os_error)?;
        let listener = crate::sys::pidfd::getfd(&pidfd, i32::from_ne_bytes(b))
            .map_err(std::io::Error::from_raw_os_error)
            .context("taking the listener with pidfd_getfd")?;
        proto::send(
            conn,
            &Request::Register {
                pid,
                trace: opts.trace,
            },
            &[listener.as_raw_fd()],
        )?;
        drop(listener);
        let mut reader = LineReader::new();
        match reader.next(conn)? {
            Some((line, _))
                if serde_json::from_slice::<serde_json::Value>(&line)
                    .is_ok_and(|v| v["ok"] == true) =>
            {
                Ok(())
            }
            other => bail!(
                "the daemon refused the target: {:?}",
                other.map(|(l, _)| String::from_utf8_lossy(&l).into_owned())
            ),
        }
    })();
    if let Err(e) = &ok {
        eprintln!("bpftime-run: {e:#}");
    }
    let _ = nix::unistd::write(&ack_w, if ok.is_ok() { b"1" } else { b"0" });
}

fn child(
    opts: &RunOpts,
    daemon_bpffs: &Path,
    need_nnp: bool,
    args: &[CString],
    lst_w: OwnedFd,
    ack_r: OwnedFd,
) -> std::io::Error {
    let r = (|| -> std::io::Result<std::convert::Infallible> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )?;
        if !opts.bpffs.exists() {
            std::fs::create_dir_all(&opts.bpffs)?;
        }
        mount(
            Some(daemon_bpffs),
            &opts.bpffs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
        let filter = seccomp::build_filter(NOTIFIED, Some(NOTIFIED_IOCTL_TYPE));
        let listener: OwnedFd = seccomp::install(&filter, need_nnp)
            .map_err(|e| std::io::Error::other(crate::preflight::explain_install_error(&e)))?;
        // From here on only unfiltered syscalls (write, read, close, execve).
        nix::unistd::write(&lst_w, &listener.as_raw_fd().to_ne_bytes())?;
        let mut ack = [0u8; 1];
        let n = nix::unistd::read(&ack_r, &mut ack)?;
        if n != 1 || ack[0] != b'1' {
            return Err(std::io::Error::other("the daemon did not take the target"));
        }
        drop(listener);
        let e = nix::unistd::execvp(&args[0], args).unwrap_err();
        Err(std::io::Error::from_raw_os_error(e as i32))
    })();
    match r {
        Err(e) => e,
        Ok(never) => match never {},
    }
}
fn exit_code(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn parent(
    opts: RunOpts,
    conn: UnixStream,
    child: nix::unistd::Pid,
    exec_r: OwnedFd,
) -> anyhow::Result<i32> {
    // Let the child take terminal signals; we report its status.
    crate::sys::process::ignore_terminal_signals();
    let mut buf = [0u8; 4];
    let n = std::fs::File::from(exec_r).read(&mut buf).unwrap_or(0);
    if n == 4 {
        let st = waitpid(child, None)?;
        let errno = i32::from_ne_bytes(buf);
        let _ = st;
        return Ok(if errno == libc::ENOENT { 127 } else { 126 });
    }
    if !opts.trace {
        drop(conn);
        loop {
            match waitpid(child, None) {
                Ok(st) => {
                    if let Some(c) = exit_code(st) {
                        return Ok(c);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    // With --trace-syscalls: print the daemon's trace lines while the child runs.
    let mut reader = LineReader::new();
    conn.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut done: Option<i32> = None;
    loop {
        match reader.next(&conn) {
            Ok(Some((line, _))) => {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                    if let Some(t) = v["trace"].as_str() {
                        eprintln!("bpftime: {t}");
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {}
        }
        if let Some(c) = done {
            return Ok(c);
        }
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(st) => {
                if let Some(c) = exit_code(st) {
                    // One more read round drains what is left.
                    done = Some(c);
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
