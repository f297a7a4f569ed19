//! Perf buffers, kernel-differential: one object (a PERF_EVENT_ARRAY written with
//! bpf_perf_event_output from XDP test runs) and one libbpf `perf_buffer` consumer,
//! natively and under bpftime-run: the same helper return values for good and bad
//! flags, the same samples (with packet bytes), the same lost count on a full ring.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::process::Command;

use bpftime_tests::privilege::{require, Need};
use common::*;

#[test]
fn perf_buffers_match_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang]) {
        return;
    }
    let tmp = TempDir::new("perfbuf");
    let obj = clang_bpf(tmp.path(), "sv_perfbuf.bpf.c", "sv_perfbuf.bpf.o");
    let client = gcc(tmp.path(), "sv_perfbuf.c", "sv_perfbuf", false, &["-lbpf"]);
    let (c, o) = (client.to_str().unwrap(), obj.to_str().unwrap());
    let native = stdout_ok(&Command::new(c).arg(o).output().unwrap(), "native client");
    // The kernel's answers this test relies on (so that it cannot pass vacuously).
    for line in [
        "syscall lookup: -524",
        "update with a non-perf fd: -9",
        "output before any reader: -2",
        "index 1 (another cpu): -95",
        "index past the array: -7",
        "unknown flag bit: -22",
        "more packet than there is: -14",
        "  sample seq 0001 size 12 len 64 pkt a5 a5 a5 a5",
        "full ring: 103 samples, 198 lost",
    ] {
        assert!(
            native.lines().any(|l| l == line),
            "kernel answer changed ({line}):\n{native}"
        );
    }
    let d = Daemon::start();
    let ours = stdout_ok(&d.run(&[c, o]), "client under bpftime-run");
    assert_eq!(native, ours, "{}", d.log());
}
