//! A libbpf C loader (dynamic and fully static) loads an XDP object with maps and
//! global data, updates and reads maps and .bss/.data through libbpf's mmap, runs the
//! program with bpf_prog_test_run_opts: under bpftime-run its output equals the
//! kernel's. Afterwards the daemon holds no object.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use bpftime_tests::privilege::{require, Need};
use common::*;

/// Hash iteration order is not part of the contract (the kernel's is seeded
/// randomly): sort the `counts[...]` lines.
fn normalize(s: &str) -> String {
    let mut lines: Vec<&str> = s.lines().collect();
    let idx: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("counts["))
        .map(|(i, _)| i)
        .collect();
    let mut c: Vec<&str> = idx.iter().map(|&i| lines[i]).collect();
    c.sort();
    for (k, &i) in idx.iter().enumerate() {
        lines[i] = c[k];
    }
    lines.join("\n")
}

#[test]
fn libbpf_loader_matches_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("libbpf");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let dynamic = gcc(tmp.path(), "sv_loader.c", "loader", false, &["-lbpf"]);
    let stat = gcc(
        tmp.path(),
        "sv_loader.c",
        "loader-static",
        true,
        &["-lbpf", "-lelf", "-lz"],
    );
    let obj_s = obj.to_str().unwrap();

    let native = stdout_ok(
        &Command::new(&dynamic).arg(obj_s).output().unwrap(),
        "native loader",
    );
    assert!(
        native.contains("load: 0"),
        "the kernel refused the object:\n{native}"
    );
    assert!(
        native.contains("run drop len 60: err 0 retval 1"),
        "unexpected kernel output:\n{native}"
    );

    let d = Daemon::start();
    for loader in [&dynamic, &stat] {
        let out = d.run(&[loader.to_str().unwrap(), obj_s]);
        let ours = stdout_ok(&out, "loader under bpftime-run");
        assert_eq!(
            normalize(&native),
            normalize(&ours),
            "{}: bpftime output differs from the kernel's\ndaemon log:\n{}",
            loader.display(),
            d.log()
        );
    }
    // The loaders exited: every object they created is collected.
    assert_eq!(
        d.wait_empty(Duration::from_secs(5)),
        (0, 0, 0, 0),
        "objects leaked: {}",
        d.status()
    );
}

#[test]
fn bpftime_run_starts_a_daemon_and_reports_exit_status() {
    if !require(&[Need::Root]) {
        return;
    }
    let d = Daemon::unstarted();
    let out = d.run(&["sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.run(&["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + 15));
    let out = d.run(&["/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(127));
    // The auto-started daemon answers status and stops in Drop.
    assert_eq!(d.counts(), (0, 0, 0, 0));
    // statfs on the target's bpffs says BPF_FS_MAGIC.
    let out = d.run(&["stat", "-f", "-c", "%t", "/sys/fs/bpf"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "cafe4a11");
    // --trace-syscalls prints what was emulated on bpftime-run's stderr.
    let out = Command::new(bin("bpftime-run"))
        .arg("--socket")
        .arg(&d.socket)
        .args([
            "--trace-syscalls",
            "--",
            "stat",
            "-f",
            "-c",
            "%t",
            "/sys/fs/bpf",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("statfs on bpffs = BPF_FS_MAGIC"),
        "trace: {err}"
    );
}

/// A `bpftool gen skeleton` loader: .rodata set through the skeleton, .bss/.data read
/// and written through the skeleton's shared mappings of the map fds (the daemon's
/// memory under bpftime): same output as the kernel.
#[test]
fn skeleton_mmap_matches_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang, Need::Bpftool]) {
        return;
    }
    let tmp = TempDir::new("skel");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let skel = Command::new("bpftool")
        .args(["gen", "skeleton"])
        .arg(&obj)
        .args(["name", "sv_prog"])
        .output()
        .unwrap();
    let skel_h = stdout_ok(&skel, "bpftool gen skeleton");
    std::fs::write(tmp.path().join("sv_prog.skel.h"), skel_h).unwrap();
    let inc = format!("-I{}", tmp.path().display());
    let client = gcc(tmp.path(), "sv_skel.c", "sv_skel", false, &[&inc, "-lbpf"]);
    let native = stdout_ok(
        &Command::new(&client).output().unwrap(),
        "native skeleton loader",
    );
    assert!(
        native.contains("packets 3") && native.contains("lookup 1001"),
        "{native}"
    );
    let d = Daemon::start();
    let ours = stdout_ok(
        &d.run(&[client.to_str().unwrap()]),
        "skeleton loader under bpftime-run",
    );
    assert_eq!(native, ours, "daemon log:\n{}", d.log());
}

/// Ring buffers: libbpf's ring_buffer (epoll_ctl on the map fd, mmap of its pages,
/// ring_buffer__poll) consumes the records the program wrote, as with the kernel.
#[test]
fn ring_buffer_consumer_matches_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("ringbuf");
    let obj = clang_bpf(tmp.path(), "sv_ringbuf.bpf.c", "sv_ringbuf.bpf.o");
    let client = gcc(tmp.path(), "sv_ringbuf.c", "sv_ringbuf", false, &["-lbpf"]);
    let (obj, client) = (obj.to_str().unwrap(), client.to_str().unwrap());
    let native = stdout_ok(
        &Command::new(client).arg(obj).output().unwrap(),
        "native ringbuf client",
    );
    assert!(
        native.contains("poll: 3") && native.contains("seq 4"),
        "{native}"
    );
    let d = Daemon::start();
    let ours = stdout_ok(&d.run(&[client, obj]), "ringbuf client under bpftime-run");
    assert_eq!(native, ours, "daemon log:\n{}", d.log());
}
