//! The supervisor: seccomp user notification, the daemon, and the handlers of the emulated syscalls.
