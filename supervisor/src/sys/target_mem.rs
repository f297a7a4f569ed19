//! The target's memory through process_vm_readv / process_vm_writev: read once,
//! act on the copy. A bad pointer is EFAULT, never a daemon fault.

/// Reads `len` bytes at `addr` of thread `tid`'s address space.
pub fn read(tid: u32, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    if len == 0 {
        return Ok(Vec::new());
    }
    read_regions(tid, &[(addr, len)])?.pop().ok_or(libc::EFAULT)
}

/// Reads up to 4 regions of thread `tid` in one call; returns those read whole, in
/// order, stopping at the first that is not (the kernel stops there too). Err only
/// when nothing at all could be read.
pub fn read_regions(tid: u32, regions: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, i32> {
    assert!(regions.len() <= 4);
    let mut bufs: Vec<Vec<u8>> = regions.iter().map(|&(_, len)| vec![0u8; len]).collect();
    let local: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let remote: Vec<libc::iovec> = regions
        .iter()
        .map(|&(addr, len)| libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    // SAFETY: `local` describes `bufs`, each writable for its length; the remote
    // iovecs are only interpreted by the kernel in the other process.
    let n = unsafe {
        libc::process_vm_readv(
            tid as libc::pid_t,
            local.as_ptr(),
            local.len() as libc::c_ulong,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    if n < 0 {
        let e = super::errno();
        return Err(if e == libc::ESRCH {
            libc::ESRCH
        } else {
            libc::EFAULT
        });
    }
    let mut left = n as usize;
    let whole = bufs
        .iter()
        .take_while(|b| {
            let ok = left >= b.len();
            left = left.saturating_sub(b.len());
            ok
        })
        .count();
    bufs.truncate(whole);
    Ok(bufs)
}

/// Writes `data` at `addr` of thread `tid`'s address space.
pub fn write(tid: u32, addr: u64, data: &[u8]) -> Result<(), i32> {
    if data.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data`, readable for its length; the kernel only
    // reads from it. The remote side is checked by the kernel.
    let n = unsafe { libc::process_vm_writev(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 || n as usize != data.len() {
        return Err(libc::EFAULT);
    }
    Ok(())
}

/// Reads a NUL-terminated string of at most `max` bytes (without the NUL);
/// ENAMETOOLONG when no NUL is found within `max`.
pub fn read_cstr(tid: u32, addr: u64, max: usize) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut a = addr;
    while out.len() < max {
        // Read up to the end of the current page so a string near an unmapped page works.
        let page_left = 4096 - (a as usize & 4095);
        let chunk = page_left.min(max - out.len());
        let bytes = read(tid, a, chunk)?;
        if let Some(p) = bytes.iter().position(|&b| b == 0) {
            out.extend_from_slice(&bytes[..p]);
            return Ok(out);
        }
        out.extend_from_slice(&bytes);
        a += chunk as u64;
    }
    Err(libc::ENAMETOOLONG)
}
