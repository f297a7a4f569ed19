//! CPU affinity, the CPU a worker runs on and the CPU time it used
//! (`sched_setaffinity`, `sched_getcpu`, `pthread_getcpuclockid`).

use std::io;

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of the live set (cpu is bounded by the caller
    // to the online CPUs, far below CPU_SETSIZE).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a live cpu_set_t of the size passed; 0 = the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU the calling thread runs on now.
pub fn current() -> u32 {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    c.max(0) as u32
}

/// Number of online CPUs.
pub fn online() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time (user + system) used so far by the live thread `t`, in nanoseconds; 0 if it
/// cannot be read.
pub fn thread_cpu_ns(t: &std::thread::JoinHandle<()>) -> u64 {
    use std::os::unix::thread::JoinHandleExt;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the handle's thread has not been joined (we hold the handle), so its
    // pthread_t is valid; the call writes one clockid_t.
    if unsafe { libc::pthread_getcpuclockid(t.as_pthread_t(), &mut clock) } != 0 {
        return 0;
    }
    bpftime_vm::maps::shmem::clock_ns(clock)
}
