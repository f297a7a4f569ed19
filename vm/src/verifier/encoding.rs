//! Encoding checks of one instruction (reserved fields, opcodes, registers).

use libc::{EACCES, EINVAL};

use crate::insn::*;
use crate::program::LoadError;

use super::*;

/// Encoding checks of one instruction (the kernel's "uses reserved fields",
/// "unknown opcode", "R%d is invalid", "frame pointer is read only").
pub(super) fn check_encoding(
    i: usize,
    insn: Insn,
    mode: Mode,
    log: &mut String,
) -> Result<(), LoadError> {
    let kernel = mode != Mode::Raw;
    let class = insn.class();
    let op = insn.code & 0xf0;
    let x = insn.code & BPF_X != 0;
    let bad = |log: &mut String, what: &str| fail(EINVAL, log, format!("{i}: {what}"));
    let unknown = |log: &mut String| {
        fail(
            EINVAL,
            log,
            format!("{i}: unknown opcode {:02x}", insn.code),
        )
    };
    let reg_ok = |log: &mut String, r: u8| {
        if r > 10 {
            Err(fail(EINVAL, log, format!("{i}: R{r} is invalid")))
        } else {
            Ok(())
        }
    };
    let dst_write = |log: &mut String, r: u8| {
        if r > 10 {
            Err(fail(EINVAL, log, format!("{i}: R{r} is invalid")))
        } else if r == BPF_REG_FP {
            Err(fail(
                EACCES,
                log,
                format!("{i}: frame pointer is read only"),
            ))
        } else {
            Ok(())
        }
    };
    match class {
        BPF_ALU | BPF_ALU64 => {
            let name = if class == BPF_ALU {
                "BPF_ALU"
            } else {
                "BPF_ALU64"
            };
            match op {
                BPF_END => {
                    if insn.src != 0
                        || insn.off != 0
                        || !matches!(insn.imm, 16 | 32 | 64)
                        || (class == BPF_ALU64 && x)
                    {
                        return Err(bad(log, "BPF_END uses reserved fields"));
                    }
                }
                BPF_NEG => {
                    if x || insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                        return Err(bad(log, "BPF_NEG uses reserved fields"));
                    }
                }
                BPF_MOV => {
                    if x {
                        let offs: &[i16] = if class == BPF_ALU {
                            &[0, 8, 16]
                        } else {
                            &[0, 8, 16, 32]
                        };
                        if !offs.contains(&insn.off) || insn.imm != 0 {
                            return Err(bad(log, "BPF_MOV uses reserved fields"));
                        }
                        reg_ok(log, insn.src)?;
                    } else if insn.src != 0 || insn.off != 0 {
                        return Err(bad(log, "BPF_MOV uses reserved fields"));
                    }
                }
                BPF_ADD | BPF_SUB | BPF_MUL | BPF_DIV | BPF_OR | BPF_AND | BPF_LSH | BPF_RSH
                | BPF_MOD | BPF_XOR | BPF_ARSH => {
                    let off_ok =
                        insn.off == 0 || (insn.off == 1 && matches!(op, BPF_DIV | BPF_MOD));
                    if (x && insn.imm != 0) || (!x && insn.src != 0) || !off_ok {
                        return Err(bad(log, &format!("{name} uses reserved fields")));
                    }
                    if x {
                        reg_ok(log, insn.src)?;
                    } else if kernel {
                        if matches!(op, BPF_DIV | BPF_MOD) && insn.imm == 0 {
                            return Err(bad(log, "div by zero"));
                        }
                        let bits = if class == BPF_ALU64 { 64 } else { 32 };
                        if matches!(op, BPF_LSH | BPF_RSH | BPF_ARSH)
                            && (insn.imm < 0 || insn.imm >= bits)
                        {
                            return Err(bad(log, &format!("invalid shift {}", insn.imm)));
                        }
                    }
                }
                _ => return Err(bad(log, &format!("invalid BPF_ALU opcode {op:x}"))),
            }
            dst_write(log, insn.dst)
        }
        BPF_LDX => {
            let mode_ = insn.code & 0xe0;
            if !(mode_ == BPF_MEM || (mode_ == BPF_MEMSX && insn.code & 0x18 != BPF_DW)) {
                return Err(unknown(log));
            }
            if insn.imm != 0 {
                return Err(bad(log, "BPF_LDX uses reserved fields"));
            }
            reg_ok(log, insn.src)?;
            dst_write(log, insn.dst)
        }
        BPF_ST => {
            if insn.code & 0xe0 != BPF_MEM {
                return Err(unknown(log));
            }
            if insn.src != 0 {
                return Err(bad(log, "BPF_ST uses reserved fields"));
            }
            reg_ok(log, insn.dst)
        }
        BPF_STX => {
            match insn.code & 0xe0 {
                BPF_MEM => {
                    if insn.imm != 0 {
                        return Err(bad(log, "BPF_STX uses reserved fields"));
                    }
                }
                BPF_ATOMIC => {
                    if !matches!(insn.code & 0x18, BPF_W | BPF_DW) {
                        return Err(bad(log, "invalid atomic operand size"));
                    }
                    let ok = matches!(insn.imm & !BPF_FETCH, 0x00 | 0x40 | 0x50 | 0xa0)
                        || insn.imm == BPF_XCHG
                        || insn.imm == BPF_CMPXCHG;
                    if !ok {
                        return Err(bad(
                            log,
                            &format!("BPF_ATOMIC uses invalid atomic opcode {:02x}", insn.imm),
                        ));
                    }
                }
                _ => return Err(unknown(log)),
            }
            reg_ok(log, insn.src)?;
            reg_ok(log, insn.dst)
        }
        BPF_LD => {
            if insn.is_ld_imm64() {
                return dst_write(log, insn.dst);
            }
            let m = insn.code & 0xe0;
            if !(m == BPF_ABS || m == BPF_IND) || insn.code & 0x18 == BPF_DW {
                return Err(unknown(log));
            }
            if mode != Mode::SocketFilter {
                return Err(bad(
                    log,
                    "BPF_LD_[ABS|IND] instructions not allowed for this program type",
                ));
            }
            if insn.dst != 0 || insn.off != 0 || (m == BPF_ABS && insn.src != 0) {
                return Err(bad(log, "BPF_LD_[ABS|IND] uses reserved fields"));
            }
            reg_ok(log, insn.src)
        }
        _ => {
            // BPF_JMP / BPF_JMP32
            match op {
                BPF_CALL => {
                    if class == BPF_JMP32 {
                        return Err(unknown(log));
                    }
                    if x {
                        // callx: not in the kernel; the conformance dialect's helper-by-register.
                        if kernel || insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                            return Err(bad(log, "BPF_CALL uses reserved fields"));
                        }
                        return reg_ok(log, insn.dst);
                    }
                    if insn.off != 0
                        || insn.dst != 0
                        || (insn.src != 0 && insn.src != BPF_PSEUDO_CALL)
                    {
                        return Err(bad(log, "BPF_CALL uses reserved fields"));
                    }
                    Ok(())
                }
                BPF_EXIT => {
                    if x || insn.imm != 0
                        || insn.src != 0
                        || insn.dst != 0
                        || insn.off != 0
                        || class == BPF_JMP32
                    {
                        return Err(bad(log, "BPF_EXIT uses reserved fields"));
                    }
                    Ok(())
                }
                BPF_JA => {
                    if x || insn.src != 0
                        || insn.dst != 0
                        || (class == BPF_JMP && insn.imm != 0)
                        || (class == BPF_JMP32 && insn.off != 0)
                    {
                        return Err(bad(log, "BPF_JA uses reserved fields"));
                    }
                    Ok(())
                }
                BPF_JCOND => {
                    if class == BPF_JMP32 || x || insn.src != 0 || insn.dst != 0 || insn.imm != 0 {
                        return Err(bad(log, "invalid may_goto"));
                    }
                    Ok(())
                }
                0xf0 => Err(unknown(log)),
                _ => {
                    if x {
                        if insn.imm != 0 {
                            return Err(bad(log, "BPF_JMP/JMP32 uses reserved fields"));
                        }
                        reg_ok(log, insn.src)?;
                    } else if insn.src != 0 {
                        return Err(bad(log, "BPF_JMP/JMP32 uses reserved fields"));
                    }
                    reg_ok(log, insn.dst)
                }
            }
        }
    }
}
