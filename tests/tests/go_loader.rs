//! A real Go client: tests/clients/go/xdpcounter, a cilium/ebpf (0.9, Debian's) loader of
//! examples/xdp-counter, built at test time as a fully static binary (CGO_ENABLED=0: raw
//! syscalls, no libc, no LD_PRELOAD possible) and run unmodified, once on the kernel and
//! once under `bpftime-run`, with pings from a peer namespace while it counts. Both
//! transcripts must be the expected one (ids are printed as comparisons; the program tag
//! must be the kernel's), and the pings must be counted in both worlds.
//!
//! On the kernel the loader runs in a private mount namespace with a fresh bpffs at
//! /sys/fs/bpf; under bpftime it runs under `bpftime-run`. `nsenter --net` enters the
//! interface's namespace.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

const NEEDS: &[Need] = &[
    Need::Root,
    Need::Bpf,
    Need::Netns,
    Need::Fuse,
    Need::Clang,
    Need::Go,
];

/// Pings sent from namespace b while the loader counts.
const PINGS: u64 = 5;

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds tests/clients/go/xdpcounter into `dir` with Debian's Go in GOPATH mode
/// (no module proxy), CGO_ENABLED=0. The build cache lives in the target directory so
/// the test processes share it (Go's cache is safe for concurrent builds).
fn build_go_loader(dir: &Path) -> PathBuf {
    let out = dir.join("xdpcounter");
    let cache = target_dir().join("go-build-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let o = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(repo_dir().join("tests/clients/go/xdpcounter"))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", &cache)
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .env("HOME", dir)
        .output()
        .expect("running go build");
    assert!(
        o.status.success(),
        "go build failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Compiles examples/xdp-counter/xdp_counter.bpf.c as examples/xdp-counter/build.sh does.
fn build_bpf(dir: &Path) -> PathBuf {
    let out = dir.join("xdp_counter.bpf.o");
    let o = Command::new("clang-19")
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg("-c")
        .arg(repo_dir().join("examples/xdp-counter/xdp_counter.bpf.c"))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("clang-19");
    assert!(
        o.status.success(),
        "clang-19: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The ELF program header types of `path` (64-bit little endian only).
fn elf_phdr_types(path: &Path) -> Vec<u32> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(b[4], 2, "not ELF64");
    assert_eq!(b[5], 1, "not little endian");
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
        })
        .collect()
}

/// A running loader: killed (stdin closed first) on drop, also when the test panics.
struct Loader {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    seen: Vec<String>,
}

impl Loader {
    fn spawn(mut cmd: Command) -> Loader {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the loader");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Loader {
            child: Some(child),
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one equals `want`; `Err(transcript so far)` on EOF or timeout.
    fn wait_for(&mut self, want: &str, timeout: Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l == want;
                    self.seen.push(l);
                    if done {
                        return Ok(());
                    }
                }
                Err(e) => return Err(format!("no `{want}` line ({e:?}); got {:?}", self.seen)),
            }
        }
    }

    /// Closes stdin (the loader then prints its counts and cleans up) and waits for the
    /// exit. Returns (success, stdout lines, stderr).
    fn finish(mut self, timeout: Duration) -> (bool, Vec<String>, String) {
        let mut child = self.child.take().unwrap();
        drop(child.stdin.take());
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        let stderr = stderr.join().unwrap_or_default();
        let ok = status.is_some_and(|s| s.success());
        let stderr = if status.is_none() {
            format!("(timed out and killed)\n{stderr}")
        } else {
            format!("(exit {status:?})\n{stderr}")
        };
        (ok, std::mem::take(&mut self.seen), stderr)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The parsed `counts:` line: slot name -> count, and `total`.
fn parse_counts(line: &str) -> std::collections::BTreeMap<String, u64> {
    line.strip_prefix("counts:")
        .unwrap_or_else(|| panic!("not a counts line: {line}"))
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// Runs the loader with `-attach attach` in one world; returns its transcript with the
/// counts line checked (pings counted) and replaced by `counts: checked`.
fn run_world(
    tag: &str,
    daemon: Option<&Daemon>,
    loader: &Path,
    obj: &Path,
    attach: &str,
) -> Vec<String> {
    let pair = VethPair::new(tag).expect("veth pair");
    pair.wait_up(Duration::from_secs(5)).unwrap();
    let nsenter = format!("--net=/run/netns/{}", pair.a.name());
    let args: Vec<String> = vec![
        "nsenter".into(),
        nsenter,
        loader.display().to_string(),
        "-obj".into(),
        obj.display().to_string(),
        "-iface".into(),
        pair.if_a.clone(),
        "-attach".into(),
        attach.into(),
        "-mode".into(),
        "generic".into(),
        "-pin".into(),
        "/sys/fs/bpf/go_xdpc_counters".into(),
        "-stdin".into(),
    ];
    let world = if daemon.is_some() {
        "bpftime"
    } else {
        "kernel"
    };
    let cmd = match daemon {
        Some(d) => {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            d.run_cmd(&a)
        }
        None => {
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg("mount -t bpf bpf /sys/fs/bpf && exec \"$@\"")
                .arg("sh")
                .args(&args);
            c
        }
    };
    let log = || daemon.map(|d| d.log()).unwrap_or_default();
    let mut l = Loader::spawn(cmd);
    if let Err(e) = l.wait_for("ready", Duration::from_secs(60)) {
        let (_, lines, stderr) = l.finish(Duration::from_secs(5));
        panic!(
            "{tag} on {world}: {e}\nstdout: {lines:#?}\nstderr: {stderr}\ndaemon log:\n{}",
            log()
        );
    }
    let ping = pair
        .b
        .command(
            "ping",
            &[
                "-c",
                &PINGS.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                "-q",
                &pair.ip_a.to_string(),
            ],
        )
        .output()
        .unwrap();
    let (ok, lines, stderr) = l.finish(Duration::from_secs(30));
    let ctx = format!(
        "{tag} on {world}:\nstdout: {lines:#?}\nstderr: {stderr}\nping: {}\ndaemon log:\n{}",
        String::from_utf8_lossy(&ping.stdout),
        log()
    );
    assert!(ok, "loader failed: {ctx}");
    assert!(ping.status.success(), "pings not answered: {ctx}");
    let counts_line = lines
        .iter()
        .find(|l| l.starts_with("counts:"))
        .unwrap_or_else(|| panic!("no counts line: {ctx}"));
    let c = parse_counts(counts_line);
    assert!(
        c["icmp"] >= PINGS,
        "pings not counted: {counts_line}\n{ctx}"
    );
    let slots: u64 = c
        .iter()
        .filter(|(k, _)| *k != "total")
        .map(|(_, v)| v)
        .sum();
    assert!(
        c["total"] >= slots,
        ".bss total_packets below the sum of the counters: {counts_line}\n{ctx}"
    );
    eprintln!("{tag} on {world}: {counts_line}");
    lines
        .into_iter()
        .map(|l| {
            if l.starts_with("counts:") {
                "counts: checked".to_string()
            } else {
                l
            }
        })
        .collect()
}

/// The transcript both worlds must print; `tag` is the program tag the kernel computed.
fn expected(attach: &str, tag: &str) -> Vec<String> {
    let mut v = vec![
        format!("prog: name=xdp_counter type=XDP tag={tag} id_ok=true maps=2"),
        "map counters: name=counters type=Array key=4 value=8 max=6 flags=0x0 id_ok=true used_by_prog=true".to_string(),
        "map .bss: name=.bss type=Array key=4 value=8 max=1 flags=0x0 id_ok=true used_by_prog=true".to_string(),
    ];
    if attach == "link" {
        v.push("attached: bpf_link mode=generic".into());
        v.push("link info: type=6 prog_matches=true ifindex_matches=true".into());
    } else {
        v.push("attached: netlink mode=generic".into());
    }
    v.extend(
        [
            "netlink query: attached=true mode=2 prog_matches=true",
            "pinned: /sys/fs/bpf/go_xdpc_counters reopened_same_map=true",
            "ready",
            "counts: checked",
            "pinned map agrees: true",
            "pinned map keys: 6",
            "detached",
            "netlink query: attached=false mode=0 prog_matches=false",
            "unpinned: gone=true",
        ]
        .map(String::from),
    );
    v
}

fn kernel_and_bpftime(attach: &str) {
    let dir = TempDir::new(&format!("go-{attach}"));
    let loader = build_go_loader(dir.path());
    let obj = build_bpf(dir.path());
    let tag = format!("go-{attach}");
    let kernel = run_world(&tag, None, &loader, &obj, attach);
    let prog_tag = kernel[0]
        .split_whitespace()
        .find_map(|t| t.strip_prefix("tag="))
        .unwrap_or_else(|| panic!("no tag in {:?}", kernel[0]))
        .to_string();
    assert_eq!(prog_tag.len(), 16, "tag is 8 bytes in hex: {prog_tag}");
    assert_eq!(kernel, expected(attach, &prog_tag), "kernel transcript");
    let daemon = Daemon::start();
    let ours = run_world(&tag, Some(&daemon), &loader, &obj, attach);
    assert_eq!(
        ours,
        kernel,
        "bpftime transcript differs from the kernel's\ndaemon log:\n{}",
        daemon.log()
    );
    // The loader detached and unpinned; closing its fds frees everything.
    let left = daemon.wait_empty(Duration::from_secs(10));
    assert_eq!(left, (0, 0, 0, 0), "objects left behind in the daemon");
}

/// cilium/ebpf: load, link.AttachXDP (bpf_link), Info, pin, Lookup/Iterate, detach, unpin.
#[test]
fn go_cilium_ebpf_bpf_link() {
    if !require(NEEDS) {
        return;
    }
    kernel_and_bpftime("link");
}

/// The same with vishvananda/netlink's LinkSetXdpFdWithFlags (legacy rtnetlink attach).
#[test]
fn go_cilium_ebpf_netlink_attach() {
    if !require(NEEDS) {
        return;
    }
    kernel_and_bpftime("netlink");
}

/// The Go loader built with CGO_ENABLED=0 is fully static: no PT_INTERP, no dynamic
/// section, so no LD_PRELOAD runtime could reach its syscalls.
#[test]
fn go_loader_is_fully_static() {
    if !require(&[Need::Go]) {
        return;
    }
    let dir = TempDir::new("go-static");
    let loader = build_go_loader(dir.path());
    let types = elf_phdr_types(&loader);
    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    assert!(types.contains(&PT_LOAD), "no PT_LOAD: {types:?}");
    assert!(!types.contains(&PT_INTERP), "has PT_INTERP: {types:?}");
    assert!(!types.contains(&PT_DYNAMIC), "has PT_DYNAMIC: {types:?}");
}
