//! fork(2), _exit(2) and signal dispositions for bpftime-run.

/// fork. The caller must be single-threaded (the child runs ordinary code until exec).
pub fn fork_single_threaded() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: bpftime-run calls this before starting any thread, so the child may run
    // ordinary (allocating, locking) code until exec.
    unsafe { nix::unistd::fork() }
}

/// Ends the calling (forked) process at once, without the parent's destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Ignores SIGINT and SIGQUIT (the terminal's signals go to the child, whose status
/// bpftime-run reports).
pub fn ignore_terminal_signals() {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}
