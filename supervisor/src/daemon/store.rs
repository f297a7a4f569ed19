//! The registry as the FUSE bpffs sees it (`bpftime_fs::ObjectStore`): pins hold
//! objects, pinned maps read out as the kernel's debug dump.
//!
//! Contract (bpftime-fs): methods only take the registry mutex, which nobody holds
//! across a system call that could wait for the filesystem.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use bpftime_fs::{ObjKind, ObjRef, ObjectStore};

use super::Daemon;
use crate::btf::{kind, Btf};
use crate::registry::{Kind, Object};

/// The daemon's store for its bpffs instances.
pub struct Store {
    pub daemon: Weak<Daemon>,
}

/// Registry kind of a pinned object kind.
pub fn kind_of(k: ObjKind) -> Kind {
    match k {
        ObjKind::Map => Kind::Map,
        ObjKind::Prog => Kind::Prog,
        ObjKind::Link => Kind::Link,
        ObjKind::Btf => Kind::Btf,
    }
}

/// Pinned object kind of a registry kind (None: not a bpf object, never pinned).
pub fn obj_kind(k: Kind) -> Option<ObjKind> {
    Some(match k {
        Kind::Map => ObjKind::Map,
        Kind::Prog => ObjKind::Prog,
        Kind::Link => ObjKind::Link,
        Kind::Btf => ObjKind::Btf,
        Kind::PerfEvent => return None,
    })
}

impl Store {
    fn object(&self, obj: ObjRef) -> Option<Arc<Object>> {
        let d = self.daemon.upgrade()?;
        let r = d.registry.lock().unwrap().by_id(kind_of(obj.kind), obj.id);
        r
    }
}

impl ObjectStore for Store {
    fn dump(&self, obj: ObjRef) -> Result<Vec<u8>, i32> {
        let o = self.object(obj).ok_or(libc::ENOENT)?;
        let m = o.as_map().ok_or(libc::EIO)?;
        // The kernel shows only maps with BTF key and value types.
        let btf_obj = m.btf.as_ref().ok_or(libc::EIO)?;
        let btf = btf_obj.as_btf().unwrap();
        let a = m.map.attr().clone();
        if a.btf_key_type_id == 0 || a.btf_value_type_id == 0 {
            return Err(libc::EIO);
        }
        let mut out = String::from(
            "# WARNING!! The output is for debug purpose only\n# WARNING!! The output format will change\n",
        );
        let mut key: Option<Vec<u8>> = None;
        let mut next = vec![0u8; a.key_size as usize];
        let mut value = vec![0u8; m.map.sys_value_size()];
        while m.map.sys_get_next_key(key.as_deref(), &mut next).is_ok() {
            if m.map.sys_lookup(&next, &mut value, 0).is_ok() {
                let mut line = String::new();
                show(btf, a.btf_key_type_id, &next, &mut line);
                line.push_str(": ");
                show(
                    btf,
                    a.btf_value_type_id,
                    &value[..(a.value_size as usize).min(value.len())],
                    &mut line,
                );
                out.push_str(&line);
                out.push('\n');
            }
            key = Some(next.clone());
        }
        Ok(out.into_bytes())
    }

    fn pin_added(&self, obj: ObjRef) {
        if let (Some(d), Some(o)) = (self.daemon.upgrade(), self.object(obj)) {
            d.registry.lock().unwrap().hold(&o);
        }
    }

    fn pin_removed(&self, obj: ObjRef) {
        if let (Some(d), Some(o)) = (self.daemon.upgrade(), self.object(obj)) {
            d.registry.lock().unwrap().release(&o);
        }
    }
}

/// A value as the kernel's `btf_type_seq_show` prints it (ints in decimal, structs
/// and arrays in braces/brackets, the rest as hex bytes).
fn show(btf: &Btf, id: u32, data: &[u8], out: &mut String) {
    let Some(t) = btf.type_by_id(id) else {
        hex(data, out);
        return;
    };
    match t.kind {
        kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
            show(btf, t.size_type, data, out)
        }
        kind::INT | kind::ENUM | kind::ENUM64 => {
            let signed = t.kind == kind::INT && btf_int_signed(btf, id);
            let n = (t.size_type as usize).min(data.len()).min(8);
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&data[..n]);
            let u = u64::from_le_bytes(b);
            if signed && n > 0 {
                let shift = 64 - 8 * n as u32;
                let _ = write!(out, "{}", ((u << shift) as i64) >> shift);
            } else if t.size_type == 16 && data.len() >= 16 {
                let _ = write!(
                    out,
                    "{}",
                    u128::from_le_bytes(data[..16].try_into().unwrap())
                );
            } else {
                let _ = write!(out, "{u}");
            }
        }
        kind::PTR => {
            let n = data.len().min(8);
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&data[..n]);
            let _ = write!(out, "{:#x}", u64::from_le_bytes(b));
        }
        kind::ARRAY | kind::STRUCT | kind::UNION => {
            let elems = members(btf, id);
            let (open, close) = if t.kind == kind::ARRAY {
                ('[', ']')
            } else {
                ('{', '}')
            };
            out.push(open);
            for (i, (mid, off)) in elems.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let sz = btf.type_size(*mid).unwrap_or(0) as usize;
                let end = (off + sz).min(data.len());
                show(btf, *mid, data.get(*off..end).unwrap_or(&[]), out);
            }
            out.push(close);
        }
        _ => hex(data, out),
    }
}

fn hex(data: &[u8], out: &mut String) {
    for (i, b) in data.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
}

fn btf_int_signed(btf: &Btf, id: u32) -> bool {
    btf.int_encoding(id).is_some_and(|e| e & 1 != 0)
}

/// (type id, byte offset) of each member / element.
fn members(btf: &Btf, id: u32) -> Vec<(u32, usize)> {
    btf.members(id)
}
