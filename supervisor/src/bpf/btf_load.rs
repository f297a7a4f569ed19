//! BPF_BTF_LOAD (`bpf_btf_load`): parse and check the blob, keep it.
//! attr: btf 0, btf_log_buf 8, btf_size 16, btf_log_size 20, btf_log_level 24,
//! btf_log_true_size 28, btf_flags 32, btf_token_fd 36.

use std::sync::Arc;

use super::Attr;
use crate::btf::{self, Btf};
use crate::call::{Call, Reply};
use crate::registry::{Body, Kind};
use crate::sys::memfd;

pub fn btf_load(call: &Call<'_>, a: &Attr) -> Reply {
    match load(call, a) {
        Ok(r) => r,
        Err(e) => Reply::Errno(e),
    }
}

fn load(call: &Call<'_>, a: &Attr) -> Result<Reply, i32> {
    const BPF_F_TOKEN_FD: u32 = 1 << 16;
    let flags = a.u32(32);
    if flags & !BPF_F_TOKEN_FD != 0 {
        return Err(libc::EINVAL);
    }
    if flags & BPF_F_TOKEN_FD != 0 {
        return Err(super::token::refuse(call, a.i32(36)));
    }
    let creds = call.creds()?;
    if !creds.bpf_capable() {
        return Err(libc::EPERM);
    }
    let (log_buf, log_size, log_level) = (a.u64(8), a.u32(20), a.u32(24));
    let size = a.u32(16) as usize;
    if size > btf::MAX_SIZE {
        return Err(libc::E2BIG);
    }
    if !super::log::attr_valid(log_level, log_buf, log_size) {
        return Err(libc::EINVAL);
    }
    let data = call.read(a.u64(0), size)?;
    // The kernel's text for this blob: a log too small for it is ENOSPC, whether the
    // blob is good or not (finalize_log overrides the result).
    let mut text = String::new();
    let parsed = Btf::parse_logged(data, &mut text);
    let true_size = super::log::write(call, log_level, log_buf, log_size, &text);
    if a.size >= 32 && log_level != 0 {
        a.put_u32(call, 28, text.len() as u32 + 1)?;
    }
    true_size?;
    let btf = match parsed {
        Ok(b) => b,
        Err(e) => {
            call.trace(|| format!("  BTF refused: {}", e.msg));
            return Err(e.errno);
        }
    };
    let handle = memfd::create(Kind::Btf.memfd_name())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    let obj = call
        .daemon
        .registry
        .lock()
        .unwrap()
        .insert(Kind::Btf, handle, Body::Btf(Arc::new(btf)), creds.uid)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    Ok(Reply::Object(obj))
}
