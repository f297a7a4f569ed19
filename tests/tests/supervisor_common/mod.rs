//! Shared fixtures of the supervisor tests: locating the binaries, an isolated daemon
//! per test (own socket and bpffs, stopped and unmounted in Drop), building the C
//! clients in tests/clients with gcc/clang-19.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// target/<profile>/ of this test executable (tests run from target/<profile>/deps/).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().to_path_buf()
}

/// A binary of the workspace (built by `cargo nextest run --workspace` / `cargo build`).
pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (cargo build -p bpftime-supervisor)",
        p.display()
    );
    p
}

/// A fresh, unique scratch directory removed in Drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "bpftime-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An isolated daemon: its own socket and bpffs under a scratch directory.
pub struct Daemon {
    pub dir: TempDir,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(&[])
    }

    /// A daemon with more `bpftime daemon` arguments.
    pub fn start_with(args: &[&str]) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.path().join("bpftimed.sock");
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new(bin("bpftime"))
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting bpftime daemon");
        let d = Daemon {
            dir,
            socket,
            child: Some(child),
        };
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "daemon did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    /// A daemon socket path with no daemon yet (bpftime-run starts one).
    pub fn unstarted() -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.path().join("bpftimed.sock");
        Daemon {
            dir,
            socket,
            child: None,
        }
    }

    /// The daemon's pid, when this fixture started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log(&self) -> String {
        let a = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let b = std::fs::read_to_string(self.dir.path().join("bpftimed.log")).unwrap_or_default();
        a + &b
    }

    /// `bpftime-run --socket S -- args...`
    pub fn run_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("bpftime-run"));
        c.arg("--socket").arg(&self.socket).arg("--").args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_cmd(args).output().expect("running bpftime-run")
    }

    /// `nsenter --net=/run/netns/NS bpftime-run --socket S -- args...`: the command's
    /// interfaces resolve in namespace `ns`.
    pub fn run_in_netns(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg(bin("bpftime-run"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("--")
            .args(args)
            .output()
            .expect("running bpftime-run in a namespace")
    }

    /// `ip link set dev DEV args...` under bpftime-run in namespace `ns`, which must
    /// succeed.
    pub fn ip_link_set_in(&self, ns: &str, dev: &str, args: &[&str]) {
        let all = [&["ip", "link", "set", "dev", dev][..], args].concat();
        let o = self.run_in_netns(ns, &all);
        assert!(
            o.status.success(),
            "{all:?}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
    }

    /// `bpftime status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = Command::new(bin("bpftime"))
            .arg("--socket")
            .arg(&self.socket)
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// (programs, maps, links, btf) counts in status.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let s = self.status();
        let n = |k: &str| s[k].as_array().map_or(0, |a| a.len());
        (n("programs"), n("maps"), n("links"), n("btf"))
    }

    /// Waits until the daemon holds no object (collection runs on target exit).
    pub fn wait_empty(&self, timeout: Duration) -> (usize, usize, usize, usize) {
        let t0 = Instant::now();
        loop {
            let c = self.counts();
            if c == (0, 0, 0, 0) || t0.elapsed() > timeout {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(target_dir().join("bpftime"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("stop")
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // In case the daemon died without unmounting its bpffs.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path().join("bpffs"))
            .stderr(Stdio::null())
            .status();
    }
}

/// tests/clients/.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients")
}

fn check(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles tests/clients/<src> with gcc into `dir`; `static_link` builds a fully
/// static binary. Extra args are appended (libraries).
pub fn gcc(dir: &Path, src: &str, out: &str, static_link: bool, libs: &[&str]) -> PathBuf {
    let dst = dir.join(out);
    let mut c = Command::new("gcc");
    c.arg("-O2")
        .arg("-Wall")
        .arg("-o")
        .arg(&dst)
        .arg(clients_dir().join(src));
    if static_link {
        c.arg("-static");
    }
    c.args(libs);
    check(c.output().expect("gcc"), &format!("gcc {src}"));
    dst
}

/// Compiles a BPF C file of tests/clients with clang-19.
pub fn clang_bpf(dir: &Path, src: &str, out: &str) -> PathBuf {
    let dst = dir.join(out);
    let o = Command::new("clang-19")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(clients_dir().join(src))
        .arg("-o")
        .arg(&dst)
        .output()
        .expect("clang-19");
    check(o, &format!("clang-19 {src}"));
    dst
}

/// stdout of a finished command, asserting success.
pub fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} exited {:?}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Assert that a client printed the same lines under bpftime-run (`ours`) as
/// natively (`native`): one message with every differing line, and the daemon's
/// log when a `Daemon` is given.
#[allow(dead_code)]
pub fn assert_same_lines(native: &str, ours: &str, d: Option<&Daemon>) {
    let diffs: Vec<String> = native
        .lines()
        .zip(ours.lines())
        .filter(|(k, b)| k != b)
        .map(|(k, b)| format!("kernel: {k}\nbpftime: {b}"))
        .collect();
    let log = d.map(|d| d.log()).unwrap_or_default();
    assert_eq!(
        native.lines().count(),
        ours.lines().count(),
        "case count differs:\nkernel:\n{native}\nbpftime:\n{ours}\ndaemon log:\n{log}"
    );
    assert!(
        diffs.is_empty(),
        "mismatches:\n{}\ndaemon log:\n{log}",
        diffs.join("\n")
    );
}

/// Polls `f` every 10 ms until it holds or `within` has passed; whether it held.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Runs `cmd` with its stdout piped for at most `limit`; a command still running then is
/// killed and the test fails with `what`.
pub fn output_within(mut cmd: Command, limit: Duration, what: &str) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    if !wait_until(limit, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}: still running after {limit:?}");
    }
    child.wait_with_output().unwrap()
}

/// Runs `cmd` for at most `limit` with its stdout in a file (for outputs larger than a
/// pipe holds); returns that stdout. A command still running then is killed and the
/// test fails with `what`; so does a failing one.
pub fn stdout_within(mut cmd: Command, limit: Duration, what: &str) -> String {
    let dir = TempDir::new("stdout");
    let path = dir.path().join("out");
    let file = std::fs::File::create(&path).unwrap();
    let mut child = cmd.stdout(Stdio::from(file)).spawn().unwrap();
    if !wait_until(limit, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}: still running after {limit:?}");
    }
    let st = child.wait().unwrap();
    assert!(st.success(), "{what}: {st}");
    std::fs::read_to_string(&path).unwrap()
}
