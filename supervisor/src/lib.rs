//! The supervisor: seccomp user notification, the daemon, and the handlers of the
//! emulated syscalls.
//!
//! - [`run`]: `bpftime-run` (fork, mount namespace, filter, hand the listener over, exec).
//! - [`daemon`]: the daemon (socket, notification threads, status, collection).
//! - [`call`]: what a handler receives and returns; [`registry`]: the objects.
//! - [`bpf`]: bpf(2), one module per command family; [`fsys`]: statfs/fstatfs/mount.
//! - [`nl`]: sendto/sendmsg/recvfrom/recvmsg on rtnetlink sockets (wiring of [`netlink`]).
//! - [`epoll`]: epoll_ctl on ring buffer map and perf event fds; [`perf_event`]:
//!   perf_event_open and perf's ioctls for BPF output events.
//! - [`btf`]: the BTF parser; [`sys`]: the kernel interfaces (their `unsafe` lives there).

pub mod bpf;
pub mod btf;
pub mod call;
pub mod daemon;
pub mod epoll;
pub mod fsys;
pub mod names;
pub mod netlink;
pub mod nl;
pub mod perf_event;
pub mod preflight;
pub mod proto;
pub mod registry;
pub mod run;
pub mod sys;
pub mod tasks;
pub mod top;

/// Sets up tracing from RUST_LOG (or `default` when unset), to stderr.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
