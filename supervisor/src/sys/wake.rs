//! A signal whose only effect is to interrupt a blocking syscall of one daemon thread
//! (a notification thread blocked in SECCOMP_IOCTL_NOTIF_RECV, which nothing else can
//! wake when the last task using the filter is gone).

use nix::sys::pthread::Pthread;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};

const WAKE: Signal = Signal::SIGUSR2;

extern "C" fn nothing(_: libc::c_int) {}

/// Installs the handler (once per process): no SA_RESTART, so the interrupted call
/// returns EINTR.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let a = SigAction::new(
            SigHandler::Handler(nothing),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        if let Err(e) = unsafe { nix::sys::signal::sigaction(WAKE, &a) } {
            tracing::warn!("installing the wake-up signal handler: {e}");
        }
    });
}

/// The calling thread, as [`interrupt`] names it.
pub fn this_thread() -> Pthread {
    nix::sys::pthread::pthread_self()
}

/// Interrupts thread `t`'s blocking call (the thread must still exist).
pub fn interrupt(t: Pthread) {
    let _ = nix::sys::pthread::pthread_kill(t, WAKE);
}
