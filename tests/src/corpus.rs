//! The BPF program corpus: XDP programs in C (tests/progs/*.c) written for this project,
//! compiled by build.rs with clang-19 in two flavours (`-mcpu=v3`, `-mcpu=v4`).
//!
//! Every program is deterministic on a given packet (no time or random number in a verdict
//! or an output byte; `ktime_stamp` keeps time only in its `stamps` map, see
//! [`CorpusProg::volatile_maps`]), so the kernel and bpftime can be compared byte for byte.
//! [`CorpusProg::setup`] lists what user space must put in the maps before running.

use std::path::PathBuf;

/// Which `-mcpu` an object was compiled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// `-mcpu=v3`: ALU32, JMP32, atomics.
    V3,
    /// `-mcpu=v4`: v3 plus sign-extending loads/moves, `gotol`, unconditional bswap, sdiv/smod.
    V4,
}

impl Flavour {
    /// Both flavours.
    pub const ALL: [Flavour; 2] = [Flavour::V3, Flavour::V4];

    /// "v3" or "v4".
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::V3 => "v3",
            Flavour::V4 => "v4",
        }
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing user space puts into a map before the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `map[key] = value` (raw bytes, BPF_ANY).
    Update {
        map: &'static str,
        key: &'static [u8],
        value: &'static [u8],
    },
    /// PROG_ARRAY `map[key] = fd of program prog` (same object).
    ProgArray {
        map: &'static str,
        key: u32,
        prog: &'static str,
    },
    /// ARRAY_OF_MAPS `outer[key] = fd of map inner` (same object).
    InnerMap {
        outer: &'static str,
        key: u32,
        inner: &'static str,
    },
    /// DEVMAP `map[key] = ifindex` (u32 value).
    Devmap {
        map: &'static str,
        key: u32,
        ifindex: u32,
    },
}

/// One program of the corpus (its entry point; some objects hold more programs).
#[derive(Debug, Clone, Copy)]
pub struct CorpusProg {
    /// The object's name: `tests/progs/<file>.c`, compiled to `<file>.<flavour>.o`.
    pub file: &'static str,
    /// The entry program (the C function in `SEC("xdp")`).
    pub prog: &'static str,
    /// What it covers.
    pub covers: &'static str,
    /// What user space puts into the maps first, in order.
    pub setup: &'static [Setup],
    /// Maps whose contents are not deterministic (time) and must not be compared.
    pub volatile_maps: &'static [&'static str],
    /// Helpers (by id) the program calls, so a VM can skip programs it cannot run yet.
    pub helpers: &'static [u32],
}

impl CorpusProg {
    /// The source file.
    pub fn source_file(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("progs")
            .join(format!("{}.c", self.file))
    }

    /// The compiled object for `flavour`.
    pub fn object(&self, flavour: Flavour) -> PathBuf {
        object(self.file, flavour)
    }
}

/// The path of `<file>.<flavour>.o` in the build's OUT_DIR.
pub fn object(file: &str, flavour: Flavour) -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join(format!("{file}.{}.o", flavour.as_str()))
}

/// The bytes of `<file>.<flavour>.o`.
pub fn bytes(file: &str, flavour: Flavour) -> std::io::Result<Vec<u8>> {
    std::fs::read(object(file, flavour))
}

/// Finds a corpus program by its file or entry-program name.
pub fn get(name: &str) -> Option<&'static CorpusProg> {
    all().iter().find(|p| p.file == name || p.prog == name)
}

/// Every corpus program.
pub fn all() -> &'static [CorpusProg] {
    CORPUS
}

// helper ids
const LOOKUP: u32 = 1;
const UPDATE: u32 = 2;
const DELETE: u32 = 3;
const KTIME: u32 = 5;
const TAIL_CALL: u32 = 12;
const REDIRECT: u32 = 23;
const CSUM_DIFF: u32 = 28;
const ADJUST_HEAD: u32 = 44;
const REDIRECT_MAP: u32 = 51;
const ADJUST_META: u32 = 54;
const ADJUST_TAIL: u32 = 65;
const RB_OUTPUT: u32 = 130;
const RB_RESERVE: u32 = 131;
const RB_SUBMIT: u32 = 132;
const RB_DISCARD: u32 = 133;

/// LPM keys {prefixlen u32 (host order), IPv4 address (network order)}.
const LPM_10_8: [u8; 8] = [8, 0, 0, 0, 10, 0, 0, 0];
const LPM_10_1_16: [u8; 8] = [16, 0, 0, 0, 10, 1, 0, 0];
const LPM_192_168_16: [u8; 8] = [16, 0, 0, 0, 192, 168, 0, 0];
const LPM_172_16_12: [u8; 8] = [12, 0, 0, 0, 172, 16, 0, 0];

static CORPUS: &[CorpusProg] = &[
    CorpusProg {
        file: "pass_all",
        prog: "pass_all",
        covers: "XDP_PASS without touching the packet (the smallest program)",
        setup: &[],
        volatile_maps: &[],
        helpers: &[],
    },
    CorpusProg {
        file: "verdict_by_proto",
        prog: "verdict_by_proto",
        covers: "eth/VLAN/QinQ/IPv4/IPv6(+ext hdrs)/TCP/UDP/ICMP/ICMPv6 parsing with bounds checks; \
                 every verdict: ABORTED, DROP, PASS, TX, REDIRECT (bpf_redirect), bpf_redirect with \
                 flags -> ABORTED",
        setup: &[],
        volatile_maps: &[],
        helpers: &[REDIRECT],
    },
    CorpusProg {
        file: "verdict_by_len",
        prog: "verdict_by_len",
        covers: "verdict = packet length % 6: all five verdicts plus an invalid action (5); \
                 packet-pointer subtraction",
        setup: &[],
        volatile_maps: &[],
        helpers: &[],
    },
    CorpusProg {
        file: "class_counters",
        prog: "class_counters",
        covers: "ARRAY (atomic add) and PERCPU_ARRAY per-class counters",
        setup: &[],
        volatile_maps: &[],
        helpers: &[LOOKUP],
    },
    CorpusProg {
        file: "flow_hash",
        prog: "flow_hash",
        covers: "HASH keyed by the IPv4 5-tuple, insert with BPF_NOEXIST, atomic add on values",
        setup: &[],
        volatile_maps: &[],
        helpers: &[LOOKUP, UPDATE],
    },
    CorpusProg {
        file: "percpu_hash",
        prog: "percpu_hash",
        covers: "PERCPU_HASH per EtherType; map_delete_elem returning 0 then -ENOENT",
        setup: &[],
        volatile_maps: &[],
        helpers: &[LOOKUP, UPDATE, DELETE],
    },
    CorpusProg {
        file: "lru_last_len",
        prog: "lru_last_len",
        covers: "LRU_HASH keyed by IPv4 source, read-modify-update",
        setup: &[],
        volatile_maps: &[],
        helpers: &[LOOKUP, UPDATE],
    },
    CorpusProg {
        file: "lpm_acl",
        prog: "lpm_acl",
        covers: "LPM_TRIE (BPF_F_NO_PREALLOC) longest-prefix ACL filled by user space; ARRAY hits",
        setup: &[
            Setup::Update { map: "acl", key: &LPM_10_8, value: &1u32.to_ne_bytes() },
            Setup::Update { map: "acl", key: &LPM_10_1_16, value: &2u32.to_ne_bytes() },
            Setup::Update { map: "acl", key: &LPM_192_168_16, value: &3u32.to_ne_bytes() },
            Setup::Update { map: "acl", key: &LPM_172_16_12, value: &7u32.to_ne_bytes() },
        ],
        volatile_maps: &[],
        helpers: &[LOOKUP],
    },
    CorpusProg {
        file: "devmap_redirect",
        prog: "devmap_redirect",
        covers: "DEVMAP + bpf_redirect_map: hit -> REDIRECT, miss -> flags (XDP_PASS)",
        setup: &[Setup::Devmap { map: "tx_ports", key: 0, ifindex: 1 }],
        volatile_maps: &[],
        helpers: &[REDIRECT_MAP],
    },
    CorpusProg {
        file: "tail_calls",
        prog: "tail_entry",
        covers: "PROG_ARRAY tail calls by class, a chained tail call, a missing slot falling through",
        setup: &[
            Setup::ProgArray { map: "jmp", key: 3, prog: "tail_tcp" },
            Setup::ProgArray { map: "jmp", key: 4, prog: "tail_udp" },
            Setup::ProgArray { map: "jmp", key: 5, prog: "tail_icmp" },
            Setup::ProgArray { map: "jmp", key: 9, prog: "tail_chain" },
        ],
        volatile_maps: &[],
        helpers: &[LOOKUP, TAIL_CALL],
    },
    CorpusProg {
        file: "subprog_tail_calls",
        prog: "subprog_tail",
        covers: "tail calls from a subprogram: the target replaces only the subprogram and \
                 its r0 returns to the caller; a chained one, a missing slot",
        setup: &[
            Setup::ProgArray { map: "sub_jmp", key: 3, prog: "sub_tcp" },
            Setup::ProgArray { map: "sub_jmp", key: 4, prog: "sub_udp" },
            Setup::ProgArray { map: "sub_jmp", key: 5, prog: "sub_icmp" },
            Setup::ProgArray { map: "sub_jmp", key: 9, prog: "sub_chain" },
        ],
        volatile_maps: &[],
        helpers: &[LOOKUP, TAIL_CALL],
    },
    CorpusProg {
        file: "map_in_map",
        prog: "map_in_map",
        covers: "ARRAY_OF_MAPS with inner ARRAY maps set by user space, an empty outer slot",
        setup: &[
            Setup::InnerMap { outer: "outer", key: 0, inner: "inner_v4" },
            Setup::InnerMap { outer: "outer", key: 1, inner: "inner_v6" },
        ],
        volatile_maps: &[],
        helpers: &[LOOKUP],
    },
    CorpusProg {
        file: "ringbuf_events",
        prog: "ringbuf_events",
        covers: "RINGBUF: reserve/submit, reserve/discard, ringbuf_output",
        setup: &[],
        volatile_maps: &[],
        helpers: &[RB_OUTPUT, RB_RESERVE, RB_SUBMIT, RB_DISCARD],
    },
    CorpusProg {
        file: "atomics",
        prog: "atomics",
        covers: "atomics 64 and 32 bit: add, fetch_add, or, fetch_or, and, fetch_and, xor, \
                 fetch_xor, xchg, cmpxchg (success and failure)",
        setup: &[],
        volatile_maps: &[],
        helpers: &[LOOKUP],
    },
    CorpusProg {
        file: "bpf2bpf_calls",
        prog: "bpf2bpf_calls",
        covers: "non-inlined bpf-to-bpf calls: static noinline (packet pointers, nested call), a \
                 global function taking the ctx; bounded loop; .bss",
        setup: &[],
        volatile_maps: &[],
        helpers: &[],
    },
    CorpusProg {
        file: "global_data",
        prog: "global_data",
        covers: "global data: .rodata (const volatile), .data (initialised, updated), .bss",
        setup: &[],
        volatile_maps: &[],
        helpers: &[],
    },
    CorpusProg {
        file: "payload_scan",
        prog: "payload_scan",
        covers: "bounded loop (256 iterations) over the payload in a global function; ARRAY",
        setup: &[],
        volatile_maps: &[],
        helpers: &[LOOKUP],
    },
    CorpusProg {
        file: "vlan_push_pop",
        prog: "vlan_push_pop",
        covers: "bpf_xdp_adjust_head: push and pop an 802.1Q tag; an impossible adjust (-EINVAL)",
        setup: &[],
        volatile_maps: &[],
        helpers: &[ADJUST_HEAD],
    },
    CorpusProg {
        file: "adjust_tail",
        prog: "adjust_tail",
        covers: "bpf_xdp_adjust_tail: shrink to 128, grow to 60 (zero fill), impossible shrink \
                 (-EINVAL); XDP_TX",
        setup: &[],
        volatile_maps: &[],
        helpers: &[ADJUST_TAIL],
    },
    CorpusProg {
        file: "adjust_meta",
        prog: "adjust_meta",
        covers: "bpf_xdp_adjust_meta: 8 bytes of metadata written and read back via data_meta; \
                 invalid sizes fail",
        setup: &[],
        volatile_maps: &[],
        helpers: &[ADJUST_META],
    },
    CorpusProg {
        file: "csum_rewrite",
        prog: "csum_rewrite",
        covers: "bpf_csum_diff: IPv4 TTL decrement with header checksum recomputed, UDP port \
                 rewrite with incremental checksum; XDP_TX",
        setup: &[],
        volatile_maps: &[],
        helpers: &[CSUM_DIFF],
    },
    CorpusProg {
        file: "mac_swap_tx",
        prog: "mac_swap_tx",
        covers: "XDP_TX with MAC (and IPv4/IPv6 address) swap",
        setup: &[],
        volatile_maps: &[],
        helpers: &[],
    },
    CorpusProg {
        file: "icmp_echo",
        prog: "icmp_echo",
        covers: "ICMP/ICMPv6 echo responder: type rewrite, RFC 1624 incremental checksum, swap, TX",
        setup: &[],
        volatile_maps: &[],
        helpers: &[],
    },
    CorpusProg {
        file: "vlan_filter",
        prog: "vlan_filter",
        covers: "VLAN id allow-list in a HASH filled by user space; truncated tag -> ABORTED",
        setup: &[Setup::Update {
            map: "allowed_vids",
            key: &100u32.to_ne_bytes(),
            value: &0u64.to_ne_bytes(),
        }],
        volatile_maps: &[],
        helpers: &[LOOKUP],
    },
    CorpusProg {
        file: "ktime_stamp",
        prog: "ktime_stamp",
        covers: "bpf_ktime_get_ns kept in a map that is not compared; monotonic check; counter",
        setup: &[],
        volatile_maps: &["stamps"],
        helpers: &[LOOKUP, KTIME],
    },
    CorpusProg {
        file: "signed_ops",
        prog: "signed_ops",
        covers: "v4 instructions: sign-extending loads (ldsx) and moves (movsx), sdiv/smod 64 and \
                 32 bit (v3: the same results from unsigned division), arsh, bswap16/32/64",
        setup: &[],
        volatile_maps: &[],
        helpers: &[],
    },
    CorpusProg {
        file: "tcp_flags",
        prog: "tcp_flags",
        covers: "TCP flags and data offset bounds; per-bit counters in a bounded loop",
        setup: &[],
        volatile_maps: &[],
        helpers: &[LOOKUP],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_is_built_in_both_flavours() {
        assert!(all().len() >= 20);
        for p in all() {
            assert!(p.source_file().is_file(), "{}", p.source_file().display());
            for f in Flavour::ALL {
                let b = bytes(p.file, f).unwrap();
                assert_eq!(&b[..4], b"\x7fELF", "{} {f}", p.file);
            }
        }
    }

    #[test]
    fn every_source_is_listed() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("progs");
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "c") {
                let stem = p.file_stem().unwrap().to_str().unwrap();
                assert!(get(stem).is_some(), "{stem}.c is not in corpus::all()");
            }
        }
    }
}
