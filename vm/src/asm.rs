//! An assembler for the ubpf / bpf_conformance dialect:
//! `mov %r0, 1`, `ldxdw %r1, [%r10-8]`, `lock fetch add [%r10-8], %r1`,
//! `jeq %r1, 0x10, label`, `call local f`, `call 5`, `call %r2`, labels `name:`,
//! `#` comments.

use std::collections::HashMap;

use crate::insn::*;

/// An assembly error: the line number (1-based) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct AsmError {
    pub line: usize,
    pub msg: String,
}

enum Target {
    Rel(i64),
    Label(String),
}

struct Pending {
    index: usize,
    line: usize,
    target: Target,
    /// The target goes into `imm` (call local, gotol) instead of `off`.
    in_imm: bool,
}

fn parse_reg(s: &str) -> Option<u8> {
    let s = s.trim();
    let n = s.strip_prefix("%r").or_else(|| s.strip_prefix('r'))?;
    let v: u8 = n.parse().ok()?;
    (v <= 10).then_some(v)
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else {
        body.parse::<u64>().ok()?
    };
    Some(if neg {
        (v as i64).wrapping_neg()
    } else {
        v as i64
    })
}

/// `[%rN+off]` / `[%rN-off]` / `[%rN]`.
fn parse_mem(s: &str) -> Option<(u8, i16)> {
    let s = s.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    let pos = s.find(['+', '-']);
    match pos {
        None => Some((parse_reg(s)?, 0)),
        Some(p) => {
            let reg = parse_reg(&s[..p])?;
            let off = parse_int(&s[p..])?;
            Some((reg, i16::try_from(off).ok()?))
        }
    }
}

fn imm32(v: i64) -> Option<i32> {
    if v >= i32::MIN as i64 && v <= u32::MAX as i64 {
        Some(v as i32)
    } else {
        None
    }
}

/// Split the operand list at top-level commas (memory operands hold no commas).
fn operands(s: &str) -> Vec<&str> {
    if s.trim().is_empty() {
        return Vec::new();
    }
    s.split(',').map(str::trim).collect()
}

fn alu_op(name: &str) -> Option<(u8, i16)> {
    Some(match name {
        "add" => (BPF_ADD, 0),
        "sub" => (BPF_SUB, 0),
        "mul" => (BPF_MUL, 0),
        "div" => (BPF_DIV, 0),
        "sdiv" => (BPF_DIV, 1),
        "or" => (BPF_OR, 0),
        "and" => (BPF_AND, 0),
        "lsh" => (BPF_LSH, 0),
        "rsh" => (BPF_RSH, 0),
        "neg" => (BPF_NEG, 0),
        "mod" => (BPF_MOD, 0),
        "smod" => (BPF_MOD, 1),
        "xor" => (BPF_XOR, 0),
        "mov" => (BPF_MOV, 0),
        "arsh" => (BPF_ARSH, 0),
        _ => return None,
    })
}

fn jmp_op(name: &str) -> Option<u8> {
    Some(match name {
        "jeq" => BPF_JEQ,
        "jgt" => BPF_JGT,
        "jge" => BPF_JGE,
        "jset" => BPF_JSET,
        "jne" => BPF_JNE,
        "jsgt" => BPF_JSGT,
        "jsge" => BPF_JSGE,
        "jlt" => BPF_JLT,
        "jle" => BPF_JLE,
        "jslt" => BPF_JSLT,
        "jsle" => BPF_JSLE,
        _ => return None,
    })
}

fn size_of_suffix(s: &str) -> Option<u8> {
    Some(match s {
        "b" => BPF_B,
        "h" => BPF_H,
        "w" => BPF_W,
        "dw" => BPF_DW,
        _ => return None,
    })
}

fn parse_target(s: &str) -> Target {
    let s = s.trim();
    if s.starts_with('+') || s.starts_with('-') {
        if let Some(v) = parse_int(s) {
            return Target::Rel(v);
        }
    }
    Target::Label(s.to_string())
}

/// Assemble a program; returns the instructions.
pub fn assemble(src: &str) -> Result<Vec<Insn>, AsmError> {
    let mut out: Vec<Insn> = Vec::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();

    for (lineno, raw) in src.lines().enumerate() {
        let line = lineno + 1;
        let err = |msg: &str| AsmError {
            line,
            msg: format!("{msg}: {}", raw.trim()),
        };
        let mut text = raw.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        // Labels (possibly followed by an instruction).
        while let Some(p) = text.find(':') {
            let name = text[..p].trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                break;
            }
            labels.insert(name.to_string(), out.len());
            text = text[p + 1..].trim();
        }
        if text.is_empty() {
            continue;
        }
        let (mnem, rest) = match text.find(char::is_whitespace) {
            Some(p) => (&text[..p], text[p..].trim()),
            None => (text, ""),
        };
        let ops = operands(rest);
        let reg = |i: usize| ops.get(i).and_then(|s| parse_reg(s));

        // lock [fetch] op[32] [mem], %reg
        if mnem == "lock" {
            let mut words = rest.splitn(2, char::is_whitespace);
            let mut w = words.next().unwrap_or("");
            let mut tail = words.next().unwrap_or("").trim();
            let mut fetch = false;
            if w == "fetch" {
                fetch = true;
                let mut it = tail.splitn(2, char::is_whitespace);
                w = it.next().unwrap_or("");
                tail = it.next().unwrap_or("").trim();
            }
            let (name, size) = match w.strip_suffix("32") {
                Some(n) => (n, BPF_W),
                None => (w, BPF_DW),
            };
            let mut imm = match name {
                "add" => BPF_ADD as i32,
                "or" => BPF_OR as i32,
                "and" => BPF_AND as i32,
                "xor" => BPF_XOR as i32,
                "xchg" => BPF_XCHG,
                "cmpxchg" => BPF_CMPXCHG,
                _ => return Err(err("unknown atomic op")),
            };
            if fetch {
                imm |= BPF_FETCH;
            }
            let o = operands(tail);
            if o.len() != 2 {
                return Err(err("atomic needs [mem], %reg"));
            }
            let (dst, off) = parse_mem(o[0]).ok_or_else(|| err("bad memory operand"))?;
            let src = parse_reg(o[1]).ok_or_else(|| err("bad register"))?;
            out.push(Insn::new(BPF_STX | BPF_ATOMIC | size, dst, src, off, imm));
            continue;
        }

        match mnem {
            "exit" => {
                // As the suite's assembler: the first `exit` is also the label `exit`.
                labels.entry("exit".to_string()).or_insert(out.len());
                out.push(Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
            }
            "ja" | "ja32" => {
                let t = ops.first().ok_or_else(|| err("missing target"))?;
                let class = if mnem == "ja" { BPF_JMP } else { BPF_JMP32 };
                pending.push(Pending {
                    index: out.len(),
                    line,
                    target: parse_target(t),
                    in_imm: mnem == "ja32",
                });
                out.push(Insn::new(class | BPF_JA, 0, 0, 0, 0));
            }
            "call" => {
                if let Some(name) = rest.strip_prefix("local") {
                    pending.push(Pending {
                        index: out.len(),
                        line,
                        target: Target::Label(name.trim().to_string()),
                        in_imm: true,
                    });
                    out.push(Insn::new(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 0));
                } else if let Some(r) = parse_reg(rest) {
                    out.push(Insn::new(BPF_JMP | BPF_CALL | BPF_X, r, 0, 0, 0));
                } else {
                    let id = parse_int(rest)
                        .and_then(imm32)
                        .ok_or_else(|| err("bad helper id"))?;
                    out.push(Insn::new(BPF_JMP | BPF_CALL, 0, 0, 0, id));
                }
            }
            "lddw" => {
                let d = reg(0).ok_or_else(|| err("bad register"))?;
                let v = ops
                    .get(1)
                    .and_then(|s| parse_int(s))
                    .ok_or_else(|| err("bad immediate"))?;
                out.push(Insn::new(BPF_LD | BPF_IMM | BPF_DW, d, 0, 0, v as i32));
                out.push(Insn::new(0, 0, 0, 0, (v as u64 >> 32) as i32));
            }
            _ => {
                if let Some(r) = assemble_simple(mnem, &ops) {
                    let insn = r.map_err(err)?;
                    out.push(insn);
                    continue;
                }
                // Conditional jumps.
                let (name, class) = match mnem.strip_suffix("32") {
                    Some(n) => (n, BPF_JMP32),
                    None => (mnem, BPF_JMP),
                };
                let op = jmp_op(name).ok_or_else(|| err("unknown mnemonic"))?;
                if ops.len() != 3 {
                    return Err(err("jump needs 3 operands"));
                }
                let d = reg(0).ok_or_else(|| err("bad register"))?;
                let insn = if let Some(s) = reg(1) {
                    Insn::new(class | op | BPF_X, d, s, 0, 0)
                } else {
                    let v = parse_int(ops[1])
                        .and_then(imm32)
                        .ok_or_else(|| err("bad immediate"))?;
                    Insn::new(class | op | BPF_K, d, 0, 0, v)
                };
                pending.push(Pending {
                    index: out.len(),
                    line,
                    target: parse_target(ops[2]),
                    in_imm: false,
                });
                out.push(insn);
            }
        }
    }

    for p in pending {
        let rel = match p.target {
            Target::Rel(v) => v,
            Target::Label(l) => {
                let at = *labels.get(&l).ok_or_else(|| AsmError {
                    line: p.line,
                    msg: format!("unknown label {l}"),
                })?;
                at as i64 - p.index as i64 - 1
            }
        };
        let bad = || AsmError {
            line: p.line,
            msg: "jump offset out of range".into(),
        };
        if p.in_imm {
            out[p.index].imm = i32::try_from(rel).map_err(|_| bad())?;
        } else {
            out[p.index].off = i16::try_from(rel).map_err(|_| bad())?;
        }
    }
    Ok(out)
}

/// ALU, endianness and memory instructions; `None` when `mnem` is none of them.
fn assemble_simple(mnem: &str, ops: &[&str]) -> Option<Result<Insn, &'static str>> {
    let reg = |i: usize| ops.get(i).and_then(|s| parse_reg(s));
    // Endianness.
    for (prefix, class, src) in [
        ("be", BPF_ALU, BPF_TO_BE),
        ("le", BPF_ALU, BPF_TO_LE),
        ("bswap", BPF_ALU64, BPF_TO_LE),
        ("swap", BPF_ALU64, BPF_TO_LE),
    ] {
        if let Some(bits) = mnem.strip_prefix(prefix) {
            if let Ok(bits @ (16 | 32 | 64)) = bits.parse::<i32>() {
                return Some(match reg(0) {
                    Some(d) => Ok(Insn::new(class | BPF_END | src, d, 0, 0, bits)),
                    None => Err("bad register"),
                });
            }
        }
    }
    // movsx<from><to>
    if let Some(rest) = mnem.strip_prefix("movsx") {
        let (from, class) = match rest {
            "832" => (8, BPF_ALU),
            "1632" => (16, BPF_ALU),
            "864" => (8, BPF_ALU64),
            "1664" => (16, BPF_ALU64),
            "3264" => (32, BPF_ALU64),
            _ => return Some(Err("bad movsx")),
        };
        return Some(match (reg(0), reg(1)) {
            (Some(d), Some(s)) => Ok(Insn::new(class | BPF_MOV | BPF_X, d, s, from, 0)),
            _ => Err("bad register"),
        });
    }
    // Loads: ldx{b,h,w,dw}, ldxs{b,h,w}.
    if let Some(sz) = mnem.strip_prefix("ldx") {
        let (mode, sz) = match sz.strip_prefix('s') {
            Some(s) if !s.is_empty() && size_of_suffix(s).is_some() => (BPF_MEMSX, s),
            _ => (BPF_MEM, sz),
        };
        let size = size_of_suffix(sz)?;
        return Some((|| {
            let d = reg(0).ok_or("bad register")?;
            let (s, off) = ops
                .get(1)
                .and_then(|m| parse_mem(m))
                .ok_or("bad memory operand")?;
            Ok(Insn::new(BPF_LDX | mode | size, d, s, off, 0))
        })());
    }
    if let Some(sz) = mnem.strip_prefix("stx") {
        let size = size_of_suffix(sz)?;
        return Some((|| {
            let (d, off) = ops
                .first()
                .and_then(|m| parse_mem(m))
                .ok_or("bad memory operand")?;
            let s = reg(1).ok_or("bad register")?;
            Ok(Insn::new(BPF_STX | BPF_MEM | size, d, s, off, 0))
        })());
    }
    if let Some(sz) = mnem.strip_prefix("st") {
        let size = size_of_suffix(sz)?;
        return Some((|| {
            let (d, off) = ops
                .first()
                .and_then(|m| parse_mem(m))
                .ok_or("bad memory operand")?;
            let v = ops
                .get(1)
                .and_then(|s| parse_int(s))
                .and_then(imm32)
                .ok_or("bad immediate")?;
            Ok(Insn::new(BPF_ST | BPF_MEM | size, d, 0, off, v))
        })());
    }
    // ALU.
    let (name, class) = if let Some(n) = mnem.strip_suffix("32") {
        (n, BPF_ALU)
    } else if let Some(n) = mnem.strip_suffix("64") {
        (n, BPF_ALU64)
    } else {
        (mnem, BPF_ALU64)
    };
    let (op, off) = alu_op(name)?;
    Some((|| {
        let d = reg(0).ok_or("bad register")?;
        if op == BPF_NEG {
            return Ok(Insn::new(class | BPF_NEG, d, 0, 0, 0));
        }
        let src = ops.get(1).ok_or("missing operand")?;
        if let Some(s) = parse_reg(src) {
            Ok(Insn::new(class | op | BPF_X, d, s, off, 0))
        } else {
            let v = parse_int(src).and_then(imm32).ok_or("bad immediate")?;
            Ok(Insn::new(class | op | BPF_K, d, 0, off, v))
        }
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        let p = assemble("mov %r0, 1\nl: add32 %r0, %r1 # c\njne %r0, 3, l\nexit").unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[0], Insn::new(0xb7, 0, 0, 0, 1));
        assert_eq!(p[1], Insn::new(0x0c, 0, 1, 0, 0));
        assert_eq!(p[2], Insn::new(0x55, 0, 0, -2, 3));
        assert_eq!(p[3].code, 0x95);
        let p = assemble("lock fetch add32 [%r10-4], %r1\nldxsh %r0, [%r10-2]\nstdw [%r10-8], -1")
            .unwrap();
        assert_eq!(p[0], Insn::new(0xc3, 10, 1, -4, 1));
        assert_eq!(p[1], Insn::new(0x89, 0, 10, -2, 0));
        assert_eq!(p[2], Insn::new(0x7a, 10, 0, -8, -1));
        assert!(assemble("bogus %r0").is_err());
    }
}
