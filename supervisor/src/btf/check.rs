//! The kernel's `btf_parse` checks, in its order, with its errnos and its log text:
//! the header and section layout (`btf_parse_hdr`, `btf_check_sec_info`), the string
//! section, each type's own fields (`btf_check_all_metas`: one log line per type, as
//! the kernel prints them), then what types refer to (`btf_check_all_types`: existing
//! targets, sizes, member layout, loops) and type tag chains. A loader sees the same
//! errno and, for a log buffer too small for the kernel's text, the same ENOSPC.

use super::{kind, BtfError, Type};

const E2BIG: i32 = libc::E2BIG;
const EINVAL: i32 = libc::EINVAL;
/// The kernel's internal ENOTSUPP (not EOPNOTSUPP).
const ENOTSUPP: i32 = 524;
const BTF_MAX_TYPE: u32 = 0xfffff;
const BTF_MAX_NAME_OFFSET: u32 = 0xffffff;
const KSYM_NAME_LEN: usize = 512;
const MAX_RESOLVE_DEPTH: u32 = 32;

/// What the checks found in a blob they accept.
pub(super) struct Parsed {
    pub types: Vec<Type>,
    pub str_start: usize,
    pub str_len: usize,
}

/// The copied `struct btf_header` (bytes past `hdr_len` read as zero).
struct Hdr {
    magic: u16,
    version: u8,
    flags: u8,
    hdr_len: u32,
    type_off: u32,
    type_len: u32,
    str_off: u32,
    str_len: u32,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

fn err(errno: i32, msg: String) -> BtfError {
    BtfError { errno, msg }
}

fn roundup_bytes(bits: u64) -> u64 {
    bits.div_ceil(8)
}

/// The kernel's isalpha over Latin-1.
fn alpha(c: u8) -> bool {
    c.is_ascii_alphabetic() || (0xc0..=0xd6).contains(&c) || (0xd8..=0xf6).contains(&c) || c >= 0xf8
}

/// `btf_name_valid_identifier`.
fn ident(s: &[u8]) -> bool {
    let Some((&first, rest)) = s.split_first() else {
        return false;
    };
    s.len() <= KSYM_NAME_LEN
        && (alpha(first) || first == b'_' || first == b'.')
        && rest
            .iter()
            .all(|&c| alpha(c) || c.is_ascii_digit() || c == b'_' || c == b'.')
}

/// `btf_name_valid_section`.
fn section(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= KSYM_NAME_LEN
        && s.iter().all(|&c| (0x20..=0x7e).contains(&c) || c >= 0xa0)
}

fn kind_name(k: u32) -> &'static str {
    const N: [&str; 20] = [
        "UNKN",
        "INT",
        "PTR",
        "ARRAY",
        "STRUCT",
        "UNION",
        "ENUM",
        "FWD",
        "TYPEDEF",
        "VOLATILE",
        "CONST",
        "RESTRICT",
        "FUNC",
        "FUNC_PROTO",
        "VAR",
        "DATASEC",
        "FLOAT",
        "DECL_TAG",
        "TYPE_TAG",
        "ENUM64",
    ];
    N.get(k as usize).copied().unwrap_or("UNKN")
}

/// Kinds whose types exist only in the source (not as a value's type).
fn source_only(k: u32) -> bool {
    matches!(k, kind::VAR | kind::DECL_TAG | kind::DATASEC)
}

fn modifier(k: u32) -> bool {
    matches!(
        k,
        kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG
    )
}

/// Extra bytes each kind's record takes after the 12-byte header.
fn extra(t: &Type) -> usize {
    match t.kind {
        kind::INT | kind::VAR | kind::DECL_TAG => 4,
        kind::ARRAY => 12,
        kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * t.vlen as usize,
        kind::ENUM | kind::FUNC_PROTO => 8 * t.vlen as usize,
        _ => 0,
    }
}

struct Checker<'a> {
    d: &'a [u8],
    log: String,
    str_start: usize,
    str_len: usize,
    types: Vec<Type>,
    /// Offset in `d` of each type's extra data.
    data_at: Vec<usize>,
    /// Resolution state per type id: 0 not yet, 1 in progress, 2 done.
    state: Vec<u8>,
}

impl Checker<'_> {
    fn str_bytes(&self, off: u32) -> &[u8] {
        let off = off as usize;
        if off >= self.str_len {
            return &[];
        }
        let s = &self.d[self.str_start + off..self.str_start + self.str_len];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    }
    fn name(&self, off: u32) -> String {
        if off == 0 {
            "(anon)".into()
        } else {
            String::from_utf8_lossy(self.str_bytes(off)).into_owned()
        }
    }
    fn ty(&self, id: u32) -> Option<&Type> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }
    fn at(&self, id: u32, i: usize) -> u32 {
        u32_at(self.d, self.data_at[id as usize - 1] + i)
    }
    /// The `i`th 12-byte record after type `id` (a member, a DATASEC entry).
    fn rec12(&self, id: u32, i: usize) -> (u32, u32, u32) {
        (
            self.at(id, 12 * i),
            self.at(id, 12 * i + 4),
            self.at(id, 12 * i + 8),
        )
    }

    /// The kind's details as `btf_verifier_log_type` prints them.
    fn details(&self, id: u32, t: &Type, meta_ok: bool) -> String {
        match t.kind {
            kind::INT if meta_ok => {
                let v = self.at(id, 0);
                let enc = match v >> 24 & 0xf {
                    0 => "(none)",
                    1 => "SIGNED",
                    2 => "CHAR",
                    4 => "BOOL",
                    _ => "UNKN",
                };
                format!(
                    "size={} bits_offset={} nr_bits={} encoding={enc}",
                    t.size_type,
                    v >> 16 & 0xff,
                    v & 0xff
                )
            }
            kind::PTR
            | kind::TYPEDEF
            | kind::VOLATILE
            | kind::CONST
            | kind::RESTRICT
            | kind::TYPE_TAG
            | kind::FUNC => format!("type_id={}", t.size_type),
            kind::ARRAY if meta_ok => format!(
                "type_id={} index_type_id={} nr_elems={}",
                self.at(id, 0),
                self.at(id, 4),
                self.at(id, 8)
            ),
            kind::STRUCT | kind::UNION | kind::ENUM | kind::ENUM64 | kind::DATASEC => {
                format!("size={} vlen={}", t.size_type, t.vlen)
            }
            kind::FWD => if t.kflag { "union" } else { "struct" }.into(),
            kind::FLOAT => format!("size={}", t.size_type),
            kind::VAR if meta_ok => format!("type_id={} linkage={}", t.size_type, self.at(id, 0)),
            kind::DECL_TAG if meta_ok => {
                format!(
                    "type={} component_idx={}",
                    t.size_type,
                    self.at(id, 0) as i32
                )
            }
            kind::FUNC_PROTO if meta_ok => {
                let n = t.vlen as usize;
                let args = if n == 0 {
                    "void".to_string()
                } else {
                    (0..n)
                        .map(|i| {
                            let (no, ty) = (self.at(id, 8 * i), self.at(id, 8 * i + 4));
                            if i == n - 1 && ty == 0 {
                                "vararg".to_string()
                            } else {
                                format!("{ty} {}", String::from_utf8_lossy(self.str_bytes(no)))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("return={} args=({args})", t.size_type)
            }
            _ => String::new(),
        }
    }

    /// `btf_verifier_log_type`: the type's line, then `msg`, as an error or not.
    fn log_type(&mut self, id: u32, t: &Type, meta_ok: bool, msg: Option<&str>) {
        let det = self.details(id, t, meta_ok);
        let name = self.name(t.name_off);
        let sep = if det.is_empty() { "" } else { " " };
        self.log
            .push_str(&format!("[{id}] {} {name}{sep}{det}", kind_name(t.kind)));
        if let Some(m) = msg {
            self.log.push(' ');
            self.log.push_str(m);
        }
        self.log.push('\n');
    }

    fn type_err(&mut self, id: u32, t: &Type, meta_ok: bool, errno: i32, msg: &str) -> BtfError {
        self.log_type(id, t, meta_ok, Some(msg));
        err(errno, format!("[{id}] {msg}"))
    }

    /// `btf_verifier_log_basic`: the line without details.
    fn basic_err(&mut self, id: u32, t: &Type, msg: String) -> BtfError {
        let name = self.name(t.name_off);
        self.log
            .push_str(&format!("[{id}] {} {name} {msg}\n", kind_name(t.kind)));
        err(EINVAL, format!("[{id}] {msg}"))
    }

    /// `btf_verifier_log_member` (and the vsi form for DATASEC).
    fn member_line(&mut self, t: &Type, m: (u32, u32, u32), msg: Option<&str>) {
        let (no, ty, off) = m;
        let line = if t.kind == kind::DATASEC {
            format!("\t type_id={no} offset={ty} size={off}")
        } else if t.kflag {
            format!(
                "\t{} type_id={ty} bitfield_size={} bits_offset={}",
                self.name(no),
                off >> 24,
                off & 0xff_ffff
            )
        } else {
            format!("\t{} type_id={ty} bits_offset={off}", self.name(no))
        };
        self.log.push_str(&line);
        if let Some(m) = msg {
            self.log.push(' ');
            self.log.push_str(m);
        }
        self.log.push('\n');
    }

    fn member_err(&mut self, id: u32, t: &Type, m: (u32, u32, u32), msg: &str) -> BtfError {
        self.member_line(t, m, Some(msg));
        err(EINVAL, format!("[{id}] {msg}"))
    }

    /// One type's own fields (`btf_check_meta` and the kind's `check_meta`); `left`
    /// is what remains of the type section after its 12-byte header.
    fn check_meta(&mut self, id: u32, t: &Type, left: usize) -> Result<(), BtfError> {
        let name = self.str_bytes(t.name_off).to_vec();
        let need = extra(t);
        let short =
            |c: &mut Self| c.basic_err(id, t, format!("meta_left:{left} meta_needed:{need}"));
        let bad_kflag = "Invalid btf_info kind_flag";
        match t.kind {
            kind::INT => {
                if left < 4 {
                    return Err(short(self));
                }
                if t.vlen != 0 {
                    return Err(self.type_err(id, t, true, EINVAL, "vlen != 0"));
                }
                if t.kflag {
                    return Err(self.type_err(id, t, true, EINVAL, bad_kflag));
                }
                let v = self.at(id, 0);
                if v & 0xf000_0000 != 0 {
                    return Err(self.basic_err(id, t, format!("Invalid int_data:{v:x}")));
                }
                let bits = (v & 0xff) + (v >> 16 & 0xff);
                if bits > 128 {
                    return Err(self.type_err(id, t, true, EINVAL, "nr_bits exceeds 128"));
                }
                if roundup_bytes(bits as u64) > t.size_type as u64 {
                    return Err(self.type_err(id, t, true, EINVAL, "nr_bits exceeds type_size"));
                }
                if !matches!(v >> 24 & 0xf, 0 | 1 | 2 | 4) {
                    return Err(self.type_err(id, t, true, ENOTSUPP, "Unsupported encoding"));
                }
            }
            kind::PTR
            | kind::CONST
            | kind::VOLATILE
            | kind::RESTRICT
            | kind::TYPEDEF
            | kind::TYPE_TAG => {
                if t.vlen != 0 {
                    return Err(self.type_err(id, t, true, EINVAL, "vlen != 0"));
                }
                if t.kflag && t.kind != kind::TYPE_TAG {
                    return Err(self.type_err(id, t, true, EINVAL, bad_kflag));
                }
                if t.size_type > BTF_MAX_TYPE {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid type_id"));
                }
                let ok = match t.kind {
                    kind::TYPEDEF => ident(&name),
                    kind::TYPE_TAG => !name.is_empty(),
                    _ => t.name_off == 0,
                };
                if !ok {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                }
            }
            kind::FWD => {
                if t.vlen != 0 {
                    return Err(self.type_err(id, t, true, EINVAL, "vlen != 0"));
                }
                if t.size_type != 0 {
                    return Err(self.type_err(id, t, true, EINVAL, "type != 0"));
                }
                if !ident(&name) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                }
            }
            kind::ARRAY => {
                if left < 12 {
                    return Err(short(self));
                }
                let msg = if t.name_off != 0 {
                    Some("Invalid name")
                } else if t.vlen != 0 {
                    Some("vlen != 0")
                } else if t.kflag {
                    Some(bad_kflag)
                } else if t.size_type != 0 {
                    Some("size != 0")
                } else if !(1..=BTF_MAX_TYPE).contains(&self.at(id, 0)) {
                    Some("Invalid elem")
                } else if !(1..=BTF_MAX_TYPE).contains(&self.at(id, 4)) {
                    Some("Invalid index")
                } else {
                    None
                };
                if let Some(m) = msg {
                    return Err(self.type_err(id, t, true, EINVAL, m));
                }
            }
            kind::STRUCT | kind::UNION => {
                if left < need {
                    return Err(short(self));
                }
                if t.name_off != 0 && !ident(&name) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                }
                self.log_type(id, t, true, None);
                let mut last = 0u32;
                for i in 0..t.vlen as usize {
                    let m = self.rec12(id, i);
                    let (no, ty, raw) = m;
                    if no > BTF_MAX_NAME_OFFSET || no as usize >= self.str_len {
                        self.log
                            .push_str(&format!("\tInvalid member name_offset:{no}"));
                        return Err(err(EINVAL, format!("[{id}] Invalid member name_offset")));
                    }
                    if no != 0 && !ident(self.str_bytes(no)) {
                        return Err(self.member_err(id, t, m, "Invalid name"));
                    }
                    if ty == 0 || ty > BTF_MAX_TYPE {
                        return Err(self.member_err(id, t, m, "Invalid type_id"));
                    }
                    let off = if t.kflag { raw & 0xff_ffff } else { raw };
                    if t.kind == kind::UNION && off != 0 {
                        return Err(self.member_err(id, t, m, "Invalid member bits_offset"));
                    }
                    if off < last {
                        return Err(self.member_err(id, t, m, "Invalid member bits_offset"));
                    }
                    if roundup_bytes(off as u64) > t.size_type as u64 {
                        return Err(self.member_err(
                            id,
                            t,
                            m,
                            "Member bits_offset exceeds its struct size",
                        ));
                    }
                    self.member_line(t, m, None);
                    last = off;
                }
                return Ok(());
            }
            kind::ENUM | kind::ENUM64 => {
                if left < need {
                    return Err(short(self));
                }
                if t.size_type > 8 || !t.size_type.is_power_of_two() {
                    return Err(self.type_err(id, t, true, EINVAL, "Unexpected size"));
                }
                if t.name_off != 0 && !ident(&name) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                }
                self.log_type(id, t, true, None);
                let rec = if t.kind == kind::ENUM { 8 } else { 12 };
                for i in 0..t.vlen as usize {
                    let no = self.at(id, rec * i);
                    if no > BTF_MAX_NAME_OFFSET || no as usize >= self.str_len {
                        self.log.push_str(&format!("\tInvalid name_offset:{no}"));
                        return Err(err(EINVAL, format!("[{id}] Invalid name_offset")));
                    }
                    if no == 0 || !ident(self.str_bytes(no)) {
                        return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                    }
                    let val = if t.kind == kind::ENUM {
                        let v = self.at(id, rec * i + 4);
                        if t.kflag {
                            (v as i32).to_string()
                        } else {
                            v.to_string()
                        }
                    } else {
                        let v = (self.at(id, rec * i + 8) as u64) << 32
                            | self.at(id, rec * i + 4) as u64;
                        if t.kflag {
                            (v as i64).to_string()
                        } else {
                            v.to_string()
                        }
                    };
                    let n = self.name(no);
                    self.log.push_str(&format!("\t{n} val={val}\n"));
                }
                return Ok(());
            }
            kind::FUNC_PROTO => {
                if left < need {
                    return Err(short(self));
                }
                if t.name_off != 0 {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                }
                if t.kflag {
                    return Err(self.type_err(id, t, true, EINVAL, bad_kflag));
                }
            }
            kind::FUNC => {
                if !ident(&name) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                }
                if t.vlen > 1 {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid func linkage"));
                }
                if t.kflag {
                    return Err(self.type_err(id, t, true, EINVAL, bad_kflag));
                }
            }
            kind::VAR => {
                if left < 4 {
                    return Err(short(self));
                }
                let msg = if t.vlen != 0 {
                    Some("vlen != 0")
                } else if t.kflag {
                    Some(bad_kflag)
                } else if !ident(&name) {
                    Some("Invalid name")
                } else if t.size_type == 0 || t.size_type > BTF_MAX_TYPE {
                    Some("Invalid type_id")
                } else if self.at(id, 0) > 1 {
                    Some("Linkage not supported")
                } else {
                    None
                };
                if let Some(m) = msg {
                    return Err(self.type_err(id, t, true, EINVAL, m));
                }
            }
            kind::DATASEC => {
                if left < need {
                    return Err(short(self));
                }
                if t.size_type == 0 {
                    return Err(self.type_err(id, t, true, EINVAL, "size == 0"));
                }
                if t.kflag {
                    return Err(self.type_err(id, t, true, EINVAL, bad_kflag));
                }
                if !section(&name) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid name"));
                }
                self.log_type(id, t, true, None);
                let (mut end, mut sum) = (0u64, 0u64);
                for i in 0..t.vlen as usize {
                    let v = self.rec12(id, i);
                    let (ty, off, size) = (v.0 as u64, v.1 as u64, v.2 as u64);
                    let tsize = t.size_type as u64;
                    let msg = if ty == 0 || ty > BTF_MAX_TYPE as u64 {
                        Some("Invalid type_id")
                    } else if off < end || off >= tsize {
                        Some("Invalid offset")
                    } else if size == 0 || size > tsize {
                        Some("Invalid size")
                    } else if off + size > tsize {
                        Some("Invalid offset+size")
                    } else {
                        None
                    };
                    if let Some(m) = msg {
                        return Err(self.member_err(id, t, v, m));
                    }
                    self.member_line(t, v, None);
                    end = off + size;
                    sum += size;
                }
                if sum > t.size_type as u64 {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid btf_info size"));
                }
                return Ok(());
            }
            kind::FLOAT => {
                let msg = if t.vlen != 0 {
                    Some("vlen != 0")
                } else if t.kflag {
                    Some(bad_kflag)
                } else if !matches!(t.size_type, 2 | 4 | 8 | 12 | 16) {
                    Some("Invalid type_size")
                } else {
                    None
                };
                if let Some(m) = msg {
                    return Err(self.type_err(id, t, true, EINVAL, m));
                }
            }
            kind::DECL_TAG => {
                if left < 4 {
                    return Err(short(self));
                }
                let msg = if name.is_empty() {
                    Some("Invalid value")
                } else if t.vlen != 0 {
                    Some("vlen != 0")
                } else if (self.at(id, 0) as i32) < -1 {
                    Some("Invalid component_idx")
                } else {
                    None
                };
                if let Some(m) = msg {
                    return Err(self.type_err(id, t, true, EINVAL, m));
                }
            }
            _ => unreachable!("kind checked by the caller"),
        }
        self.log_type(id, t, true, None);
        Ok(())
    }

    /// Follows typedefs and qualifiers from `id` (at most 32 links).
    fn skip_mods(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_RESOLVE_DEPTH {
            match self.ty(id) {
                Some(t) if modifier(t.kind) => id = t.size_type,
                _ => break,
            }
        }
        id
    }

    /// Size of a resolved type (`btf_type_id_size`); None for void and kinds without one.
    fn size_of(&self, id: u32) -> Option<u64> {
        let id = self.skip_mods(id);
        let t = self.ty(id)?;
        match t.kind {
            kind::INT
            | kind::ENUM
            | kind::ENUM64
            | kind::FLOAT
            | kind::STRUCT
            | kind::UNION
            | kind::DATASEC => Some(t.size_type as u64),
            kind::PTR => Some(8),
            kind::ARRAY => Some(self.size_of(self.at(id, 0))? * self.at(id, 8) as u64),
            kind::VAR => self.size_of(t.size_type),
            _ => None,
        }
    }

    /// A regular INT (`btf_type_int_is_regular`): whole bytes (1, 2, 4, 8 or 16 of
    /// them), no bit offset.
    fn regular_int(&self, id: u32) -> bool {
        let id = self.skip_mods(id);
        match self.ty(id) {
            Some(t) if t.kind == kind::INT => {
                let v = self.at(id, 0);
                let bits = v & 0xff;
                v >> 16 & 0xff == 0
                    && bits.is_multiple_of(8)
                    && matches!(bits / 8, 1 | 2 | 4 | 8 | 16)
            }
            _ => false,
        }
    }

    fn nr(&self) -> u32 {
        self.types.len() as u32
    }

    /// A target that cannot be a value's type: missing, or source-only.
    fn bad_target(&self, id: u32) -> bool {
        id > self.nr() || self.ty(id).is_some_and(|t| source_only(t.kind))
    }

    /// `btf_resolve` of `id` (and what it needs), depth-first with loop detection.
    fn resolve(&mut self, id: u32, depth: u32) -> Result<(), BtfError> {
        if self.state[id as usize] == 2 {
            return Ok(());
        }
        let t = *self.ty(id).expect("id in range");
        if self.state[id as usize] == 1 {
            return Err(self.type_err(id, &t, true, libc::EEXIST, "Loop detected"));
        }
        if depth > MAX_RESOLVE_DEPTH {
            return Err(self.type_err(
                id,
                &t,
                true,
                E2BIG,
                &format!("Exceeded max resolving depth:{MAX_RESOLVE_DEPTH}"),
            ));
        }
        self.state[id as usize] = 1;
        let r = self.resolve_kind(id, &t, depth);
        self.state[id as usize] = if r.is_ok() { 2 } else { 0 };
        r
    }

    fn resolve_kind(&mut self, id: u32, t: &Type, depth: u32) -> Result<(), BtfError> {
        let nosize = |c: &Self, x: u32| -> bool {
            x == 0
                || c.ty(x)
                    .is_some_and(|tt| matches!(tt.kind, kind::FWD | kind::FUNC | kind::FUNC_PROTO))
        };
        match t.kind {
            k if modifier(k) || k == kind::PTR => {
                let next = t.size_type;
                if self.bad_target(next) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid type_id"));
                }
                // A pointer stops at anything but another pointer or modifier (no
                // loop through a struct); a modifier resolves what it names.
                let nk = self.ty(next).map(|x| x.kind);
                let follow = match nk {
                    Some(k) if modifier(k) || k == kind::PTR => true,
                    Some(kind::STRUCT | kind::UNION | kind::ARRAY) => t.kind != kind::PTR,
                    _ => false,
                };
                if follow {
                    self.resolve(next, depth + 1)?;
                }
                // What it ends at has a size, or is void, a forward or a function.
                let end = self.skip_mods(next);
                if self.size_of(end).is_none()
                    && !(end == 0
                        || self.ty(end).is_some_and(|x| {
                            matches!(x.kind, kind::FWD | kind::FUNC | kind::FUNC_PROTO)
                        }))
                {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid type_id"));
                }
                Ok(())
            }
            kind::ARRAY => {
                let (elem, index, n) = (self.at(id, 0), self.at(id, 4), self.at(id, 8));
                if self.bad_target(index) || nosize(self, self.skip_mods(index)) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid index"));
                }
                if let Some(k) = self.ty(index).map(|x| x.kind) {
                    if modifier(k) || matches!(k, kind::STRUCT | kind::UNION | kind::ARRAY) {
                        self.resolve(index, depth + 1)?;
                    }
                }
                if !self.regular_int(index) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid index"));
                }
                if self.bad_target(elem) || nosize(self, self.skip_mods(elem)) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid elem"));
                }
                if let Some(k) = self.ty(elem).map(|x| x.kind) {
                    if modifier(k) || matches!(k, kind::STRUCT | kind::UNION | kind::ARRAY) {
                        self.resolve(elem, depth + 1)?;
                    }
                }
                let Some(esz) = self.size_of(elem) else {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid elem"));
                };
                let e = self.skip_mods(elem);
                if self.ty(e).is_some_and(|x| x.kind == kind::INT) && !self.regular_int(e) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid array of int"));
                }
                if esz * n as u64 > u32::MAX as u64 {
                    return Err(self.type_err(id, t, true, EINVAL, "Array size overflows U32_MAX"));
                }
                Ok(())
            }
            kind::STRUCT | kind::UNION => {
                for i in 0..t.vlen as usize {
                    let m = self.rec12(id, i);
                    let ty = m.1;
                    if self.bad_target(ty) || nosize(self, self.skip_mods(ty)) {
                        return Err(self.struct_member_err(id, t, m, "Invalid member"));
                    }
                    let k = self.ty(ty).map(|x| x.kind).unwrap_or(0);
                    if modifier(k) || matches!(k, kind::STRUCT | kind::UNION | kind::ARRAY) {
                        self.resolve(ty, depth + 1)?;
                    }
                    if let Some(msg) = self.member_layout(t, m) {
                        return Err(self.struct_member_err(id, t, m, msg));
                    }
                }
                Ok(())
            }
            kind::VAR => {
                let next = t.size_type;
                if self.bad_target(next) {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid type_id"));
                }
                let k = self.ty(next).map(|x| x.kind).unwrap_or(0);
                if modifier(k) || matches!(k, kind::STRUCT | kind::UNION | kind::ARRAY | kind::PTR)
                {
                    self.resolve(next, depth + 1)?;
                }
                if self.size_of(next).is_none() {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid type_id"));
                }
                Ok(())
            }
            kind::DATASEC => {
                for i in 0..t.vlen as usize {
                    let v = self.rec12(id, i);
                    let var = v.0;
                    if self.ty(var).is_none_or(|x| x.kind != kind::VAR) {
                        return Err(self.member_err(id, t, v, "Not a VAR kind member"));
                    }
                    self.resolve(var, depth + 1)?;
                    match self.size_of(var) {
                        None => return Err(self.member_err(id, t, v, "Invalid type")),
                        Some(s) if (v.2 as u64) < s => {
                            return Err(self.member_err(id, t, v, "Invalid size"))
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            kind::DECL_TAG => {
                let target = t.size_type;
                let idx = self.at(id, 0) as i32;
                let tk = self.ty(target).map(|x| x.kind);
                let ok_kind = matches!(
                    tk,
                    Some(kind::FUNC | kind::STRUCT | kind::UNION | kind::VAR | kind::TYPEDEF)
                );
                if !ok_kind {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid type_id"));
                }
                let vlen = match tk {
                    Some(kind::FUNC) => {
                        let p = self.ty(target).map(|x| x.size_type).unwrap_or(0);
                        self.ty(p).map(|x| x.vlen).unwrap_or(0)
                    }
                    _ => self.ty(target).map(|x| x.vlen).unwrap_or(0),
                };
                let bad = if matches!(tk, Some(kind::VAR | kind::TYPEDEF)) {
                    idx != -1
                } else {
                    idx != -1 && idx as u32 >= vlen
                };
                if bad {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid component_idx"));
                }
                Ok(())
            }
            kind::FUNC => {
                let p = t.size_type;
                let Some(pt) = self.ty(p).copied().filter(|x| x.kind == kind::FUNC_PROTO) else {
                    return Err(self.type_err(id, t, true, EINVAL, "Invalid type_id"));
                };
                for i in 0..pt.vlen as usize {
                    let (no, ty) = (self.at(p, 8 * i), self.at(p, 8 * i + 4));
                    if no == 0 && ty != 0 {
                        return Err(self.type_err(
                            id,
                            t,
                            true,
                            EINVAL,
                            &format!("Invalid arg#{}", i + 1),
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A struct member's error in the resolve phase: the struct's line, the member's.
    fn struct_member_err(&mut self, id: u32, t: &Type, m: (u32, u32, u32), msg: &str) -> BtfError {
        self.log_type(id, t, true, None);
        self.member_err(id, t, m, msg)
    }

    /// The kernel's `check_member` / `check_kflag_member` for the member's kind.
    fn member_layout(&self, t: &Type, m: (u32, u32, u32)) -> Option<&'static str> {
        let (_, ty, raw) = m;
        let struct_size = t.size_type as u64;
        let mid = self.skip_mods(ty);
        let mt = *self.ty(mid)?;
        let (bitfield, off) = if t.kflag {
            ((raw >> 24) as u64, (raw & 0xff_ffff) as u64)
        } else {
            (0, raw as u64)
        };
        match mt.kind {
            kind::INT => {
                let v = self.at(mid, 0);
                let (int_bits, int_off) = ((v & 0xff) as u64, (v >> 16 & 0xff) as u64);
                let (nr_bits, start) = if t.kflag {
                    if !self.regular_int(mid) {
                        return Some("Invalid member base type");
                    }
                    if bitfield == 0 && off & 7 != 0 {
                        return Some("Invalid member offset");
                    }
                    if bitfield > int_bits {
                        return Some("Invalid member bitfield_size");
                    }
                    (if bitfield == 0 { int_bits } else { bitfield }, off)
                } else {
                    if u32::MAX as u64 - off < int_off {
                        return Some("bits_offset exceeds U32_MAX");
                    }
                    (int_bits, off + int_off)
                };
                let copy_bits = nr_bits + (start & 7);
                if copy_bits > 128 {
                    return Some("nr_copy_bits exceeds 128");
                }
                let bytes = start / 8;
                if struct_size < bytes || struct_size - bytes < roundup_bytes(copy_bits) {
                    return Some("Member exceeds struct_size");
                }
                None
            }
            kind::ENUM | kind::ENUM64 if t.kflag => {
                let width = if bitfield == 0 {
                    if off & 7 != 0 {
                        return Some("Member is not byte aligned");
                    }
                    32
                } else {
                    if bitfield > 32 {
                        return Some("Invalid member bitfield_size");
                    }
                    bitfield
                };
                if roundup_bytes(off + width) > struct_size {
                    return Some("Member exceeds struct_size");
                }
                None
            }
            kind::FLOAT => {
                if bitfield != 0 {
                    return Some("Invalid member bitfield_size");
                }
                let sz = mt.size_type as u64;
                if off % (sz.min(8) * 8) != 0 {
                    return Some("Member is not properly aligned");
                }
                if struct_size < off / 8 || struct_size - off / 8 < sz {
                    return Some("Member exceeds struct_size");
                }
                None
            }
            kind::PTR | kind::ARRAY | kind::STRUCT | kind::UNION | kind::ENUM | kind::ENUM64 => {
                if bitfield != 0 {
                    return Some("Invalid member bitfield_size");
                }
                if off & 7 != 0 {
                    return Some("Member is not byte aligned");
                }
                let msz = self.size_of(mid).unwrap_or(0);
                if struct_size < off / 8 || struct_size - off / 8 < msz {
                    return Some("Member exceeds struct_size");
                }
                None
            }
            _ => None,
        }
    }

    /// `btf_func_proto_check` for FUNC_PROTO `id`.
    fn func_proto(&mut self, id: u32, t: &Type) -> Result<(), BtfError> {
        let ret = t.size_type;
        if ret != 0 {
            let ok = !self.bad_target(ret)
                && (self.size_of(ret).is_some()
                    || self
                        .ty(self.skip_mods(ret))
                        .is_some_and(|x| x.kind == kind::PTR));
            if !ok {
                return Err(self.type_err(id, t, true, EINVAL, "Invalid return type"));
            }
        }
        let n = t.vlen as usize;
        for i in 0..n {
            let (no, ty) = (self.at(id, 8 * i), self.at(id, 8 * i + 4));
            let last_vararg = i == n - 1 && ty == 0;
            let bad = if last_vararg {
                no != 0
            } else {
                self.bad_target(ty)
                    || (no != 0 && (no as usize >= self.str_len || !ident(self.str_bytes(no))))
                    || (self.size_of(ty).is_none()
                        && self
                            .ty(self.skip_mods(ty))
                            .is_none_or(|x| x.kind != kind::PTR))
            };
            if bad {
                return Err(self.type_err(id, t, true, EINVAL, &format!("Invalid arg#{}", i + 1)));
            }
        }
        Ok(())
    }

    /// `btf_check_type_tags`: modifier chains of at most 32 links, type tags first.
    fn type_tags(&mut self) -> Result<(), BtfError> {
        for id in 1..=self.nr() {
            let t = self.types[id as usize - 1];
            if !modifier(t.kind) && t.kind != kind::PTR {
                continue;
            }
            let mut cur = id;
            let mut seen_other = false;
            let mut n = 0;
            while let Some(c) = self.ty(cur).copied() {
                if !(modifier(c.kind)) {
                    break;
                }
                if c.kind == kind::TYPE_TAG && seen_other {
                    return Err(self.type_err(
                        id,
                        &t,
                        true,
                        EINVAL,
                        "Type tags don't precede modifiers",
                    ));
                }
                if c.kind != kind::TYPE_TAG {
                    seen_other = true;
                }
                n += 1;
                if n > MAX_RESOLVE_DEPTH {
                    self.log.push_str("Max chain length or cycle detected");
                    return Err(err(
                        libc::ELOOP,
                        "Max chain length or cycle detected".into(),
                    ));
                }
                cur = c.size_type;
            }
        }
        Ok(())
    }
}

/// Checks `d` as `btf_parse` does, appending the kernel's log text to `log`.
pub(super) fn check(d: &[u8], log: &mut String) -> Result<Parsed, BtfError> {
    let mut c = Checker {
        d,
        log: String::new(),
        str_start: 0,
        str_len: 0,
        types: Vec::new(),
        data_at: Vec::new(),
        state: Vec::new(),
    };
    let r = run(&mut c);
    log.push_str(&c.log);
    r.map(|()| Parsed {
        types: c.types,
        str_start: c.str_start,
        str_len: c.str_len,
    })
}

fn bare(c: &mut Checker<'_>, errno: i32, msg: &str) -> BtfError {
    c.log.push_str(msg);
    err(errno, msg.into())
}

fn run(c: &mut Checker<'_>) -> Result<(), BtfError> {
    let d = c.d;
    let size = d.len();
    // btf_parse_hdr
    if size < 8 {
        return Err(bare(c, EINVAL, "hdr_len not found"));
    }
    let hdr_len = u32_at(d, 4) as usize;
    if size < hdr_len {
        return Err(bare(c, EINVAL, "btf_header not found"));
    }
    if hdr_len > 24 && d[24..hdr_len].iter().any(|&b| b != 0) {
        return Err(bare(c, E2BIG, "Unsupported btf_header"));
    }
    let mut h = [0u8; 24];
    let n = hdr_len.min(24);
    h[..n].copy_from_slice(&d[..n]);
    let hdr = Hdr {
        magic: u16::from_ne_bytes([h[0], h[1]]),
        version: h[2],
        flags: h[3],
        hdr_len: u32_at(&h, 4),
        type_off: u32_at(&h, 8),
        type_len: u32_at(&h, 12),
        str_off: u32_at(&h, 16),
        str_len: u32_at(&h, 20),
    };
    c.log.push_str(&format!(
        "magic: 0x{:x}\nversion: {}\nflags: 0x{:x}\nhdr_len: {}\ntype_off: {}\ntype_len: {}\nstr_off: {}\nstr_len: {}\nbtf_total_size: {size}\n",
        hdr.magic, hdr.version, hdr.flags, hdr.hdr_len, hdr.type_off, hdr.type_len, hdr.str_off, hdr.str_len
    ));
    if hdr.magic != super::MAGIC {
        return Err(bare(c, EINVAL, "Invalid magic"));
    }
    if hdr.version != 1 {
        return Err(bare(c, ENOTSUPP, "Unsupported version"));
    }
    if hdr.flags != 0 {
        return Err(bare(c, ENOTSUPP, "Unsupported flags"));
    }
    if size == hdr.hdr_len as usize {
        return Err(bare(c, EINVAL, "No data"));
    }
    // btf_check_sec_info
    let mut secs = [(hdr.type_off, hdr.type_len), (hdr.str_off, hdr.str_len)];
    secs.sort();
    let expected = (size as u64).saturating_sub(hdr.hdr_len as u64);
    let mut total = 0u64;
    for (off, len) in secs {
        let (off, len) = (off as u64, len as u64);
        if expected < off {
            return Err(bare(c, EINVAL, "Invalid section offset"));
        }
        if total < off {
            return Err(bare(c, EINVAL, "Unsupported section found"));
        }
        if total > off {
            return Err(bare(c, EINVAL, "Section overlap found"));
        }
        if expected - total < len {
            return Err(bare(c, EINVAL, "Total section length too long"));
        }
        total += len;
    }
    if expected != total {
        return Err(bare(c, EINVAL, "Unsupported section found"));
    }
    // btf_parse_str_sec
    let nohdr = hdr.hdr_len as usize;
    let start = nohdr + hdr.str_off as usize;
    let end = start + hdr.str_len as usize;
    if end != size {
        return Err(bare(c, EINVAL, "String section is not at the end"));
    }
    if hdr.str_len == 0 || hdr.str_len - 1 > BTF_MAX_NAME_OFFSET || d[end - 1] != 0 || d[start] != 0
    {
        return Err(bare(c, EINVAL, "Invalid string section"));
    }
    c.str_start = start;
    c.str_len = hdr.str_len as usize;
    // btf_parse_type_sec / btf_check_all_metas
    if hdr.type_off & 3 != 0 {
        return Err(bare(c, EINVAL, "Unaligned type_off"));
    }
    if hdr.type_len == 0 {
        return Err(bare(c, EINVAL, "No type found"));
    }
    let tstart = nohdr + hdr.type_off as usize;
    let tend = tstart + hdr.type_len as usize;
    let mut off = tstart;
    while off < tend {
        let id = c.types.len() as u32 + 1;
        let left = tend - off;
        if left < 12 {
            let m = format!("[{id}] meta_left:{left} meta_needed:12");
            return Err(bare(c, EINVAL, &m));
        }
        let info = u32_at(d, off + 4);
        let t = Type {
            name_off: u32_at(d, off),
            kind: (info >> 24) & 0x1f,
            vlen: info & 0xffff,
            kflag: info >> 31 != 0,
            size_type: u32_at(d, off + 8),
        };
        if info & !0x9f00_ffff != 0 {
            return Err(bare(
                c,
                EINVAL,
                &format!("[{id}] Invalid btf_info:{info:x}"),
            ));
        }
        if t.kind == 0 || t.kind > kind::ENUM64 {
            return Err(bare(c, EINVAL, &format!("[{id}] Invalid kind:{}", t.kind)));
        }
        if t.name_off > BTF_MAX_NAME_OFFSET || t.name_off as usize >= c.str_len {
            let m = format!("[{id}] Invalid name_offset:{}", t.name_off);
            return Err(bare(c, EINVAL, &m));
        }
        c.types.push(t);
        c.data_at.push(off + 12);
        // check_meta refuses a record longer than what is left before reading it.
        c.check_meta(id, &t, left - 12)?;
        off += 12 + extra(&t);
    }
    // btf_check_all_types
    c.state = vec![0; c.types.len() + 1];
    for id in 1..=c.nr() {
        let t = c.types[id as usize - 1];
        let needs = modifier(t.kind)
            || matches!(
                t.kind,
                kind::PTR
                    | kind::STRUCT
                    | kind::UNION
                    | kind::ARRAY
                    | kind::VAR
                    | kind::FUNC
                    | kind::DECL_TAG
                    | kind::DATASEC
            );
        if needs {
            c.resolve(id, 0)?;
        }
        if t.kind == kind::FUNC_PROTO {
            c.func_proto(id, &t)?;
        }
    }
    c.type_tags()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_kernel() {
        assert!(ident(b"int"));
        assert!(ident(b"_x.y9"));
        assert!(ident(&[0xc0, b'a']));
        assert!(!ident(b""));
        assert!(!ident(b"9a"));
        assert!(!ident(b"a b"));
        assert!(!ident(&[0x80]));
        assert!(ident(&[b'a'; 512]));
        assert!(!ident(&[b'a'; 513]));
        assert!(section(b".data.x y"));
        assert!(!section(b""));
        assert!(!section(&[0x7f]));
    }
}
