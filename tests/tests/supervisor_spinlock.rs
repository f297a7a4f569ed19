//! Maps whose BTF value type holds a `struct bpf_spin_lock`: which map types and
//! layouts MAP_CREATE accepts (a BTF with two locks in one struct is refused at
//! BTF_LOAD), and BPF_F_LOCK lookups, updates and lookup-and-delete on them. A C
//! client builds the BTF by hand and runs the same calls natively and under
//! bpftime-run; the outputs must be equal.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;

use bpftime_tests::privilege::{require, Need};
use common::*;

#[test]
fn spin_lock_maps_match_the_kernel() {
    if !require(&[Need::Root, Need::Bpf]) {
        return;
    }
    let tmp = TempDir::new("spinlock");
    let client = gcc(tmp.path(), "sv_spinlock.c", "sv_spinlock", false, &[]);
    let native = stdout_ok(&Command::new(&client).output().unwrap(), "native client");
    // The kernel facts the table relies on.
    for fact in [
        "btf with two locks in a struct: -7",
        "create hash with lock: 0",
        "create lru_hash with lock: -95",
        "hash lookup F_LOCK: 0 cnt 7 lock 0",
        "typedef update F_LOCK: -22",
        "nested update F_LOCK: 0",
        "plain update F_LOCK: -22",
    ] {
        assert!(
            native.contains(fact),
            "kernel answer changed ({fact}):\n{native}"
        );
    }
    let d = Daemon::start();
    let ours = stdout_ok(
        &d.run(&[client.to_str().unwrap()]),
        "client under bpftime-run",
    );
    assert_same_lines(&native, &ours, Some(&d));
}
