//! The helper table: one [`HelperSpec`] per helper id, one module per family.
//! The verifier refuses calls to ids not in the table (EINVAL, as the kernel's
//! "invalid func unknown#N"); the interpreter calls `spec.func`.
//!
//! The table is the set of helpers the kernel offers XDP programs
//! (`xdp_func_proto` + `bpf_base_func_proto`) that bpftime implements; [`get_for`]
//! filters by program type (`bpf_csum_update`, a socket-buffer helper, is refused
//! for XDP as the kernel does: it is not in this table).

use crate::run::HelperFn;

pub mod csum;
pub mod fib;
pub mod map;
pub mod misc;
pub mod redirect;
pub mod ringbuf;
pub mod time;
pub mod trace;
pub mod xdp;

/// What kind of value a helper argument must be (checked at load where the
/// verifier can, and at run time through `HelperCtx` always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// Unused argument.
    None,
    /// Any scalar.
    Anything,
    /// A map handle.
    Map,
    /// Pointer to a key of the map's key size.
    MapKey,
    /// Pointer to a value of the map's value size.
    MapValue,
    /// Pointer to memory whose size is the next argument.
    Mem,
    /// Size of the previous `Mem` argument.
    Size,
    /// The program's context.
    Ctx,
    /// A BPF function (`ld_imm64 FUNC`).
    Func,
    /// A `struct bpf_spin_lock` in a map value.
    SpinLock,
}

/// One helper.
pub struct HelperSpec {
    pub id: u32,
    pub name: &'static str,
    pub func: HelperFn,
    pub args: [ArgKind; 5],
    /// Only callable from GPL-compatible programs.
    pub gpl_only: bool,
}

/// Helper ids (`enum bpf_func_id`).
pub mod id {
    pub const MAP_LOOKUP_ELEM: u32 = 1;
    pub const MAP_UPDATE_ELEM: u32 = 2;
    pub const MAP_DELETE_ELEM: u32 = 3;
    pub const KTIME_GET_NS: u32 = 5;
    pub const TRACE_PRINTK: u32 = 6;
    pub const GET_PRANDOM_U32: u32 = 7;
    pub const GET_SMP_PROCESSOR_ID: u32 = 8;
    pub const TAIL_CALL: u32 = 12;
    pub const REDIRECT: u32 = 23;
    pub const PERF_EVENT_OUTPUT: u32 = 25;
    pub const CSUM_DIFF: u32 = 28;
    pub const CSUM_UPDATE: u32 = 40;
    pub const GET_NUMA_NODE_ID: u32 = 42;
    pub const XDP_ADJUST_HEAD: u32 = 44;
    pub const REDIRECT_MAP: u32 = 51;
    pub const XDP_ADJUST_META: u32 = 54;
    pub const XDP_ADJUST_TAIL: u32 = 65;
    pub const FIB_LOOKUP: u32 = 69;
    pub const MAP_PUSH_ELEM: u32 = 87;
    pub const MAP_POP_ELEM: u32 = 88;
    pub const MAP_PEEK_ELEM: u32 = 89;
    pub const SPIN_LOCK: u32 = 93;
    pub const SPIN_UNLOCK: u32 = 94;
    pub const JIFFIES64: u32 = 118;
    pub const KTIME_GET_BOOT_NS: u32 = 125;
    pub const RINGBUF_OUTPUT: u32 = 130;
    pub const RINGBUF_RESERVE: u32 = 131;
    pub const RINGBUF_SUBMIT: u32 = 132;
    pub const RINGBUF_DISCARD: u32 = 133;
    pub const RINGBUF_QUERY: u32 = 134;
    pub const KTIME_GET_COARSE_NS: u32 = 160;
    pub const CHECK_MTU: u32 = 163;
    pub const FOR_EACH_MAP_ELEM: u32 = 164;
    pub const LOOP: u32 = 181;
    pub const XDP_GET_BUFF_LEN: u32 = 188;
    pub const XDP_LOAD_BYTES: u32 = 189;
    pub const XDP_STORE_BYTES: u32 = 190;
    pub const KTIME_GET_TAI_NS: u32 = 208;
}

use ArgKind::{
    Anything as A, Ctx as C, Func as F, Map as M, MapKey as K, MapValue as V, Mem, None as N,
    Size as S,
};

macro_rules! h {
    ($id:expr, $name:literal, $f:path, [$($a:expr),*], $gpl:expr) => {
        HelperSpec { id: $id, name: $name, func: $f, args: [$($a),*], gpl_only: $gpl }
    };
}

static TABLE: &[HelperSpec] = &[
    h!(
        id::MAP_LOOKUP_ELEM,
        "map_lookup_elem",
        map::lookup,
        [M, K, N, N, N],
        false
    ),
    h!(
        id::MAP_UPDATE_ELEM,
        "map_update_elem",
        map::update,
        [M, K, V, A, N],
        false
    ),
    h!(
        id::MAP_DELETE_ELEM,
        "map_delete_elem",
        map::delete,
        [M, K, N, N, N],
        false
    ),
    h!(
        id::MAP_PUSH_ELEM,
        "map_push_elem",
        map::push,
        [M, V, A, N, N],
        false
    ),
    h!(
        id::MAP_POP_ELEM,
        "map_pop_elem",
        map::pop,
        [M, V, N, N, N],
        false
    ),
    h!(
        id::MAP_PEEK_ELEM,
        "map_peek_elem",
        map::peek,
        [M, V, N, N, N],
        false
    ),
    h!(
        id::FOR_EACH_MAP_ELEM,
        "for_each_map_elem",
        map::for_each,
        [M, F, A, A, N],
        false
    ),
    h!(
        id::KTIME_GET_NS,
        "ktime_get_ns",
        time::ktime_get_ns,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::KTIME_GET_BOOT_NS,
        "ktime_get_boot_ns",
        time::ktime_get_boot_ns,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::KTIME_GET_COARSE_NS,
        "ktime_get_coarse_ns",
        time::ktime_get_coarse_ns,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::KTIME_GET_TAI_NS,
        "ktime_get_tai_ns",
        time::ktime_get_tai_ns,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::JIFFIES64,
        "jiffies64",
        time::jiffies64,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::TRACE_PRINTK,
        "trace_printk",
        trace::trace_printk,
        // The kernel's proto declares two arguments: r3..r5 may be uninitialized.
        [Mem, S, N, N, N],
        true
    ),
    h!(
        id::GET_PRANDOM_U32,
        "get_prandom_u32",
        misc::get_prandom_u32,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::GET_SMP_PROCESSOR_ID,
        "get_smp_processor_id",
        misc::get_smp_processor_id,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::GET_NUMA_NODE_ID,
        "get_numa_node_id",
        misc::get_numa_node_id,
        [N, N, N, N, N],
        false
    ),
    h!(
        id::TAIL_CALL,
        "tail_call",
        misc::tail_call,
        [C, M, A, N, N],
        false
    ),
    h!(id::LOOP, "loop", misc::bpf_loop, [A, F, A, A, N], false),
    h!(
        id::SPIN_LOCK,
        "spin_lock",
        misc::spin_lock,
        [ArgKind::SpinLock, N, N, N, N],
        false
    ),
    h!(
        id::SPIN_UNLOCK,
        "spin_unlock",
        misc::spin_unlock,
        [ArgKind::SpinLock, N, N, N, N],
        false
    ),
    h!(
        id::PERF_EVENT_OUTPUT,
        "perf_event_output",
        misc::perf_event_output,
        [C, M, A, Mem, S],
        true
    ),
    h!(
        id::REDIRECT,
        "redirect",
        redirect::redirect,
        [A, A, N, N, N],
        false
    ),
    h!(
        id::REDIRECT_MAP,
        "redirect_map",
        redirect::redirect_map,
        [M, A, A, N, N],
        false
    ),
    h!(
        id::CSUM_DIFF,
        "csum_diff",
        csum::csum_diff,
        [Mem, S, Mem, S, A],
        false
    ),
    h!(
        id::XDP_ADJUST_HEAD,
        "xdp_adjust_head",
        xdp::adjust_head,
        [C, A, N, N, N],
        false
    ),
    h!(
        id::XDP_ADJUST_META,
        "xdp_adjust_meta",
        xdp::adjust_meta,
        [C, A, N, N, N],
        false
    ),
    h!(
        id::XDP_ADJUST_TAIL,
        "xdp_adjust_tail",
        xdp::adjust_tail,
        [C, A, N, N, N],
        false
    ),
    h!(
        id::XDP_GET_BUFF_LEN,
        "xdp_get_buff_len",
        xdp::get_buff_len,
        [C, N, N, N, N],
        false
    ),
    h!(
        id::XDP_LOAD_BYTES,
        "xdp_load_bytes",
        xdp::load_bytes,
        [C, A, Mem, S, N],
        false
    ),
    h!(
        id::XDP_STORE_BYTES,
        "xdp_store_bytes",
        xdp::store_bytes,
        [C, A, Mem, S, N],
        false
    ),
    h!(
        id::FIB_LOOKUP,
        "fib_lookup",
        fib::fib_lookup,
        [C, Mem, S, A, N],
        false
    ),
    h!(
        id::CHECK_MTU,
        "check_mtu",
        fib::check_mtu,
        [C, A, A, A, A],
        false
    ),
    h!(
        id::RINGBUF_OUTPUT,
        "ringbuf_output",
        ringbuf::output,
        [M, Mem, S, A, N],
        false
    ),
    h!(
        id::RINGBUF_RESERVE,
        "ringbuf_reserve",
        ringbuf::reserve,
        [M, A, A, N, N],
        false
    ),
    h!(
        id::RINGBUF_SUBMIT,
        "ringbuf_submit",
        ringbuf::submit,
        [A, A, N, N, N],
        false
    ),
    h!(
        id::RINGBUF_DISCARD,
        "ringbuf_discard",
        ringbuf::discard,
        [A, A, N, N, N],
        false
    ),
    h!(
        id::RINGBUF_QUERY,
        "ringbuf_query",
        ringbuf::query,
        [M, A, N, N, N],
        false
    ),
];

/// The helper with this id, if bpftime implements it for XDP programs.
pub fn get(id: u32) -> Option<&'static HelperSpec> {
    TABLE.iter().find(|h| h.id == id)
}

/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = 6;

/// The helper with this id for a program of `prog_type`, as the kernel's
/// `get_func_proto` of that type: XDP gets the table; other types only the base
/// helpers (no packet helpers), and nothing that needs an skb.
pub fn get_for(id: u32, prog_type: u32) -> Option<&'static HelperSpec> {
    let h = get(id)?;
    if prog_type == PROG_TYPE_XDP {
        return Some(h);
    }
    let xdp_only = matches!(
        id,
        id::REDIRECT
            | id::REDIRECT_MAP
            | id::CSUM_DIFF
            | id::XDP_ADJUST_HEAD
            | id::XDP_ADJUST_META
            | id::XDP_ADJUST_TAIL
            | id::XDP_GET_BUFF_LEN
            | id::XDP_LOAD_BYTES
            | id::XDP_STORE_BYTES
            | id::FIB_LOOKUP
            | id::CHECK_MTU
            | id::PERF_EVENT_OUTPUT
    );
    (!xdp_only).then_some(h)
}

/// Every implemented helper (for the support table / docs).
pub fn all() -> &'static [HelperSpec] {
    TABLE
}

#[cfg(test)]
pub(crate) mod testctx;
#[cfg(test)]
mod tests;
