//! What a hostile loader must not be able to do to the root daemon (issue: security
//! findings), each compared with the kernel on this machine where the kernel has an
//! answer: a test run that cannot be stopped.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bpftime_tests::privilege::{require, Need};
use common::*;

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
        let mut child = d
            .run_cmd(&[client, mode, "alarm"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{mode}: the test run ignored SIGALRM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ours = stdout_ok(
            &child.wait_with_output().unwrap(),
            "test run + SIGALRM (bpftime)",
        );
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
