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
}
