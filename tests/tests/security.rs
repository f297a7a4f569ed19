//! What a hostile loader must not be able to do to the root daemon (issue: security
//! findings), each compared with the kernel on this machine where the kernel has an
//! answer: a test run that cannot be stopped, a user namespace taken for the initial
//! one, rtnetlink XDP changes without CAP_NET_ADMIN, pointers laundered through maps.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bpftime_tests::cgroup::MemCgroup;
use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

/// The same command line natively, then under the daemon's bpftime-run: both stdouts
/// (each asserted to be a success).
fn kernel_then_bpftime(d: &Daemon, argv: &[&str], what: &str) -> (String, String) {
    let native = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    let native = stdout_ok(&native, &format!("{what} (kernel)"));
    let ours = stdout_ok(&d.run(argv), &format!("{what} (bpftime)"));
    (native, ours)
}

/// `bpftime daemon --socket SOCK [--bpffs DIR]`, stderr piped (tests that need a daemon
/// on a socket of their choosing; the `Daemon` fixture makes its own).
fn spawn_daemon(sock: &Path, bpffs: Option<&Path>) -> Child {
    let mut c = Command::new(bin("bpftime"));
    c.arg("daemon").arg("--socket").arg(sock);
    if let Some(b) = bpffs {
        c.arg("--bpffs").arg(b);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Whether a daemon listens on `sock` within 10 s.
fn listening(sock: &Path) -> bool {
    wait_until(Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(sock).is_ok()
    })
}

/// `bpftime stop --socket SOCK`.
fn stop_daemon(sock: &Path) {
    let _ = Command::new(bin("bpftime"))
        .arg("stop")
        .arg("--socket")
        .arg(sock)
        .output();
}

/// Whether `dir` is a mount point in this process's mount namespace.
fn mounted(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(dir.to_str().unwrap())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &s[s.rfind(") ").unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// BPF_PROG_TEST_RUN with repeat 2^32-1 (plain and live frames): a signal ends it
/// with EINTR as `bpf_test_timer_continue` does, and SIGKILL of the caller stops the
/// daemon's work on it (it used to go on at 60-100% of a core).
#[test]
fn long_test_runs_stop_on_signals_and_kill() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    let tmp = TempDir::new("sec_testrun");
    let client = gcc(tmp.path(), "sv_testrun_intr.c", "intr", false, &["-lbpf"]);
    let client = client.to_str().unwrap();
    let d = Daemon::start();
    let daemon_pid = d.pid().unwrap();
    for mode in ["plain", "live"] {
        let native = Command::new(client).args([mode, "alarm"]).output().unwrap();
        let native = stdout_ok(&native, "test run + SIGALRM (kernel)");
        assert_eq!(native.trim(), "test_run EINTR");
        // Bounded: a run that ignores the signal would take minutes.
        let out = output_within(
            d.run_cmd(&[client, mode, "alarm"]),
            Duration::from_secs(10),
            &format!("{mode}: the test run ignored SIGALRM"),
        );
        let ours = stdout_ok(&out, "test run + SIGALRM (bpftime)");
        assert_eq!(ours, native, "{mode}: {}", d.log());

        let mut child = d
            .run_cmd(&[client, mode, "wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid: i32 = line
            .trim()
            .strip_prefix("running ")
            .unwrap()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill() takes no pointers; pid is the client's, a child of bpftime-run.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_ticks(daemon_pid);
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks(daemon_pid) - before;
        assert!(
            used < 20,
            "{mode}: the daemon used {used} ticks in the second after its caller died"
        );
    }
}

/// A user namespace is not the initial one: nobody with `unshare -U -r` holds
/// CAP_BPF/CAP_SYS_ADMIN only there, and the kernel refuses every call (it used to be
/// taken for root: maps created, programs loaded, ids walked, root's map opened).
#[test]
fn a_user_namespace_grants_no_bpf_capability() {
    if !require(&[
        Need::Root,
        Need::Bpf,
        Need::Fuse,
        Need::Tool("setpriv"),
        Need::Tool("unshare"),
        Need::Bpftool,
    ]) {
        return;
    }
    let tmp = TempDir::new("sec_userns");
    let client = gcc(tmp.path(), "sv_userns.c", "userns", false, &["-lbpf"]);
    let client = client.to_str().unwrap();
    let d = Daemon::start();
    // A map of root's, kept alive by a pin.
    let pin = "/sys/fs/bpf/sec_userns_root";
    let out = d.run(&[
        "bpftool", "map", "create", pin, "type", "array", "key", "4", "value", "4", "entries", "1",
        "name", "rootmap",
    ]);
    stdout_ok(&out, "bpftool map create (root)");
    let id = d.status()["maps"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "rootmap"))
        .and_then(|m| m["id"].as_u64())
        .expect("root's map in status");
    let id = id.to_string();
    let as_nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "unshare",
        "-U",
        "-r",
        client,
        &id,
    ];
    let (native, ours) = kernel_then_bpftime(&d, &as_nobody, "userns client");
    assert!(native.contains("map_create EPERM"), "{native}");
    assert_same_lines(&native, &ours, Some(&d));
}

/// rtnetlink changes need CAP_NET_ADMIN over the interface's network namespace:
/// `nobody` cannot detach root's XDP program with `ip link set ... xdpgeneric off`.
#[test]
fn nobody_cannot_detach_roots_xdp_program() {
    if !require(&[
        Need::Root,
        Need::Bpf,
        Need::Netns,
        Need::Fuse,
        Need::Clang,
        Need::Tool("setpriv"),
    ]) {
        return;
    }
    let tmp = TempDir::new("sec_detach");
    let obj = clang_bpf(tmp.path(), "rt_progs.bpf.c", "rt_progs.o");
    let obj = obj.to_str().unwrap();
    let pair = VethPair::new("secdet").unwrap();
    let netns = format!("--net=/run/netns/{}", pair.b.name());
    let dev = pair.if_b.as_str();
    let attach = [
        "ip",
        "-n",
        pair.b.name(),
        "link",
        "set",
        "dev",
        dev,
        "xdpgeneric",
    ];
    let nobody = [
        "nsenter",
        &netns,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "ip",
        "link",
        "set",
        "dev",
        dev,
        "xdpgeneric",
        "off",
    ];
    let show = ["ip", "-n", pair.b.name(), "link", "show", "dev", dev];
    let d = Daemon::start();
    let mut answers = Vec::new();
    for ours in [false, true] {
        let run = |args: &[&str]| -> std::process::Output {
            if ours {
                d.run(args)
            } else {
                Command::new(args[0]).args(&args[1..]).output().unwrap()
            }
        };
        let mut a = attach.to_vec();
        a.extend_from_slice(&["obj", obj, "sec", "xdp"]);
        stdout_ok(&run(&a), "attach as root");
        let o = run(&nobody);
        let still = String::from_utf8_lossy(&run(&show).stdout).contains("prog/xdp");
        answers.push((
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            still,
        ));
        let mut off = attach.to_vec();
        off.push("off");
        stdout_ok(&run(&off), "detach as root");
    }
    assert_eq!(answers[0].0, Some(2), "kernel: {answers:?}");
    assert!(answers[0].2, "kernel: still attached");
    assert_eq!(answers[1], answers[0], "bpftime vs kernel\n{}", d.log());
}

/// A prog array is owned by one program type (and XDP frags support): XDP cannot
/// tail-call a SOCKET_FILTER program, at load or through an update (EINVAL, as the
/// kernel's `__bpf_prog_map_compatible`).
#[test]
fn prog_arrays_never_mix_program_types() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    let tmp = TempDir::new("sec_owner");
    let client = gcc(
        tmp.path(),
        "sv_progarray_owner.c",
        "owner",
        false,
        &["-lbpf"],
    );
    let client = client.to_str().unwrap();
    let d = Daemon::start();
    let (native, ours) = kernel_then_bpftime(&d, &[client], "prog array owner");
    for want in [
        "sockfilter.uses.pa EINVAL",
        "pa.set.sockfilter EINVAL",
        "xdp.uses.pb EINVAL",
    ] {
        assert!(native.contains(want), "kernel: no '{want}'\n{native}");
    }
    assert_same_lines(&native, &ours, Some(&d));
}

/// Two daemons whose sockets share a directory each keep their own bpffs (the second
/// used to unmount the first one's, pins and all); a daemon given the bpffs of a running
/// one refuses to start.
#[test]
fn daemons_sharing_a_directory_keep_their_pins() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse, Need::Bpftool]) {
        return;
    }
    let dir = TempDir::new("sec_2daemons");
    let pin = |sock: &Path, name: &str| {
        Command::new(bin("bpftime-run"))
            .arg("--socket")
            .arg(sock)
            .args(["--", "bpftool", "map", "create"])
            .arg(format!("/sys/fs/bpf/{name}"))
            .args([
                "type", "array", "key", "4", "value", "4", "entries", "1", "name", name,
            ])
            .output()
            .unwrap()
    };
    let (a, b, c) = (
        dir.path().join("a.sock"),
        dir.path().join("b.sock"),
        dir.path().join("c.sock"),
    );
    let mut da = spawn_daemon(&a, None);
    assert!(listening(&a), "daemon a did not start");
    let pa = pin(&a, "pin_a");
    let mut db = spawn_daemon(&b, None);
    assert!(listening(&b), "daemon b did not start");
    let pb = pin(&b, "pin_b");
    // A third daemon on a's bpffs: refused, a's pins untouched.
    let dc = spawn_daemon(&c, Some(&dir.path().join("a.sock.bpffs")));
    let out_c = dc.wait_with_output().unwrap();
    let listing = |p: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path().join(p))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("pin_"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let (na, nb) = (listing("a.sock.bpffs"), listing("b.sock.bpffs"));
    stop_daemon(&a);
    stop_daemon(&b);
    let _ = da.wait();
    let _ = db.wait();
    assert!(pa.status.success() && pb.status.success(), "{pa:?} {pb:?}");
    assert_eq!(
        (na, nb),
        (vec!["pin_a".to_string()], vec!["pin_b".to_string()]),
        "each daemon's bpffs holds its own pin"
    );
    assert!(
        !out_c.status.success(),
        "a daemon started on a live daemon's bpffs"
    );
    assert!(
        String::from_utf8_lossy(&out_c.stderr).contains("another running daemon"),
        "{}",
        String::from_utf8_lossy(&out_c.stderr)
    );
}

/// `bpf_spin_lock` cannot hang the daemon: a lock on the stack, a second lock, an exit
/// or a helper call while holding one, an unlock without a lock are refused at load as
/// the kernel refuses them; a run that faults while holding a lock gives it back (the
/// kernel refuses that program at load for its out-of-bounds read; bpftime, which does
/// not track ranges yet, aborts it at run time), so the next program still locks.
#[test]
fn spin_locks_cannot_hang_the_daemon() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    let (native, ours) = kernel_then_both_back_ends("sv_spinlock_prog.c", "spin lock programs");
    assert!(native.contains("exit_held EINVAL"), "{native}");
    let norm = |s: &str| -> String {
        s.lines()
            .map(|l| {
                if l.starts_with("fault_held ") {
                    "fault_held (refused or aborted)"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (out, d) in &ours {
        assert!(
            out.contains("fault_held ran 0 0") || out.contains("fault_held EACCES"),
            "{out}"
        );
        assert_eq!(norm(out), norm(&native), "{}", d.log());
    }
}

/// A daemon killed with SIGKILL leaves its FUSE bpffs mounted but dead (stat answers
/// ENOTCONN); the next daemon on the same socket clears it and starts.
#[test]
fn a_daemon_restarts_after_kill_9() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    let dir = TempDir::new("sec_restart");
    let sock = dir.path().join("bpftimed.sock");
    let bpffs = dir.path().join("bpffs");
    let mut first = spawn_daemon(&sock, None);
    assert!(listening(&sock), "first daemon did not start");
    assert!(
        wait_until(Duration::from_secs(10), || mounted(&bpffs)),
        "no bpffs mount"
    );
    first.kill().unwrap();
    let _ = first.wait();
    // The kernel aborts the FUSE connection once the last reference to it is gone.
    wait_until(Duration::from_secs(5), || {
        std::fs::metadata(&bpffs).is_err()
    });
    let mut second = spawn_daemon(&sock, None);
    if !listening(&sock) {
        let _ = second.kill();
        let out = second.wait_with_output().unwrap();
        let _ = Command::new("umount").arg("-l").arg(&bpffs).status();
        panic!(
            "no restart after kill -9: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop_daemon(&sock);
    let _ = second.wait();
}

/// Calls with two faults at once answer the errno the kernel's order of checks gives
/// (`bpf_prog_load` copies instructions and license before it looks at the device; a NULL
/// license is EFAULT; `bpf_raw_tracepoint_open` looks the program fd up first).
#[test]
fn errno_order_matches_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    let tmp = TempDir::new("sec_errno_order");
    let client = gcc(tmp.path(), "sv_errno_order.c", "eo", false, &[]);
    let client = client.to_str().unwrap();
    let d = Daemon::start();
    let (native, ours) = kernel_then_bpftime(&d, &[client], "errno order");
    assert!(native.contains("rawtp.closed_fd EBADF"), "{native}");
    assert_same_lines(&native, &ours, Some(&d));
}

/// SIGTERM (systemd's stop, Ctrl-C's SIGINT alike) stops the daemon as `bpftime stop`
/// does: its bpffs unmounted, its socket removed (it used to die with both left behind).
#[test]
fn sigterm_stops_the_daemon_cleanly() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    let dir = TempDir::new("sec_sigterm");
    let sock = dir.path().join("bpftimed.sock");
    let bpffs = dir.path().join("bpffs");
    let mut c = spawn_daemon(&sock, None);
    assert!(
        wait_until(Duration::from_secs(10), || mounted(&bpffs)),
        "no bpffs mount"
    );
    // SAFETY: kill() takes no pointers; the pid is our child's.
    assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGTERM) }, 0);
    let status = c.wait().unwrap();
    let left = mounted(&bpffs);
    if left {
        let _ = Command::new("umount").arg("-l").arg(&bpffs).status();
    }
    assert!(status.success(), "{status:?}");
    assert!(!left, "bpffs still mounted after SIGTERM");
    assert!(!sock.exists(), "socket left behind");
}

/// A pointer stored into a map and read back is a number: using the address of the
/// context, the stack, the packet, a map or a map value laundered that way is refused at
/// load (EACCES), as the kernel refuses it; a number's round trip still runs. Both back
/// ends (they used to load and run all of them, reading and writing through the address).
#[test]
fn pointers_laundered_through_maps_are_numbers() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    cases_answer_as_the_kernel(
        "sv_launder.c",
        "laundering programs",
        &["number ran 7", "map_value EACCES"],
    );
}

/// Map memory is reserved when the map is created, as the kernel does, and a map that
/// does not fit is ENOMEM at creation: with the daemon in a 300 MiB memory cgroup, a
/// 512 MiB array is refused (the daemon used to accept it and be OOM-killed while the
/// loader filled it, losing every user's objects) and a 64 MiB one is created and
/// filled; the kernel, for a loader in the same limit, answers the same.
#[test]
fn map_memory_is_reserved_at_creation() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse, Need::MemCgroup]) {
        return;
    }
    let tmp = TempDir::new("sec_mapmem");
    let client = gcc(tmp.path(), "sv_bigmap.c", "bigmap", false, &["-lbpf"]);
    let client = client.to_str().unwrap();
    let limit = 300u64 << 20;
    let kernel = MemCgroup::new("bpftime_kernel", limit).expect("memory cgroup");
    let native = |mib: &str| {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec {client} {mib}",
            kernel.path().display()
        );
        stdout_ok(
            &Command::new("sh").args(["-c", &script]).output().unwrap(),
            "big array (kernel)",
        )
    };
    assert_eq!(native("512").trim(), "create ENOMEM");
    assert_eq!(native("64").trim(), "filled");

    let d = Daemon::start();
    let cg = MemCgroup::new("bpftime_daemon", limit).expect("memory cgroup");
    cg.add(d.pid().expect("daemon pid"));
    for (mib, want) in [
        ("512", "create ENOMEM"),
        ("64", "filled"),
        ("512", "create ENOMEM"),
    ] {
        let out = output_within(
            d.run_cmd(&[client, mib]),
            Duration::from_secs(60),
            &format!("{mib} MiB array under bpftime"),
        );
        let ours = stdout_ok(&out, "big array (bpftime)");
        assert_eq!(ours.trim(), want, "{mib} MiB: {}", d.log());
    }
    // A killed child stays in /proc as a zombie until reaped: ask for its state.
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", d.pid().unwrap())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    assert!(
        matches!(state, Some("R" | "S" | "D")),
        "the daemon died ({stat}): {}",
        d.log()
    );
    let _ = d.status(); // answers (panics otherwise)
}

/// Pointer-or-NULL values and ring buffer references are checked at load as the
/// kernel checks them: a record or map value used before its test against 0, a record
/// written, read or given back after `bpf_ringbuf_submit`/`discard`, a record still
/// held at exit or at a tail call are refused with the kernel's errno; a test on one
/// copy refines the others; an array lookup whose key is zero bytes needs no test
/// (element 0 exists), another key or a hash does. Both back ends (the reference
/// cases used to load).
#[test]
fn nullable_pointers_and_ringbuf_references_as_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    cases_answer_as_the_kernel(
        "sv_refs.c",
        "reference programs",
        &["leak EINVAL", "write_after_submit EACCES"],
    );
}

/// Direct packet access is checked at load as the kernel checks it: through `data + c`
/// only inside what a comparison with `data_end` showed (each of the eight forms clang
/// emits; a strict one shows one byte more), reads and writes, copies and
/// spills sharing the test; `data_end` is neither memory nor takes arithmetic; after
/// `bpf_xdp_adjust_head` the old pointers are numbers. Both back ends (the refused cases
/// used to load and were checked at run time only).
#[test]
fn packet_accesses_as_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    cases_answer_as_the_kernel(
        "sv_pktrange.c",
        "packet access programs",
        &[
            "unchecked_read EACCES",
            "checked_read ran 0",
            "ptr_gt_end_read13 ran 2",
            "ptr_gt_end_read14 EACCES",
            "ptr_ge_end_read14 ran 2",
            "pkt_end_arith EACCES",
            "stale_after_adjust_head EACCES",
        ],
    );
}

/// Client `src` prints one line per case; under bpftime, on both back ends, every line
/// is the kernel's, and the kernel's output holds each of `kernel_says` (the cases
/// that would otherwise pass unnoticed if the client stopped exercising them).
fn cases_answer_as_the_kernel(src: &str, what: &str, kernel_says: &[&str]) {
    let (native, ours) = kernel_then_both_back_ends(src, what);
    for line in kernel_says {
        assert!(native.contains(line), "kernel: {native}");
    }
    for (out, d) in &ours {
        assert_same_lines(&native, out, Some(d));
    }
}

/// Builds client `src` (C with libbpf), runs it natively, then under a daemon of each
/// back end (JIT, interpreter); returns the kernel's stdout and, per back end, bpftime's
/// (with the daemon, for its log). The daemon reads BPFTIME_JIT; each test is its own
/// process under nextest, so setting it here touches no other test.
fn kernel_then_both_back_ends(src: &str, what: &str) -> (String, Vec<(String, Daemon)>) {
    let tmp = TempDir::new("sec_client");
    let client = gcc(tmp.path(), src, "client", false, &["-lbpf"]);
    let client = client.to_str().unwrap();
    let native = stdout_ok(
        &Command::new(client).output().unwrap(),
        &format!("{what} (kernel)"),
    );
    let mut ours = Vec::new();
    for jit in ["1", "0"] {
        std::env::set_var("BPFTIME_JIT", jit);
        let d = Daemon::start();
        let out = output_within(
            d.run_cmd(&[client]),
            Duration::from_secs(20),
            &format!("JIT={jit}: {what} under bpftime"),
        );
        ours.push((stdout_ok(&out, &format!("{what} (bpftime)")), d));
    }
    (native, ours)
}

/// Which maps each helper takes (the kernel's check_map_func_compatibility and its
/// write check on maps programs may only read): 8 map types x 11 helpers, each a
/// one-call program, refused or run as on the kernel, on both back ends.
#[test]
fn helpers_take_the_maps_the_kernel_allows() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    cases_answer_as_the_kernel(
        "sv_mapfunc.c",
        "map/helper programs",
        &[
            "prog_array_lookup EINVAL",
            "array_tail_call EINVAL",
            "perf_event_array_perf_event_output ran 2",
            "ringbuf_lookup EACCES",
            "devmap_update EACCES",
            "devmap_peek EINVAL",
            "queue_push ran 2",
        ],
    );
}
