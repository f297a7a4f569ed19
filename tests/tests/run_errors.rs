//! `bpftime-run` stops with one line naming what is missing and the fix.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;

use bpftime_tests::privilege::{require, Need};
use common::*;

fn one_line(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr).into_owned();
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {s}");
    lines[0].to_string()
}

#[test]
fn not_root_is_named_with_its_fix() {
    if !require(&[Need::Root, Need::Tool("setpriv")]) {
        return;
    }
    let d = Daemon::unstarted();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin("bpftime-run"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line = one_line(&out.stderr);
    assert!(
        line.contains("not running as root") && line.contains("sudo"),
        "{line}"
    );
}

#[test]
fn a_second_listener_is_named_with_its_fix() {
    if !require(&[Need::Root, Need::Bpf, Need::Fuse]) {
        return;
    }
    let d = Daemon::start();
    let inner = bin("bpftime-run");
    let socket = d.socket.to_str().unwrap().to_string();
    let out = d.run(&[inner.to_str().unwrap(), "--socket", &socket, "--", "true"]);
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    let line = one_line(&out.stderr);
    assert!(line.contains("already has a seccomp listener"), "{line}");
}
