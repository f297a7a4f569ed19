//! A BTF blob parser: header, string section and a walk of the type section with
//! the structural checks the kernel's `btf_parse` makes (enough to refuse garbage
//! with EINVAL and to answer `BPF_OBJ_GET_INFO_BY_FD` / `bpftool btf dump`). The
//! blob is kept verbatim.

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

fn inval(msg: impl Into<String>) -> BtfError {
    BtfError {
        errno: libc::EINVAL,
        msg: msg.into(),
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

impl Btf {
    /// Parses and checks `data`.
    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        if data.len() > MAX_SIZE {
            return Err(BtfError {
                errno: libc::E2BIG,
                msg: "btf too big".into(),
            });
        }
        if data.len() < 24 {
            return Err(inval("btf_header not found"));
        }
        let magic = u16::from_ne_bytes([data[0], data[1]]);
        if magic != MAGIC {
            return Err(inval("Invalid magic"));
        }
        if data[2] != 1 {
            return Err(BtfError {
                errno: libc::ENOTSUP,
                msg: "Unsupported version".into(),
            });
        }
        if data[3] != 0 {
            return Err(BtfError {
                errno: libc::ENOTSUP,
                msg: "Unsupported flags".into(),
            });
        }
        let hdr_len = u32_at(&data, 4) as usize;
        if hdr_len < 24 || hdr_len > data.len() {
            return Err(inval("Unsupported btf_header"));
        }
        if data[24..hdr_len].iter().any(|&b| b != 0) {
            return Err(BtfError {
                errno: libc::E2BIG,
                msg: "Unsupported btf_header".into(),
            });
        }
        let (type_off, type_len) = (u32_at(&data, 8) as usize, u32_at(&data, 12) as usize);
        let (str_off, str_len) = (u32_at(&data, 16) as usize, u32_at(&data, 20) as usize);
        let body = data.len() - hdr_len;
        if type_off % 4 != 0 {
            return Err(inval("Unaligned type_off"));
        }
        if type_off.checked_add(type_len).is_none_or(|e| e > body)
            || str_off.checked_add(str_len).is_none_or(|e| e > body)
        {
            return Err(inval("Invalid section offset/len"));
        }
        // Sections must not overlap and must cover the body without gaps (types first).
        if type_off != 0 || type_off + type_len > str_off || str_off + str_len != body {
            return Err(inval("Section overlap/gap"));
        }
        let str_start = hdr_len + str_off;
        if str_len == 0 || data[str_start] != 0 || data[str_start + str_len - 1] != 0 {
            return Err(inval("Invalid string section"));
        }
        let tstart = hdr_len + type_off;
        let tend = tstart + type_len;
        let mut types = Vec::new();
        let mut off = tstart;
        while off < tend {
            if off + 12 > tend {
                return Err(inval("Type section truncated"));
            }
            let name_off = u32_at(&data, off);
            let info = u32_at(&data, off + 4);
            let size_type = u32_at(&data, off + 8);
            let vlen = info & 0xffff;
            let k = (info >> 24) & 0x1f;
            let kflag = info >> 31 != 0;
            if info & 0x60ff_0000 != 0 {
                return Err(inval("Invalid btf_info"));
            }
            let extra = match k {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen as usize,
                kind::ENUM | kind::FUNC_PROTO => 8 * vlen as usize,
                _ => return Err(inval(format!("[{}] Invalid kind:{k}", types.len() + 1))),
            };
            if name_off as usize >= str_len {
                return Err(inval(format!(
                    "[{}] Invalid name_offset:{name_off}",
                    types.len() + 1
                )));
            }
            off += 12;
            if off + extra > tend {
                return Err(inval("Type section truncated"));
            }
            // Member / param / enum names must be valid string offsets too.
            let rec = match k {
                kind::STRUCT | kind::UNION | kind::ENUM64 => 12,
                kind::ENUM | kind::FUNC_PROTO => 8,
                _ => 0,
            };
            if rec != 0 {
                for i in 0..vlen as usize {
                    let no = u32_at(&data, off + i * rec);
                    if no as usize >= str_len {
                        return Err(inval(format!(
                            "[{}] Invalid member name_offset",
                            types.len() + 1
                        )));
                    }
                }
            }
            off += extra;
            types.push(Type {
                name_off,
                kind: k,
                vlen,
                kflag,
                size_type,
            });
        }
        let btf = Btf {
            data,
            types,
            str_start,
            str_len,
        };
        btf.check_refs()?;
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

    fn check_refs(&self) -> Result<(), BtfError> {
        let n = self.types.len() as u32;
        for (i, t) in self.types.iter().enumerate() {
            let id = i + 1;
            match t.kind {
                kind::PTR
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::VAR
                | kind::DECL_TAG
                | kind::TYPE_TAG
                | kind::FUNC
                    if t.size_type > n =>
                {
                    return Err(inval(format!("[{id}] Invalid type_id")));
                }
                _ => {}
            }
            match t.kind {
                kind::FUNC => {
                    let tgt = t.size_type as usize;
                    if tgt == 0 || self.types[tgt - 1].kind != kind::FUNC_PROTO {
                        return Err(inval(format!("[{id}] Invalid func_proto")));
                    }
                    if t.vlen > 2 {
                        return Err(inval(format!("[{id}] Invalid func linkage")));
                    }
                    if t.name_off == 0 {
                        return Err(inval(format!("[{id}] Invalid name")));
                    }
                }
                kind::TYPEDEF | kind::VAR | kind::DATASEC | kind::DECL_TAG if t.name_off == 0 => {
                    return Err(inval(format!("[{id}] Invalid name")));
                }
                _ => {}
            }
        }
        Ok(())
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
