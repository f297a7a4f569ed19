//! The verifier / BTF log as the kernel keeps it (`bpf_verifier_log`): attribute
//! checks, copy to the caller's buffer, `log_true_size`, ENOSPC on truncation.

use crate::call::Call;

/// The kernel's `bpf_verifier_log_attr_valid`.
pub fn attr_valid(level: u32, buf: u64, size: u32) -> bool {
    if level & !0xf != 0 {
        return false;
    }
    if (buf != 0) != (size != 0) {
        return false;
    }
    if buf != 0 && level == 0 {
        return false;
    }
    if size > u32::MAX >> 2 {
        return false;
    }
    true
}

/// Writes `text` (plus NUL) into the caller's log buffer when logging was asked for.
/// Returns the true size (bytes needed including the NUL), or ENOSPC/EFAULT.
pub fn write(call: &Call<'_>, level: u32, buf: u64, size: u32, text: &str) -> Result<u32, i32> {
    if level == 0 || buf == 0 {
        return Ok(0);
    }
    let need = text.len() as u32 + 1;
    let n = need.min(size) as usize;
    let mut out = Vec::with_capacity(n);
    if need <= size {
        out.extend_from_slice(text.as_bytes());
    } else if level & 8 != 0 {
        // BPF_LOG_FIXED: keep the beginning.
        out.extend_from_slice(&text.as_bytes()[..n - 1]);
    } else {
        // Rotating log (default since 6.4): keep the end.
        out.extend_from_slice(&text.as_bytes()[text.len() - (n - 1)..]);
    }
    out.push(0);
    call.write(buf, &out)?;
    if need > size {
        return Err(libc::ENOSPC);
    }
    Ok(need)
}
