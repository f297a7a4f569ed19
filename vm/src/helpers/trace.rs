//! `bpf_trace_printk` with the kernel's format rules (kernel/bpf/helpers.c
//! `bpf_bprintf_prepare`): at most 3 conversions among %d %i %u %x %X %c %s %p
//! (%px %pK...) with l/ll modifiers, flags and width; anything else -EINVAL. The
//! message goes to `HostEnv::trace_printk` (the daemon's trace pipe) and the log.

use crate::run::{Fault, HelperCtx};

const MAX_STR: usize = 512;

fn read_str(ctx: &dyn HelperCtx, addr: u64) -> String {
    let mut out = Vec::new();
    for i in 0..MAX_STR as u64 {
        match ctx.read(addr.wrapping_add(i), 1) {
            Ok(b) if b[0] != 0 => out.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pad(s: String, width: usize, left: bool, zero: bool) -> String {
    if s.len() >= width {
        return s;
    }
    let fill = width - s.len();
    if left {
        format!("{s}{}", " ".repeat(fill))
    } else if zero {
        let (sign, digits) = match s.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("", &s[..]),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

/// A format `bpf_trace_printk` refuses (-EINVAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadFormat;

/// Format like the kernel.
pub fn format(ctx: &dyn HelperCtx, fmt: &[u8], args: [u64; 3]) -> Result<String, BadFormat> {
    // The format must be NUL-terminated inside fmt_size.
    let end = fmt.iter().position(|&b| b == 0).ok_or(BadFormat)?;
    let fmt = &fmt[..end];
    let mut out = String::new();
    let mut n = 0usize;
    let mut i = 0usize;
    while i < fmt.len() {
        let c = fmt[i];
        if !(c.is_ascii_graphic() || c.is_ascii_whitespace()) {
            return Err(BadFormat);
        }
        if c != b'%' {
            out.push(c as char);
            i += 1;
            continue;
        }
        if fmt.get(i + 1) == Some(&b'%') {
            out.push('%');
            i += 2;
            continue;
        }
        if n >= 3 {
            return Err(BadFormat);
        }
        i += 1;
        let (mut left, mut zero, mut plus, mut space) = (false, false, false, false);
        while let Some(&f) = fmt.get(i) {
            match f {
                b'-' => left = true,
                b'0' => zero = true,
                b'+' => plus = true,
                b' ' => space = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        while let Some(&d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
            width = width * 10 + (d - b'0') as usize;
            i += 1;
        }
        let arg = args[n];
        n += 1;
        let conv = *fmt.get(i).ok_or(BadFormat)?;
        let s = match conv {
            b'c' => {
                i += 1;
                ((arg as u8) as char).to_string()
            }
            b's' => {
                i += 1;
                read_str(ctx, arg)
            }
            b'p' => {
                i += 1;
                // %p, %px, %pK, %ps/%pS (symbols: printed raw here), %pB.
                if let Some(&m) = fmt.get(i) {
                    if matches!(m, b'x' | b'K' | b's' | b'S' | b'B') {
                        i += 1;
                    } else if matches!(m, b'i' | b'I') {
                        return Err(BadFormat); // %pI4/%pi6 need kernel pointer reads: not supported
                    }
                }
                format!("{arg:016x}")
            }
            _ => {
                let mut l = 0;
                while fmt.get(i) == Some(&b'l') {
                    l += 1;
                    i += 1;
                }
                if l > 2 {
                    return Err(BadFormat);
                }
                let conv = *fmt.get(i).ok_or(BadFormat)?;
                i += 1;
                let v = if l == 0 { arg as u32 as u64 } else { arg };
                match conv {
                    b'd' | b'i' => {
                        let x = if l == 0 {
                            v as u32 as i32 as i64
                        } else {
                            v as i64
                        };
                        let mut s = x.to_string();
                        if x >= 0 && plus {
                            s.insert(0, '+');
                        } else if x >= 0 && space {
                            s.insert(0, ' ');
                        }
                        s
                    }
                    b'u' => v.to_string(),
                    b'x' => format!("{v:x}"),
                    b'X' => format!("{v:X}"),
                    _ => return Err(BadFormat),
                }
            }
        };
        out.push_str(&pad(s, width, left, zero && !left));
    }
    Ok(out)
}

/// `long bpf_trace_printk(fmt, fmt_size, ...)`: bytes written, or -EINVAL.
pub fn trace_printk(ctx: &mut dyn HelperCtx, a: [u64; 5]) -> Result<u64, Fault> {
    let size = a[1] as usize;
    if size == 0 {
        return Ok(-(libc::EINVAL as i64) as u64);
    }
    let fmt = ctx.read(a[0], size)?.to_vec();
    match format(ctx, &fmt, [a[2], a[3], a[4]]) {
        Ok(msg) => {
            tracing::info!(target: "bpf_trace_printk", "{}", msg.trim_end_matches('\n'));
            ctx.host().trace_printk(&msg);
            Ok(msg.len() as u64)
        }
        Err(BadFormat) => Ok(-(libc::EINVAL as i64) as u64),
    }
}
