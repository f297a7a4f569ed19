//! BTF objects: a blob checked as the kernel's `btf_parse` checks it ([`check`]) and
//! kept verbatim, with the lookups the rest of bpftime needs (type sizes, members,
//! the `bpf_spin_lock` of a map value) and what `BPF_OBJ_GET_INFO_BY_FD` and
//! `bpftool btf dump` read.

mod check;

/// `BTF_MAGIC`.
pub const MAGIC: u16 = 0xeb9f;
/// The kernel's BTF_MAX_SIZE (16 MiB).
pub const MAX_SIZE: usize = 16 * 1024 * 1024;

/// BTF kinds (`BTF_KIND_*`).
pub mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// One type of the type section.
#[derive(Debug, Clone, Copy)]
pub struct Type {
    pub name_off: u32,
    pub kind: u32,
    pub vlen: u32,
    pub kflag: bool,
    /// `size` or `type`, depending on the kind.
    pub size_type: u32,
}

/// A parsed, checked BTF object.
#[derive(Debug)]
pub struct Btf {
    /// The blob as loaded.
    pub data: Vec<u8>,
    /// Types; id N is `types[N - 1]` (id 0 is void).
    pub types: Vec<Type>,
    str_start: usize,
    str_len: usize,
}

/// Why a blob was refused; `errno` is what BTF_LOAD returns, `msg` goes to the log.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct BtfError {
    pub errno: i32,
    pub msg: String,
}

/// The name the kernel looks for in map value types.
const SPIN_LOCK: &str = "bpf_spin_lock";

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

impl Btf {
    /// Parses and checks `data` (see [`check`]).
    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        Btf::parse_logged(data, &mut String::new())
    }

    /// [`Btf::parse`], appending the kernel's log text for this blob to `log`.
    pub fn parse_logged(data: Vec<u8>, log: &mut String) -> Result<Btf, BtfError> {
        if data.len() > MAX_SIZE {
            return Err(BtfError {
                errno: libc::E2BIG,
                msg: "btf too big".into(),
            });
        }
        let p = check::check(&data, log)?;
        let btf = Btf {
            data,
            types: p.types,
            str_start: p.str_start,
            str_len: p.str_len,
        };
        btf.check_spin_locks()?;
        Ok(btf)
    }

    /// The kernel parses the special fields of every struct at load time
    /// (`btf_parse_struct_metas`): a struct holding two `bpf_spin_lock`s makes the
    /// whole BTF fail with E2BIG.
    fn check_spin_locks(&self) -> Result<(), BtfError> {
        let has_lock_type = self
            .types
            .iter()
            .any(|t| t.kind == kind::STRUCT && self.str_at(t.name_off) == Some(SPIN_LOCK));
        if !has_lock_type {
            return Ok(());
        }
        for (i, t) in self.types.iter().enumerate() {
            if !matches!(t.kind, kind::STRUCT | kind::UNION) {
                continue;
            }
            let mut locks = Vec::new();
            self.spin_locks(i as u32 + 1, 0, 0, &mut locks);
            if locks.len() > 1 {
                return Err(BtfError {
                    errno: libc::E2BIG,
                    msg: format!("[{}] more than one bpf_spin_lock", i + 1),
                });
            }
        }
        Ok(())
    }

    /// Skip const/volatile/restrict/type tags. (Not typedefs: the kernel does not
    /// recognise a member whose type is a typedef of `struct bpf_spin_lock`.)
    fn skip_qualifiers(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.type_by_id(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG
                    ) =>
                {
                    id = t.size_type
                }
                _ => break,
            }
        }
        id
    }

    /// Byte offsets of the `struct bpf_spin_lock` members of struct/union `id`, in
    /// nested structs too (the kernel's `btf_find_field`), each offset + `base`.
    fn spin_locks(&self, id: u32, base: u32, depth: u32, out: &mut Vec<u32>) {
        for (m, off) in self.members(id) {
            let m = self.skip_qualifiers(m);
            let Some(t) = self.type_by_id(m) else {
                continue;
            };
            let at = base.saturating_add(off as u32);
            if t.kind == kind::STRUCT && self.str_at(t.name_off) == Some(SPIN_LOCK) {
                out.push(at);
            } else if matches!(t.kind, kind::STRUCT | kind::UNION) && depth < 8 {
                self.spin_locks(m, at, depth + 1, out);
            }
            if out.len() > 1 {
                return;
            }
        }
    }

    /// Offset of the `struct bpf_spin_lock` in a map value of type `id` (resolved
    /// through typedefs and qualifiers, as the kernel's `map_check_btf`), if any.
    /// A value that is itself a `struct bpf_spin_lock` has none (only members count).
    pub fn spin_lock_off(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let t = self.type_by_id(id)?;
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_type
                }
                kind::STRUCT | kind::UNION => {
                    let mut locks = Vec::new();
                    self.spin_locks(id, 0, 0, &mut locks);
                    return locks.first().copied();
                }
                _ => return None,
            }
        }
        None
    }

    /// Number of types (the highest valid type id).
    pub fn nr_types(&self) -> u32 {
        self.types.len() as u32
    }

    /// The type with id `id` (1-based).
    pub fn type_by_id(&self, id: u32) -> Option<&Type> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }

    /// The string at `off` in the string section.
    pub fn str_at(&self, off: u32) -> Option<&str> {
        let off = off as usize;
        if off >= self.str_len {
            return None;
        }
        let s = &self.data[self.str_start + off..self.str_start + self.str_len];
        let end = s.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&s[..end]).ok()
    }

    /// Size in bytes of type `id` (following modifiers and typedefs), as the
    /// kernel's `btf_type_id_size`; None for void/functions/unsized.
    pub fn type_size(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let t = self.type_by_id(id)?;
            match t.kind {
                kind::INT
                | kind::STRUCT
                | kind::UNION
                | kind::ENUM
                | kind::ENUM64
                | kind::FLOAT
                | kind::DATASEC => return Some(t.size_type),
                kind::PTR => return Some(8),
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_type
                }
                kind::ARRAY => {
                    let off = self.type_data_off(id)?;
                    let elem = u32_at(&self.data, off);
                    let nelems = u32_at(&self.data, off + 8);
                    return self.type_size(elem)?.checked_mul(nelems);
                }
                _ => return None,
            }
        }
        None
    }

    /// The encoding bits of an INT type (BTF_INT_SIGNED 1, CHAR 2, BOOL 4).
    pub fn int_encoding(&self, id: u32) -> Option<u32> {
        let t = self.type_by_id(id)?;
        if t.kind != kind::INT {
            return None;
        }
        let off = self.type_data_off(id)?;
        Some(u32_at(&self.data, off) >> 24 & 0xf)
    }

    /// (type id, byte offset) of each element of an ARRAY (at most 4096) or member of
    /// a STRUCT/UNION (bitfields at their containing byte).
    pub fn members(&self, id: u32) -> Vec<(u32, usize)> {
        let Some(t) = self.type_by_id(id) else {
            return vec![];
        };
        let Some(off) = self.type_data_off(id) else {
            return vec![];
        };
        match t.kind {
            kind::ARRAY => {
                let elem = u32_at(&self.data, off);
                let n = u32_at(&self.data, off + 8).min(4096);
                let sz = self.type_size(elem).unwrap_or(0) as usize;
                (0..n as usize).map(|i| (elem, i * sz)).collect()
            }
            kind::STRUCT | kind::UNION => (0..t.vlen as usize)
                .map(|i| {
                    let m = off + 12 * i;
                    let ty = u32_at(&self.data, m + 4);
                    let bits = u32_at(&self.data, m + 8);
                    let bit_off = if t.kflag { bits & 0xff_ffff } else { bits };
                    (ty, (bit_off / 8) as usize)
                })
                .collect(),
            _ => vec![],
        }
    }

    /// Offset in `data` of the kind-specific data following type `id`'s header.
    fn type_data_off(&self, id: u32) -> Option<usize> {
        let hdr_len = u32_at(&self.data, 4) as usize;
        let mut off = hdr_len + u32_at(&self.data, 8) as usize;
        for (i, t) in self.types.iter().enumerate() {
            off += 12;
            if i + 1 == id as usize {
                return Some(off);
            }
            off += match t.kind {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * t.vlen as usize,
                kind::ENUM | kind::FUNC_PROTO => 8 * t.vlen as usize,
                _ => 0,
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(types: &[u8], strs: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&MAGIC.to_ne_bytes());
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&24u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&(types.len() as u32).to_ne_bytes());
        v.extend_from_slice(&(types.len() as u32).to_ne_bytes());
        v.extend_from_slice(&(strs.len() as u32).to_ne_bytes());
        v.extend_from_slice(types);
        v.extend_from_slice(strs);
        v
    }

    fn int_type() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&1u32.to_ne_bytes()); // name "int"
        t.extend_from_slice(&(kind::INT << 24).to_ne_bytes());
        t.extend_from_slice(&4u32.to_ne_bytes());
        t.extend_from_slice(&((1u32 << 24) | 32).to_ne_bytes()); // signed, 32 bits
        t
    }

    #[test]
    fn parses_int() {
        let b = Btf::parse(blob(&int_type(), b"\0int\0")).unwrap();
        assert_eq!(b.nr_types(), 1);
        assert_eq!(b.str_at(b.types[0].name_off), Some("int"));
        assert_eq!(b.type_size(1), Some(4));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(Btf::parse(vec![0; 10]).unwrap_err().errno, libc::EINVAL);
        let mut bad = blob(&int_type(), b"\0int\0");
        bad[0] = 0;
        assert_eq!(Btf::parse(bad).unwrap_err().errno, libc::EINVAL);
        // Name offset out of the string section.
        let mut t = int_type();
        t[0] = 50;
        assert!(Btf::parse(blob(&t, b"\0int\0")).is_err());
        // Truncated type.
        assert!(Btf::parse(blob(&int_type()[..8], b"\0int\0")).is_err());
    }
}
