//! {PROG,MAP,BTF,LINK}_GET_NEXT_ID and *_GET_FD_BY_ID (`bpf_obj_get_next_id`,
//! `bpf_*_get_fd_by_id`). attr: start_id|id 0, next_id 4, open_flags 8.

use super::{cmd, Attr};
use crate::call::{cap, Call, Reply};
use crate::registry::Kind;

fn kind_of(c: i32) -> Kind {
    match c {
        cmd::PROG_GET_NEXT_ID | cmd::PROG_GET_FD_BY_ID => Kind::Prog,
        cmd::MAP_GET_NEXT_ID | cmd::MAP_GET_FD_BY_ID => Kind::Map,
        cmd::BTF_GET_NEXT_ID | cmd::BTF_GET_FD_BY_ID => Kind::Btf,
        _ => Kind::Link,
    }
}

pub fn get_next_id(call: &Call<'_>, a: &Attr, c: i32) -> Reply {
    let creds = match call.creds() {
        Ok(c) => c,
        Err(e) => return Reply::Errno(e),
    };
    if a.u32(0) >= i32::MAX as u32 {
        return Reply::Errno(libc::EINVAL);
    }
    if !creds.has(cap::SYS_ADMIN) {
        return Reply::Errno(libc::EPERM);
    }
    let next = call
        .daemon
        .registry
        .lock()
        .unwrap()
        .next_id(kind_of(c), a.u32(0));
    match next {
        None => Reply::Errno(libc::ENOENT),
        Some(id) => match a.put_u32(call, 4, id) {
            Ok(()) => Reply::Value(0),
            Err(e) => Reply::Errno(e),
        },
    }
}

pub fn get_fd_by_id(call: &Call<'_>, a: &Attr, c: i32) -> Reply {
    const BPF_F_RDONLY: u32 = 1 << 3;
    const BPF_F_WRONLY: u32 = 1 << 4;
    const BPF_F_TOKEN_FD: u32 = 1 << 16;
    let kind = kind_of(c);
    let open_flags = a.u32(8);
    if kind != Kind::Link && open_flags & BPF_F_TOKEN_FD == 0 && a.i32(12) != 0 {
        return Reply::Errno(libc::EINVAL);
    }
    if open_flags & BPF_F_TOKEN_FD != 0 && kind != Kind::Link {
        return Reply::Errno(libc::EBADF);
    }
    let allowed = match kind {
        Kind::Map => BPF_F_RDONLY | BPF_F_WRONLY,
        _ => 0,
    };
    if open_flags & !allowed != 0 || open_flags == BPF_F_RDONLY | BPF_F_WRONLY {
        return Reply::Errno(libc::EINVAL);
    }
    let creds = match call.creds() {
        Ok(c) => c,
        Err(e) => return Reply::Errno(e),
    };
    if !creds.has(cap::SYS_ADMIN) {
        return Reply::Errno(libc::EPERM);
    }
    match call.daemon.registry.lock().unwrap().by_id(kind, a.u32(0)) {
        Some(obj) => super::obj_pin::shared_with_mode(obj, open_flags),
        None => Reply::Errno(libc::ENOENT),
    }
}
