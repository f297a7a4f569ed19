//! The daemon's trace pipe: what `bpf_trace_printk` prints, in the lines of the
//! kernel's `/sys/kernel/tracing/trace_pipe`, in a FIFO beside the daemon's socket
//! (`<socket dir>/trace_pipe`; `bpftime tracelog` reads it).
//!
//! Like the kernel's, reading consumes and blocks while nothing is there: the daemon
//! holds the FIFO open for reading and writing, so a reader never sees end-of-file,
//! and lines wait in the pipe's buffer until read. When the buffer is full (nobody
//! reads), new lines are dropped and counted, as the kernel's ring drops old ones.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The file name of the FIFO in the daemon's socket directory.
pub const NAME: &str = "trace_pipe";

/// The FIFO and its writer.
pub struct TracePipe {
    path: PathBuf,
    file: File,
    dropped: AtomicU64,
}

/// Who printed: shown as the kernel shows the task a program ran in.
pub struct Task<'a> {
    pub comm: &'a str,
    pub pid: u32,
}

impl TracePipe {
    /// Create (or replace a stale) FIFO at `path` (`<socket dir>/trace_pipe` for the
    /// default socket, see `daemon::beside`), readable by root only.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let path = path.to_path_buf();
        let _ = std::fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)?;
        Ok(TracePipe {
            path,
            file,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines dropped because nobody read the pipe.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Write `msg` (a formatted `bpf_trace_printk` message) as one trace line.
    pub fn print(&self, task: &Task<'_>, msg: &str) {
        let line = line(task, cpu(), now(), msg);
        // One write of at most PIPE_BUF bytes is atomic: lines from concurrent
        // workers never interleave.
        let bytes = &line.as_bytes()[..line.len().min(libc::PIPE_BUF)];
        if (&self.file).write(bytes).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for TracePipe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The kernel's trace line for a `bpf_trace_printk` event:
/// `<comm right-aligned in 16>-<pid left-aligned in 7> [<cpu>] <flags> <secs>.<usecs>:
/// bpf_trace_printk: <message>` and a newline (after the message's own, if any).
fn line(task: &Task<'_>, cpu: u32, (secs, usecs): (u64, u32), msg: &str) -> String {
    // TASK_COMM_LEN: the kernel shows 15 bytes of the name.
    let comm: String = task.comm.chars().take(15).collect();
    format!(
        "{comm:>16}-{:<7} [{cpu:03}] ..... {secs:>5}.{usecs:06}: bpf_trace_printk: {msg}\n",
        task.pid
    )
}

fn cpu() -> u32 {
    nix::sched::sched_getcpu().map(|c| c as u32).unwrap_or(0)
}

/// The trace clock: time since boot (CLOCK_MONOTONIC, as the kernel's local clock).
fn now() -> (u64, u32) {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64, (t.tv_nsec() / 1000) as u32),
        Err(_) => (0, 0),
    }
}

/// The command name of process `pid` (`/proc/PID/comm`), or "?".
pub fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of a kernel trace_pipe line (taken from 6.18's output).
    #[test]
    fn line_layout_is_the_kernels() {
        let t = Task {
            comm: "trace_printk_matches",
            pid: 30960,
        };
        assert_eq!(
            line(&t, 0, (3607, 707437), "abc 5\n"),
            " trace_printk_ma-30960   [000] .....  3607.707437: bpf_trace_printk: abc 5\n\n"
        );
        let t = Task {
            comm: "ping",
            pid: 7,
        };
        assert_eq!(
            line(&t, 12, (5, 42), "x"),
            "            ping-7       [012] .....     5.000042: bpf_trace_printk: x\n"
        );
    }

    #[test]
    fn fifo_keeps_lines_until_read_and_drops_when_full() {
        let dir = std::env::temp_dir().join(format!("bt-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = TracePipe::create(&dir.join(NAME)).unwrap();
        let t = Task { comm: "t", pid: 1 };
        p.print(&t, "one");
        p.print(&t, "two");
        let mut r = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p.path())
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = std::io::Read::read(&mut r, &mut buf).unwrap();
        let s = String::from_utf8_lossy(&buf[..n]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(lines[0].ends_with(": bpf_trace_printk: one"), "{s}");
        assert!(lines[1].ends_with(": bpf_trace_printk: two"), "{s}");
        // Nobody reads: the pipe fills, then lines are dropped, never blocking.
        let long = "x".repeat(1000);
        for _ in 0..200 {
            p.print(&t, &long);
        }
        assert!(p.dropped() > 0);
        drop(p);
        assert!(!dir.join(NAME).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
