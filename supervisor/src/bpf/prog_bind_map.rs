//! BPF_PROG_BIND_MAP (`bpf_prog_bind_map`): the program keeps the map alive.
//! attr: prog_fd 0, map_fd 4, flags 8.

use super::Attr;
use crate::call::{Call, Reply};
use crate::registry::Kind;

pub fn prog_bind_map(call: &Call<'_>, a: &Attr) -> Reply {
    if a.u32(8) != 0 {
        return Reply::Errno(libc::EINVAL);
    }
    let prog = match call.object(a.i32(0), Kind::Prog, libc::EINVAL) {
        Ok(p) => p,
        Err(e) => return Reply::Errno(e),
    };
    let map = match call.object(a.i32(4), Kind::Map, libc::EINVAL) {
        Ok(m) => m,
        Err(e) => return Reply::Errno(e),
    };
    let mut maps = prog.as_prog().unwrap().maps.lock().unwrap();
    if !maps.iter().any(|m| m.id == map.id) {
        maps.push(map);
    }
    Reply::Value(0)
}
