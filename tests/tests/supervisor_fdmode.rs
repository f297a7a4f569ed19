//! Per-fd access modes of map fds: a C client opens a pinned map with OBJ_GET
//! BPF_F_RDONLY/WRONLY, MAP_GET_FD_BY_ID open_flags and MAP_CREATE map_flags, then tries
//! every element/batch command, freeze and mmap through each fd. Natively (on a fresh
//! bpffs in a private mount namespace) and under bpftime-run the outputs are equal.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;

use bpftime_tests::privilege::{require, Need};
use common::*;

#[test]
fn fd_access_modes_match_the_kernel() {
    if !require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let tmp = TempDir::new("fdmode");
    let client = gcc(tmp.path(), "sv_fdmode.c", "sv_fdmode", false, &["-pthread"]);
    let c = client.to_str().unwrap();
    let native = stdout_ok(
        &Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount -t bpf bpf /sys/fs/bpf && {c} /sys/fs/bpf"))
            .output()
            .unwrap(),
        "native client",
    );
    // The kernel's answers this test relies on (so that it cannot pass vacuously).
    for line in [
        "get_rdonly mode: 0",
        "get_rdonly update: -1",
        "get_rdonly lookup: 0",
        "get_wronly lookup: -1",
        "get_wronly get_next_key: -1",
        "id_rdonly delete: -1",
        "id_wronly update_batch: 0",
        "create_rdonly mode: 0",
        "arr_rdonly freeze: -1",
        "prog_get_rdonly mode: 2",
        "reuse null same number: 1",
        "reuse_null update: -22",
        "reuse_closed update: -9",
        "reuse rdonly same number: 1",
        "reuse_rdonly update: -1",
        "reuse_dup2 thread value: 9",
    ] {
        assert!(
            native.lines().any(|l| l == line),
            "kernel answer changed ({line}):\n{native}"
        );
    }
    let d = Daemon::start();
    let ours = stdout_ok(&d.run(&[c, "/sys/fs/bpf"]), "client under bpftime-run");
    assert_same_lines(&native, &ours, Some(&d));
}
