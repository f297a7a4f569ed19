//! Table-driven invalid input: a C client sends malformed bpf() calls (bad sizes,
//! trailing bytes, bad pointers, bad fds, wrong types, bad flags); the errno of each
//! case under bpftime-run equals the kernel's.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;

use bpftime_tests::privilege::{require, Need};
use common::*;

#[test]
fn malformed_attrs_get_the_kernels_errno() {
    if !require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let tmp = TempDir::new("errno");
    let client = gcc(tmp.path(), "sv_errno.c", "sv_errno", false, &[]);
    let native = stdout_ok(&Command::new(&client).output().unwrap(), "native client");
    assert!(native.lines().count() > 80, "too few cases ran:\n{native}");
    assert!(
        native.contains("size > page: -7"),
        "kernel answer changed:\n{native}"
    );
    let d = Daemon::start();
    let ours = stdout_ok(
        &d.run(&[client.to_str().unwrap()]),
        "client under bpftime-run",
    );
    assert_same_lines(&native, &ours, Some(&d));
}

/// The same table from an unprivileged target (uid 65534, no capabilities): EPERM
/// where the kernel checks capabilities, attribute errors where it checks them first.
#[test]
fn unprivileged_target_gets_the_kernels_errno() {
    if !require(&[Need::Root, Need::Bpf, Need::Tool("setpriv")]) {
        return;
    }
    let setpriv = bpftime_tests::privilege::which("setpriv").expect("checked by require");
    let setpriv = setpriv.to_str().unwrap().to_string();
    let tmp = TempDir::new("errno-unpriv");
    let client = gcc(tmp.path(), "sv_errno.c", "sv_errno", false, &[]);
    let drop_privs = [
        setpriv.as_str(),
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        client.to_str().unwrap(),
    ];
    let native = stdout_ok(
        &Command::new(drop_privs[0])
            .args(&drop_privs[1..])
            .output()
            .unwrap(),
        "native unprivileged client",
    );
    assert!(
        native.contains("setup: 0 0"),
        "the kernel let an unprivileged user create maps:\n{native}"
    );
    let d = Daemon::start();
    let ours = stdout_ok(&d.run(&drop_privs), "unprivileged client under bpftime-run");
    assert_eq!(native, ours, "daemon log:\n{}", d.log());
}
