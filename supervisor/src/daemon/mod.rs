//! The daemon (`bpftime daemon`): owns the emulated kernel state, serves the
//! socket (hello, register, status, stop) and one notification thread per target.

pub mod metrics;
pub mod notify;
pub mod status;
pub mod store;
pub mod trace_pipe;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use tracing::{debug, info, warn};

use crate::proto::{self, LineReader, Request};
use crate::registry::{self, Registry};

/// A supervised target (for status).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetInfo {
    pub pid: u32,
    pub trace: bool,
}

/// The daemon's state, shared by all threads.
pub struct Daemon {
    pub registry: Mutex<Registry>,
    /// Handlers hold it shared while they run; collection takes it exclusively, so
    /// an object is never collected between its creation and its ADDFD.
    pub gc_lock: RwLock<()>,
    /// Where the daemon's bpffs is mounted (targets bind-mount it at /sys/fs/bpf).
    pub bpffs: PathBuf,
    /// st_dev of the bpffs: paths and fds on it answer statfs with BPF_FS_MAGIC.
    pub bpffs_dev: AtomicU64,
    /// The FUSE bpffs mounted at `bpffs` (None: /dev/fuse missing, a plain tmpfs
    /// stands in and pinning answers EPERM).
    pub fs: OnceLock<Arc<bpftime_fs::BpfFs>>,
    /// Its mount (taken at shutdown).
    pub fs_mount: Mutex<Option<bpftime_fs::Mount>>,
    /// Fresh instances targets mounted with `mount -t bpf`.
    pub instances: Mutex<Vec<(Arc<bpftime_fs::BpfFs>, bpftime_fs::Mount)>>,
    pub socket: PathBuf,
    pub targets: Mutex<HashMap<u32, TargetInfo>>,
    /// Number of live BPF_ENABLE_STATS(RUN_TIME) fds: while > 0, runs are timed.
    pub stats_enabled: AtomicU64,
    /// The fds BPF_ENABLE_STATS handed out (their keys and the daemon's copies):
    /// stats stay on while a process holds one, as the kernel's anon inode.
    pub stats_fds: Mutex<Vec<(registry::Key, std::os::fd::OwnedFd)>>,
    /// Notifications served (status).
    pub notifications: AtomicU64,
    /// The AF_XDP data plane (XDP attachments).
    pub dataplane: bpftime_netdev::Dataplane,
    /// rtnetlink sockets of targets and the emulated per-device XDP state.
    pub nl: crate::nl::NlState,
    /// A weak reference to itself (for stores of new bpffs instances).
    pub me: OnceLock<std::sync::Weak<Daemon>>,
    /// Where `bpf_trace_printk` lines go (None: the FIFO could not be made).
    pub trace: Option<Arc<trace_pipe::TracePipe>>,
}

/// Options of `bpftime daemon`.
#[derive(Debug, Clone)]
pub struct DaemonOpts {
    pub socket: PathBuf,
    /// None: `<socket dir>/bpffs`.
    pub bpffs: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`--metrics`); None: off.
    pub metrics: Option<std::net::SocketAddr>,
    /// The data plane's adaptive busy polling (`--busy-poll-us`).
    pub busy_poll: std::time::Duration,
    /// UMEM frames per attached queue (`--umem-frames`).
    pub umem_frames: u32,
}

/// The socket's default name: its daemon's files keep their plain names beside it.
pub const DEFAULT_SOCKET_NAME: &str = "bpftimed.sock";

/// A file of the daemon listening on `socket`, beside it: `base` for the default socket
/// name, `<socket name>.<base>` for another, so that daemons whose sockets share a
/// directory never share a bpffs or a trace pipe.
pub fn beside(socket: &Path, base: &str) -> PathBuf {
    let dir = socket.parent().unwrap_or(Path::new("/run/bpftime"));
    match socket.file_name().and_then(|n| n.to_str()) {
        None | Some(DEFAULT_SOCKET_NAME) => dir.join(base),
        Some(name) => dir.join(format!("{name}.{base}")),
    }
}

/// The bpffs directory of a daemon listening on `socket`.
pub fn default_bpffs(socket: &Path) -> PathBuf {
    beside(socket, "bpffs")
}

/// Holds `<bpffs>.lock` for the daemon's life: a second daemon given the same bpffs
/// (`--bpffs`) refuses to start instead of unmounting the first one's, pins and all.
fn lock_bpffs(bpffs: &Path) -> anyhow::Result<std::fs::File> {
    let mut name = bpffs.as_os_str().to_owned();
    name.push(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .with_context(|| format!("opening {}", Path::new(&name).display()))?;
    // SAFETY: flock() on an fd we own; no pointers.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        bail!(
            "{} is the bpffs of another running daemon; give this one its own (--bpffs)",
            bpffs.display()
        );
    }
    Ok(f)
}

impl Daemon {
    /// Runs a collection: objects no process holds, and nothing references, go.
    pub fn gc(&self) -> usize {
        let _w = self.gc_lock.write().unwrap_or_else(|e| e.into_inner());
        let mut wanted = self.registry.lock().unwrap().keys();
        wanted.extend(self.stats_fds.lock().unwrap().iter().map(|(k, _)| *k));
        if wanted.is_empty() {
            return 0;
        }
        let live = registry::scan_live_keys(std::process::id(), &wanted);
        self.stats_fds.lock().unwrap().retain(|(k, _)| {
            let keep = live.contains(k);
            if !keep {
                self.stats_enabled.fetch_sub(1, Ordering::Relaxed);
                bpftime_vm::program::stats::disable();
            }
            keep
        });
        let dead = self.registry.lock().unwrap().collect(&live);
        for o in &dead {
            debug!(kind = ?o.kind, id = o.id, "collected");
            self.link_released(o);
        }
        dead.len()
    }
}

fn is_mountpoint(p: &Path) -> bool {
    let (Ok(a), Ok(b)) = (nix::sys::stat::stat(p), nix::sys::stat::stat(&p.join(".."))) else {
        return false;
    };
    a.st_dev != b.st_dev
}

/// Prepares the bpffs directory: a tmpfs of its own, so its st_dev identifies it.
/// (The FUSE bpffs of the fs crate replaces it when wired.)
fn setup_bpffs(dir: &Path) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if !is_mountpoint(dir) {
        nix::mount::mount(
            Some("bpftime"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            Some("mode=1777"),
        )
        .with_context(|| format!("mounting the bpffs at {}", dir.display()))?;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    Ok(nix::sys::stat::stat(dir)?.st_dev)
}

/// Mounts the FUSE bpffs at `dir` (or, without /dev/fuse, a tmpfs stand-in).
fn mount_bpffs(d: &Arc<Daemon>, dir: &Path) -> anyhow::Result<()> {
    if Path::new("/dev/fuse").exists() {
        let store = Arc::new(store::Store {
            daemon: Arc::downgrade(d),
        });
        let fs = bpftime_fs::BpfFs::new(store);
        match fs.mount(dir) {
            Ok(m) => {
                d.bpffs_dev.store(m.dev(), Ordering::Release);
                let _ = d.fs.set(fs);
                *d.fs_mount.lock().unwrap() = Some(m);
                return Ok(());
            }
            Err(e) => warn!("FUSE bpffs unavailable ({e}); using a tmpfs without pins"),
        }
    }
    let dev = setup_bpffs(dir)?;
    d.bpffs_dev.store(dev, Ordering::Release);
    Ok(())
}

/// Runs the daemon until `stop`.
pub fn run(opts: DaemonOpts) -> anyhow::Result<()> {
    if std::env::consts::ARCH != "x86_64" {
        bail!(
            "bpftime supports x86_64 only (this is {})",
            std::env::consts::ARCH
        );
    }
    // SIGTERM/SIGINT (systemd, Ctrl-C) stop the daemon as `bpftime stop` does: blocked
    // here, before any thread starts (they inherit the mask), and taken by one thread.
    let mut stop_signals = nix::sys::signal::SigSet::empty();
    stop_signals.add(nix::sys::signal::Signal::SIGTERM);
    stop_signals.add(nix::sys::signal::Signal::SIGINT);
    stop_signals.thread_block()?;
    // BPF_PROG_LOAD answers once the program is verified; the JIT thread compiles it
    // (runs interpret until then, test runs wait for it).
    bpftime_vm::jit::defer(true);
    let socket = opts.socket.clone();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if socket.exists() {
        if UnixStream::connect(&socket).is_ok() {
            bail!("a daemon already listens on {}", socket.display());
        }
        let _ = std::fs::remove_file(&socket);
    }
    let bpffs = opts.bpffs.clone().unwrap_or_else(|| default_bpffs(&socket));
    if let Some(parent) = bpffs.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let _bpffs_lock = lock_bpffs(&bpffs)?;
    // Only now is a mount there stale (a daemon that died, killed): no live daemon holds
    // it. It must go before the directory is looked at (stat answers ENOTCONN).
    let _ = bpftime_fs::BpfFs::cleanup_stale(&bpffs);
    std::fs::create_dir_all(&bpffs).with_context(|| format!("creating {}", bpffs.display()))?;
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    let trace = match trace_pipe::TracePipe::create(&beside(&socket, trace_pipe::NAME)) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            tracing::warn!(error = %e, "no trace pipe: bpf_trace_printk goes to the log only");
            None
        }
    };
    info!(socket = %socket.display(), bpffs = %bpffs.display(), "daemon up");
    let d = Arc::new(Daemon {
        registry: Mutex::new(Registry::default()),
        gc_lock: RwLock::new(()),
        bpffs: bpffs.clone(),
        bpffs_dev: AtomicU64::new(0),
        fs: OnceLock::new(),
        fs_mount: Mutex::new(None),
        instances: Mutex::new(Vec::new()),
        socket,
        targets: Mutex::new(HashMap::new()),
        stats_enabled: AtomicU64::new(0),
        stats_fds: Mutex::new(Vec::new()),
        notifications: AtomicU64::new(0),
        me: OnceLock::new(),
        dataplane: bpftime_netdev::Dataplane::with_options(bpftime_netdev::Options {
            busy_poll: opts.busy_poll,
            frames_per_queue: opts.umem_frames,
        }),
        nl: Default::default(),
        trace,
    });
    let _ = d.me.set(Arc::downgrade(&d));
    mount_bpffs(&d, &bpffs)?;
    if let Some(addr) = opts.metrics {
        metrics::serve(d.clone(), addr)?;
    }
    {
        let d = d.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Ok(sig) = stop_signals.wait() {
                    info!(?sig, "stopping on signal");
                    shutdown(&d);
                }
            })?;
    }
    {
        let d = d.clone();
        std::thread::Builder::new()
            .name("gc".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(2));
                if !d.registry.lock().unwrap().is_empty() {
                    d.gc();
                }
            })?;
    }
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let d = d.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve_conn(d, conn) {
                debug!("connection: {e:#}");
            }
        });
    }
    Ok(())
}

fn serve_conn(d: Arc<Daemon>, conn: UnixStream) -> anyhow::Result<()> {
    let mut reader = LineReader::new();
    while let Some((line, mut fds)) = reader.next(&conn)? {
        let req: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                proto::send(
                    &conn,
                    &serde_json::json!({"ok": false, "error": e.to_string()}),
                    &[],
                )?;
                continue;
            }
        };
        match req {
            Request::Hello => proto::send(
                &conn,
                &serde_json::json!({"ok": true, "bpffs": d.bpffs, "pid": std::process::id()}),
                &[],
            )?,
            Request::Status => {
                d.gc();
                proto::send(&conn, &status::collect(&d), &[])?
            }
            Request::Stop => {
                info!("stop requested");
                proto::send(&conn, &serde_json::json!({"ok": true}), &[])?;
                shutdown(&d);
            }
            Request::Register { pid, trace } => {
                let Some(listener) = fds.pop() else {
                    proto::send(
                        &conn,
                        &serde_json::json!({"ok": false, "error": "no listener fd"}),
                        &[],
                    )?;
                    continue;
                };
                d.targets
                    .lock()
                    .unwrap()
                    .insert(pid, TargetInfo { pid, trace });
                let sink = if trace { Some(conn.try_clone()?) } else { None };
                let d2 = d.clone();
                std::thread::Builder::new()
                    .name(format!("notif-{pid}"))
                    .spawn(move || {
                        notify::serve(&d2, listener, sink.map(proto::TraceSink::new));
                        d2.targets.lock().unwrap().remove(&pid);
                        d2.gc();
                    })?;
                proto::send(&conn, &serde_json::json!({"ok": true}), &[])?;
                if !trace {
                    return Ok(());
                }
                // With trace, the notification thread owns the connection's writes.
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Clean shutdown: unmount the bpffs, remove the socket, exit.
fn shutdown(d: &Daemon) -> ! {
    let _ = std::fs::remove_file(&d.socket);
    if let Some(t) = &d.trace {
        let _ = std::fs::remove_file(t.path());
    }
    for (id, _) in d.dataplane.list() {
        let _ = d.dataplane.detach(id);
    }
    for (_, m) in d.instances.lock().unwrap().drain(..) {
        let _ = m.unmount();
    }
    let main = d.fs_mount.lock().unwrap().take();
    match main {
        Some(m) => {
            if let Err(e) = m.unmount() {
                warn!("unmounting {}: {e}", d.bpffs.display());
            }
        }
        None => {
            if let Err(e) = nix::mount::umount2(&d.bpffs, nix::mount::MntFlags::MNT_DETACH) {
                warn!("unmounting {}: {e}", d.bpffs.display());
            }
        }
    }
    info!("daemon stopped");
    std::process::exit(0);
}

impl Daemon {
    /// The bpffs instance whose st_dev is `dev` (the main one or a target's own).
    pub fn fs_for_dev(&self, dev: u64) -> Option<Arc<bpftime_fs::BpfFs>> {
        if let Some(fs) = self.fs.get() {
            if fs.dev() == Some(dev) {
                return Some(fs.clone());
            }
        }
        let inst = self.instances.lock().unwrap();
        inst.iter()
            .find(|(fs, _)| fs.dev() == Some(dev))
            .map(|(fs, _)| fs.clone())
    }

    /// Whether `dev` is one of our bpffs (statfs answers BPF_FS_MAGIC).
    pub fn is_bpffs_dev(&self, dev: u64) -> bool {
        dev == self.bpffs_dev.load(Ordering::Acquire) || self.fs_for_dev(dev).is_some()
    }

    /// A link's last holder went: its attachment goes (as a bpf_link's release).
    pub fn link_released(&self, o: &crate::registry::Object) {
        if let Some(l) = o.as_link() {
            if let Some(id) = l.attachment.lock().unwrap().take() {
                if let Err(e) = self.dataplane.detach(id) {
                    warn!("detaching link {}: {e}", o.id);
                }
                let ifindex = l.ifindex.load(Ordering::Relaxed);
                crate::nl::link_detached(&self.nl, l.netns_ino, ifindex, l.drv);
            }
        }
    }

    /// The data plane's `bpf_trace_printk` output: lines of the trace pipe, shown as
    /// printed by the worker thread that ran the program.
    pub fn trace_sink(&self) -> Option<bpftime_netdev::TraceSink> {
        let pipe = self.trace.clone()?;
        Some(Arc::new(move |msg: &str| {
            let me = std::thread::current();
            let comm = me.name().unwrap_or("bpftime-dp");
            let pid = nix::unistd::gettid().as_raw() as u32;
            pipe.print(&trace_pipe::Task { comm, pid }, msg);
        }))
    }

    /// A data-plane program for `vm`, its trace output going to the trace pipe.
    pub fn dataplane_program(
        &self,
        vm: Arc<bpftime_vm::program::Program>,
    ) -> Arc<dyn bpftime_netdev::XdpProgram> {
        Arc::new(bpftime_netdev::VmProgram::with_trace(vm, self.trace_sink()))
    }

    pub fn self_weak(&self) -> std::sync::Weak<Daemon> {
        self.me.get().cloned().unwrap_or_default()
    }

    pub fn stats_on(&self) -> bool {
        self.stats_enabled.load(Ordering::Relaxed) > 0
    }
}
