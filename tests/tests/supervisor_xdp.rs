//! The whole path: a libbpf loader inside a network namespace attaches an XDP program
//! with a bpf_link (BPF_LINK_CREATE) under bpftime-run; pings across a veth pair go
//! through bpftime's data plane (XDP_PASS reinjected, XDP_DROP dropped) and the
//! program's .bss counter counts them, as with the kernel. Closing the link detaches.

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use bpftime_tests::netns::VethPair;
use bpftime_tests::privilege::{require, Need};
use common::*;

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<std::process::ChildStdout>,
}

impl Client {
    fn spawn(mut cmd: Command) -> Client {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        Client { child, stdin, out }
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l.trim().to_string()
    }
    fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin.as_mut().unwrap(), "{cmd}").unwrap();
        self.line()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn ping_ok(pair: &VethPair, n: &str) -> bool {
    let ip = pair.ip_b.to_string();
    pair.a
        .command("ping", &["-c", n, "-i", "0.2", "-W", "1", &ip])
        .output()
        .unwrap()
        .status
        .success()
}

/// Runs the scenario with `cmd` (the client inside namespace b); returns what it saw.
fn scenario(pair: &VethPair, cmd: Command) -> Vec<String> {
    let mut c = Client::spawn(cmd);
    let mut seen = vec![c.line()];
    assert_eq!(c.line(), "ready", "client did not attach: {seen:?}");
    seen.push(format!("ping pass: {}", ping_ok(pair, "3")));
    let n: u64 = c
        .ask("count")
        .strip_prefix("packets ")
        .unwrap()
        .parse()
        .unwrap();
    seen.push(format!("counted >= 3: {}", n >= 3));
    seen.push(c.ask("drop"));
    seen.push(format!("ping drop: {}", ping_ok(pair, "2")));
    let m: u64 = c
        .ask("count")
        .strip_prefix("packets ")
        .unwrap()
        .parse()
        .unwrap();
    seen.push(format!("dropped counted: {}", m >= n + 2));
    c.ask("pass");
    drop(c);
    // Detached with the link: traffic flows again without any program.
    seen.push(format!("ping after detach: {}", ping_ok(pair, "1")));
    seen
}

#[test]
fn xdp_link_runs_in_userspace_like_the_kernel() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang, Need::Netns]) {
        return;
    }
    let tmp = TempDir::new("xdp");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let client = gcc(tmp.path(), "sv_xdp.c", "sv_xdp", false, &["-lbpf"]);
    let (obj, client) = (obj.to_str().unwrap(), client.to_str().unwrap());
    let pair = VethPair::new("sv_xdp").unwrap();
    pair.wait_up(Duration::from_secs(5)).unwrap();
    assert!(ping_ok(&pair, "1"), "the veth pair does not pass traffic");

    let kernel = scenario(&pair, pair.b.command(client, &[obj, &pair.if_b]));
    assert_eq!(kernel[2], "counted >= 3: true", "{kernel:?}");
    let d = Daemon::start();
    let run = bin("bpftime-run");
    let sock = d.socket.to_str().unwrap().to_string();
    let ours = scenario(
        &pair,
        pair.b.command(
            run.to_str().unwrap(),
            &["--socket", &sock, "--", client, obj, &pair.if_b],
        ),
    );
    assert_eq!(kernel, ours, "daemon log:\n{}", d.log());
    assert_eq!(
        d.wait_empty(Duration::from_secs(5)),
        (0, 0, 0, 0),
        "{}",
        d.status()
    );
    assert_eq!(
        d.status()["attachments"].as_array().map(|a| a.len()),
        Some(0)
    );
}
