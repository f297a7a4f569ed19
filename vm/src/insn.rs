//! Instruction encoding (RFC 9669 / Linux `struct bpf_insn`), the opcode constants,
//! decoding from raw bytes, and a small disassembler.

/// Instruction classes.
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;

/// Sizes (load/store).
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;

/// Modes (load/store).
pub const BPF_IMM: u8 = 0x00;
pub const BPF_ABS: u8 = 0x20;
pub const BPF_IND: u8 = 0x40;
pub const BPF_MEM: u8 = 0x60;
pub const BPF_MEMSX: u8 = 0x80;
pub const BPF_ATOMIC: u8 = 0xc0;

/// Source operand.
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;

/// ALU operations.
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
pub const BPF_END: u8 = 0xd0;
/// Byte order for BPF_END in the ALU class (in the source bit).
pub const BPF_TO_LE: u8 = 0x00;
pub const BPF_TO_BE: u8 = 0x08;

/// Jump operations.
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;
pub const BPF_JCOND: u8 = 0xe0;

/// Atomic operations (in `imm`).
pub const BPF_FETCH: i32 = 0x01;
pub const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
pub const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;

/// `src_reg` of `ld_imm64` (pseudo forms).
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
pub const BPF_PSEUDO_MAP_VALUE: u8 = 2;
pub const BPF_PSEUDO_BTF_ID: u8 = 3;
pub const BPF_PSEUDO_FUNC: u8 = 4;
pub const BPF_PSEUDO_MAP_IDX: u8 = 5;
pub const BPF_PSEUDO_MAP_IDX_VALUE: u8 = 6;
/// `src_reg` of `call`.
pub const BPF_PSEUDO_CALL: u8 = 1;
pub const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

/// Frame pointer register.
pub const BPF_REG_FP: u8 = 10;
/// Bytes of stack per program (the kernel's MAX_BPF_STACK).
pub const MAX_BPF_STACK: usize = 512;
/// The kernel's MAX_CALL_FRAMES.
pub const MAX_CALL_FRAMES: usize = 8;
/// The kernel's BPF_COMPLEXITY_LIMIT_INSNS (privileged instruction count limit).
pub const BPF_COMPLEXITY_LIMIT_INSNS: usize = 1_000_000;

/// One raw instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// Decode 8 bytes (little-endian host layout, as the kernel reads them on x86).
    pub fn from_bytes(b: &[u8; 8]) -> Self {
        Self {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn to_bytes(self) -> [u8; 8] {
        let o = self.off.to_le_bytes();
        let i = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0xf) | (self.src << 4),
            o[0],
            o[1],
            i[0],
            i[1],
            i[2],
            i[3],
        ]
    }

    pub fn class(self) -> u8 {
        self.code & 0x07
    }

    /// Whether this is the first half of an `ld_imm64`.
    pub fn is_ld_imm64(self) -> bool {
        self.code == BPF_LD | BPF_IMM | BPF_DW
    }
}

/// Decode a byte buffer of instructions (length must be a multiple of 8).
pub fn decode(bytes: &[u8]) -> Option<Vec<Insn>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| Insn::from_bytes(c.try_into().expect("chunk of 8")))
            .collect(),
    )
}

/// Encode instructions to bytes.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Size in bytes of a load/store size field.
pub fn size_bytes(code: u8) -> usize {
    match code & 0x18 {
        BPF_W => 4,
        BPF_H => 2,
        BPF_B => 1,
        _ => 8,
    }
}

fn alu_name(op: u8) -> &'static str {
    match op {
        BPF_ADD => "+=",
        BPF_SUB => "-=",
        BPF_MUL => "*=",
        BPF_DIV => "/=",
        BPF_OR => "|=",
        BPF_AND => "&=",
        BPF_LSH => "<<=",
        BPF_RSH => ">>=",
        BPF_MOD => "%=",
        BPF_XOR => "^=",
        BPF_MOV => "=",
        BPF_ARSH => "s>>=",
        _ => "?=",
    }
}

fn jmp_name(op: u8) -> &'static str {
    match op {
        BPF_JEQ => "==",
        BPF_JGT => ">",
        BPF_JGE => ">=",
        BPF_JSET => "&",
        BPF_JNE => "!=",
        BPF_JSGT => "s>",
        BPF_JSGE => "s>=",
        BPF_JLT => "<",
        BPF_JLE => "<=",
        BPF_JSLT => "s<",
        BPF_JSLE => "s<=",
        _ => "?",
    }
}

fn size_name(code: u8) -> &'static str {
    match code & 0x18 {
        BPF_W => "u32",
        BPF_H => "u16",
        BPF_B => "u8",
        _ => "u64",
    }
}

/// Disassemble one instruction in the kernel verifier log's style
/// (`r1 = *(u32 *)(r1 +4)`). `next` is the following instruction (for `ld_imm64`).
pub fn disasm(insn: Insn, next: Option<Insn>) -> String {
    let (d, s) = (insn.dst, insn.src);
    let class = insn.class();
    let op = insn.code & 0xf0;
    let x = insn.code & BPF_X != 0;
    match class {
        BPF_ALU | BPF_ALU64 => {
            let r = if class == BPF_ALU64 { "r" } else { "w" };
            match op {
                BPF_NEG => format!("{r}{d} = -{r}{d}"),
                BPF_END => {
                    let kind = if class == BPF_ALU64 {
                        "bswap"
                    } else if x {
                        "be"
                    } else {
                        "le"
                    };
                    format!("r{d} = {kind}{} r{d}", insn.imm)
                }
                BPF_MOV if x && insn.off != 0 => {
                    format!("{r}{d} = (s{}){r}{s}", insn.off)
                }
                _ => {
                    let name = match (op, insn.off) {
                        (BPF_DIV, 1) => "s/=",
                        (BPF_MOD, 1) => "s%=",
                        _ => alu_name(op),
                    };
                    if x {
                        format!("{r}{d} {name} {r}{s}")
                    } else {
                        format!("{r}{d} {name} {}", insn.imm)
                    }
                }
            }
        }
        BPF_LDX => {
            let sx = if insn.code & 0xe0 == BPF_MEMSX {
                "s"
            } else {
                "u"
            };
            let sz = &size_name(insn.code)[1..];
            format!("r{d} = *({sx}{sz} *)(r{s} {:+})", insn.off)
        }
        BPF_ST => format!(
            "*({} *)(r{d} {:+}) = {}",
            size_name(insn.code),
            insn.off,
            insn.imm
        ),
        BPF_STX if insn.code & 0xe0 == BPF_ATOMIC => {
            let sz = size_name(insn.code);
            let fetch = if insn.imm & BPF_FETCH != 0 {
                "fetch_"
            } else {
                ""
            };
            let name = match insn.imm & !BPF_FETCH {
                0x00 => "add",
                0x40 => "or",
                0x50 => "and",
                0xa0 => "xor",
                0xe0 => "xchg",
                0xf0 => "cmpxchg",
                _ => "?",
            };
            format!("lock *({sz} *)(r{d} {:+}) {fetch}{name} r{s}", insn.off)
        }
        BPF_STX => format!("*({} *)(r{d} {:+}) = r{s}", size_name(insn.code), insn.off),
        BPF_LD if insn.is_ld_imm64() => {
            let hi = next.map_or(0, |n| n.imm as u32 as u64);
            let v = (hi << 32) | insn.imm as u32 as u64;
            match s {
                0 => format!("r{d} = {v:#x} ll"),
                BPF_PSEUDO_MAP_FD => format!("r{d} = map[fd:{}] ll", insn.imm),
                BPF_PSEUDO_MAP_VALUE => format!("r{d} = map[fd:{}][0]+{hi} ll", insn.imm),
                BPF_PSEUDO_MAP_IDX => format!("r{d} = map[idx:{}] ll", insn.imm),
                BPF_PSEUDO_MAP_IDX_VALUE => format!("r{d} = map[idx:{}][0]+{hi} ll", insn.imm),
                BPF_PSEUDO_FUNC => format!("r{d} = func pc{:+} ll", insn.imm),
                _ => format!("r{d} = pseudo{s}:{v:#x} ll"),
            }
        }
        BPF_LD => format!("r0 = *({} *)skb[{}]", size_name(insn.code), insn.imm),
        BPF_JMP | BPF_JMP32 => {
            let r = if class == BPF_JMP { "r" } else { "w" };
            match op {
                BPF_JA if class == BPF_JMP32 => format!("gotol pc{:+}", insn.imm),
                BPF_JA => format!("goto pc{:+}", insn.off),
                BPF_CALL if x => format!("callx r{d}"),
                BPF_CALL if s == BPF_PSEUDO_CALL => format!("call pc{:+}", insn.imm),
                BPF_CALL => format!("call #{}", insn.imm),
                BPF_EXIT => "exit".to_string(),
                BPF_JCOND => format!("may_goto pc{:+}", insn.off),
                _ if x => format!("if {r}{d} {} {r}{s} goto pc{:+}", jmp_name(op), insn.off),
                _ => format!(
                    "if {r}{d} {} {:#x} goto pc{:+}",
                    jmp_name(op),
                    insn.imm,
                    insn.off
                ),
            }
        }
        _ => format!("(bad {:#04x})", insn.code),
    }
}

/// Disassemble a whole program, one numbered line per instruction.
pub fn disasm_all(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < insns.len() {
        out.push_str(&format!(
            "{i}: ({:02x}) {}\n",
            insns[i].code,
            disasm(insns[i], insns.get(i + 1).copied())
        ));
        i += if insns[i].is_ld_imm64() { 2 } else { 1 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let i = Insn::new(0x61, 2, 1, 4, -7);
        assert_eq!(Insn::from_bytes(&i.to_bytes()), i);
        assert_eq!(disasm(i, None), "r2 = *(u32 *)(r1 +4)");
    }
}
