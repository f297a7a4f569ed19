//! BPF_OBJ_GET_INFO_BY_FD (`bpf_obj_get_info_by_fd`): bpf_prog_info,
//! bpf_map_info, bpf_btf_info, bpf_link_info. attr: bpf_fd 0, info_len 4, info 8.

use super::Attr;
use crate::call::{Call, Reply};
use crate::registry::{Body, Object};

const PROG_INFO: usize = 232;
const MAP_INFO: usize = 104;
const BTF_INFO: usize = 32;
const LINK_INFO: usize = 64;

/// A little-endian struct being filled.
struct Buf(Vec<u8>);
impl Buf {
    fn u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
    }
    fn u64(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.0[off..off + 8].try_into().unwrap())
    }
    fn set_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn set_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn set_name(&mut self, off: usize, name: &str) {
        let b = name.as_bytes();
        let n = b.len().min(15);
        self.0[off..off + 16].fill(0);
        self.0[off..off + n].copy_from_slice(&b[..n]);
    }
}

pub fn get_info(call: &Call<'_>, a: &Attr) -> Reply {
    match run(call, a) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}

fn run(call: &Call<'_>, a: &Attr) -> Result<(), i32> {
    // This command answers a closed fd with EBADFD (fd class with a NULL file).
    let obj = call
        .any_object(a.i32(0))
        .map_err(|e| if e == libc::EBADF { libc::EBADFD } else { e })?
        .ok_or(libc::EINVAL)?;
    let full = match obj.body {
        Body::Prog(_) => PROG_INFO,
        Body::Map(_) => MAP_INFO,
        Body::Btf(_) => BTF_INFO,
        Body::Link(_) => LINK_INFO,
        // A perf event fd is no bpf object.
        Body::PerfEvent(_) => return Err(libc::EINVAL),
    };
    let uinfo = a.u64(8);
    let ulen = a.u32(4) as usize;
    // bpf_check_uarg_tail_zero on the info struct.
    if ulen > super::PAGE_SIZE {
        return Err(libc::E2BIG);
    }
    if ulen > full {
        let tail = call.read(uinfo + full as u64, ulen - full)?;
        if tail.iter().any(|&b| b != 0) {
            return Err(libc::E2BIG);
        }
    }
    let len = ulen.min(full);
    let mut buf = Buf(vec![0u8; full]);
    let given = call.read(uinfo, len)?;
    buf.0[..len].copy_from_slice(&given);
    let input = Buf(buf.0.clone());
    // The kernel starts from the caller's struct (prog, BTF, link info echo the
    // fields it does not set); map info starts from zero.
    if matches!(obj.body, Body::Map(_)) {
        buf.0.fill(0);
    }
    match &obj.body {
        Body::Prog(_) => prog_info(call, &obj, &input, &mut buf)?,
        Body::Map(_) => map_info(call, &obj, &mut buf),
        Body::Btf(_) => btf_info(call, &obj, &input, &mut buf)?,
        Body::Link(_) => link_info(&obj, &mut buf),
        Body::PerfEvent(_) => unreachable!("refused above"),
    }
    call.write(uinfo, &buf.0[..len])?;
    a.put_u32(call, 4, len as u32)
}

fn prog_info(call: &Call<'_>, obj: &Object, input: &Buf, out: &mut Buf) -> Result<(), i32> {
    let p = obj.as_prog().unwrap();
    let lp = &p.prog;
    let reg_maps: Vec<u32> = p.maps.lock().unwrap().iter().map(|m| m.id).collect();
    out.set_u32(0, lp.prog_type);
    out.set_u32(4, obj.id);
    out.0[8..16].copy_from_slice(&lp.tag);
    out.set_u64(40, obj.load_time);
    out.set_u32(48, obj.uid);
    out.set_name(64, &lp.name);
    out.set_u32(84, lp.gpl_compatible as u32);
    // map ids: the count always, the array when the caller gave room.
    let ulen = input.u32(52) as usize;
    out.set_u32(52, reg_maps.len() as u32);
    out.set_u64(56, input.u64(56));
    let n = ulen.min(reg_maps.len());
    if n > 0 {
        let bytes: Vec<u8> = reg_maps[..n].iter().flat_map(|i| i.to_ne_bytes()).collect();
        call.write(input.u64(56), &bytes)?;
    }
    out.set_u64(192, lp.vm.run_time_ns());
    out.set_u64(200, lp.vm.run_cnt());
    out.set_u32(216, lp.insn_cnt());
    // xlated instructions.
    let xlated = xlated_insns(call, obj);
    let ulen = input.u32(20) as usize;
    out.set_u32(20, xlated.len() as u32);
    out.set_u64(32, input.u64(32));
    if ulen > 0 && input.u64(32) != 0 {
        let n = ulen.min(xlated.len());
        call.write(input.u64(32), &xlated[..n])?;
    }
    // JIT-compiled code: one function (the JIT compiles subprograms into it), so
    // one ksym (the code's address) and one function length, as the kernel reports
    // a single-function program. Interpreted programs report 0 everywhere.
    let jited = lp.vm.jited_insns();
    let nfuncs = u32::from(!jited.is_empty());
    out.set_u32(16, jited.len() as u32);
    out.set_u64(24, input.u64(24));
    let ulen = input.u32(16) as usize;
    if ulen > 0 && input.u64(24) != 0 && !jited.is_empty() {
        call.write(input.u64(24), &jited[..ulen.min(jited.len())])?;
    }
    out.set_u32(104, nfuncs);
    out.set_u64(112, input.u64(112));
    if input.u32(104) > 0 && input.u64(112) != 0 && nfuncs > 0 {
        call.write(input.u64(112), &(jited.as_ptr() as u64).to_ne_bytes())?;
    }
    out.set_u32(108, nfuncs);
    out.set_u64(120, input.u64(120));
    if input.u32(108) > 0 && input.u64(120) != 0 && nfuncs > 0 {
        call.write(input.u64(120), &(jited.len() as u32).to_ne_bytes())?;
    }
    out.set_u32(168, 0);
    out.set_u32(128, p.btf.as_ref().map_or(0, |b| b.id));
    // func_info (8-byte records) and line_info (16-byte records).
    let fi_cnt = if lp.func_info_rec_size >= 8 {
        lp.func_info.len() / lp.func_info_rec_size as usize
    } else {
        0
    };
    out.set_u32(132, 8);
    out.set_u64(136, input.u64(136));
    out.set_u32(144, fi_cnt as u32);
    let ulen = input.u32(144) as usize;
    if ulen > 0 && fi_cnt > 0 {
        if input.u32(132) != 8 {
            return Err(libc::EINVAL);
        }
        let recs: Vec<u8> = lp
            .func_info
            .chunks(lp.func_info_rec_size as usize)
            .take(ulen.min(fi_cnt))
            .flat_map(|r| r[..8].to_vec())
            .collect();
        call.write(input.u64(136), &recs)?;
    }
    let li_cnt = if lp.line_info_rec_size >= 16 {
        lp.line_info.len() / lp.line_info_rec_size as usize
    } else {
        0
    };
    out.set_u32(172, 16);
    out.set_u64(152, input.u64(152));
    out.set_u32(148, li_cnt as u32);
    let ulen = input.u32(148) as usize;
    if ulen > 0 && li_cnt > 0 {
        if input.u32(172) != 16 {
            return Err(libc::EINVAL);
        }
        let recs: Vec<u8> = lp
            .line_info
            .chunks(lp.line_info_rec_size as usize)
            .take(ulen.min(li_cnt))
            .flat_map(|r| r[..16].to_vec())
            .collect();
        call.write(input.u64(152), &recs)?;
    }
    out.set_u32(176, 8);
    // prog_tags: one per function.
    let ntags = fi_cnt.max(1);
    out.set_u32(180, ntags as u32);
    out.set_u64(184, input.u64(184));
    let ulen = input.u32(180) as usize;
    if ulen > 0 {
        let tags: Vec<u8> = std::iter::repeat_n(lp.tag, ulen.min(ntags))
            .flatten()
            .collect();
        call.write(input.u64(184), &tags)?;
    }
    Ok(())
}

/// The instructions as `bpftool prog dump xlated` shows them: map fds in ld_imm64
/// replaced by map ids.
fn xlated_insns(call: &Call<'_>, obj: &Object) -> Vec<u8> {
    let _ = call;
    let p = obj.as_prog().unwrap();
    p.prog.xlated.clone()
}

fn map_info(_call: &Call<'_>, obj: &Object, out: &mut Buf) {
    let m = obj.as_map().unwrap();
    let a = m.map.attr();
    out.set_u32(0, a.map_type);
    out.set_u32(4, obj.id);
    out.set_u32(8, a.key_size);
    out.set_u32(12, a.value_size);
    out.set_u32(16, a.max_entries);
    out.set_u32(20, a.map_flags);
    out.set_name(24, &a.name);
    out.set_u32(64, m.btf.as_ref().map_or(0, |b| b.id));
    if m.btf.is_some() {
        out.set_u32(68, a.btf_key_type_id);
        out.set_u32(72, a.btf_value_type_id);
    }
    out.set_u64(80, a.map_extra);
}

fn btf_info(call: &Call<'_>, obj: &Object, input: &Buf, out: &mut Buf) -> Result<(), i32> {
    let b = obj.as_btf().unwrap();
    let ubtf = input.u64(0);
    let copy = (input.u32(8) as usize).min(b.data.len());
    if copy > 0 {
        call.write(ubtf, &b.data[..copy])?;
    }
    out.set_u32(8, b.data.len() as u32);
    out.set_u32(12, obj.id);
    out.set_u32(28, 0);
    // name: empty for program BTF.
    let (uname, ulen) = (input.u64(16), input.u32(24));
    if (uname == 0) != (ulen == 0) {
        return Err(libc::EINVAL);
    }
    out.set_u32(24, 0);
    if uname != 0 {
        call.write(uname, &[0])?;
    }
    Ok(())
}

fn link_info(obj: &Object, out: &mut Buf) {
    let l = obj.as_link().unwrap();
    out.set_u32(0, l.link_type);
    out.set_u32(4, obj.id);
    out.set_u32(8, l.prog.lock().unwrap().id);
    out.set_u32(16, l.ifindex.load(std::sync::atomic::Ordering::Relaxed));
}
