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
use nix::unistd::{fork, ForkResult};
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
pub const NOTIFIED: &[i32] = &[nr::BPF, nr::STATFS, nr::FSTATFS, nr::MOUNT];

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
    let mut child = std::process::Command::new(&bpftime)
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
            // Reap the daemon launcher in the background (the daemon itself runs on).
            std::thread::spawn(move || child.wait());
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
    let need_nnp = own_caps() & (1 << crate::call::cap::SYS_ADMIN) == 0;

    // SAFETY: bpftime-run is single-threaded here (no thread was started), so the
    // child may run ordinary code until exec.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(exec_r);
            let err = child(&opts, &conn, &daemon_bpffs, need_nnp, &args);
            let code = err.raw_os_error().unwrap_or(libc::EINVAL);
            let _ = nix::unistd::write(&exec_w, &code.to_ne_bytes());
            let _ = nix::unistd::write(
                std::io::stderr(),
                format!("bpftime-run: {err}\n").as_bytes(),
            );
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(127) };
        }
        ForkResult::Parent { child } => {
            drop(exec_w);
            parent(opts, conn, child, exec_r)
        }
    }
}

fn child(
    opts: &RunOpts,
    conn: &UnixStream,
    daemon_bpffs: &Path,
    need_nnp: bool,
    args: &[CString],
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
        let filter = seccomp::build_filter(NOTIFIED);
        let listener: OwnedFd = seccomp::install(&filter, need_nnp)?;
        let pid = std::process::id();
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
                    .is_ok_and(|v| v["ok"] == true) => {}
            _ => return Err(std::io::Error::other("the daemon refused the target")),
        }
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
    // SAFETY: setting SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
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
