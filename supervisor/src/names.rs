//! The names bpftool prints for the kernel's numbers (program, map, link and attach
//! types, map flags), so that `bpftime status`, `top` and the metrics speak as bpftool
//! does. The tables follow `enum bpf_prog_type`, `enum bpf_map_type` and `enum
//! bpf_link_type` of include/uapi/linux/bpf.h; unknown numbers print as `type N`.

/// bpftool's name of a program type (`prog_type_name`).
pub fn prog_type(t: u32) -> String {
    const NAMES: &[&str] = &[
        "unspec",
        "socket_filter",
        "kprobe",
        "sched_cls",
        "sched_act",
        "tracepoint",
        "xdp",
        "perf_event",
        "cgroup_skb",
        "cgroup_sock",
        "lwt_in",
        "lwt_out",
        "lwt_xmit",
        "sock_ops",
        "sk_skb",
        "cgroup_device",
        "sk_msg",
        "raw_tracepoint",
        "cgroup_sock_addr",
        "lwt_seg6local",
        "lirc_mode2",
        "sk_reuseport",
        "flow_dissector",
        "cgroup_sysctl",
        "raw_tracepoint_writable",
        "cgroup_sockopt",
        "tracing",
        "struct_ops",
        "ext",
        "lsm",
        "sk_lookup",
        "syscall",
        "netfilter",
    ];
    name(NAMES, t)
}

/// bpftool's name of a map type (`map_type_name`).
pub fn map_type(t: u32) -> String {
    const NAMES: &[&str] = &[
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];
    name(NAMES, t)
}

/// bpftool's name of a link type (`link_type_name`).
pub fn link_type(t: u32) -> String {
    const NAMES: &[&str] = &[
        "unspec",
        "raw_tracepoint",
        "tracing",
        "cgroup",
        "iter",
        "netns",
        "xdp",
        "perf_event",
        "kprobe_multi",
        "struct_ops",
        "netfilter",
        "tcx",
        "uprobe_multi",
        "netkit",
        "sockmap",
    ];
    name(NAMES, t)
}

/// Map flags as their names (`BPF_F_` dropped, lowercase), joined with `,`; bits
/// without a name as hex; `-` for none.
pub fn map_flags(f: u32) -> String {
    const NAMES: &[(u32, &str)] = &[
        (1 << 0, "no_prealloc"),
        (1 << 1, "no_common_lru"),
        (1 << 2, "numa_node"),
        (1 << 3, "rdonly"),
        (1 << 4, "wronly"),
        (1 << 5, "stack_build_id"),
        (1 << 6, "zero_seed"),
        (1 << 7, "rdonly_prog"),
        (1 << 8, "wronly_prog"),
        (1 << 9, "clone"),
        (1 << 10, "mmapable"),
        (1 << 11, "preserve_elems"),
        (1 << 12, "inner_map"),
        (1 << 13, "link"),
        (1 << 14, "path_fd"),
        (1 << 15, "vtype_btf_obj_fd"),
        (1 << 16, "token_fd"),
        (1 << 17, "segv_on_fault"),
        (1 << 18, "no_user_conv"),
    ];
    if f == 0 {
        return "-".into();
    }
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let rest = NAMES.iter().fold(f, |r, (b, _)| r & !b);
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out.join(",")
}

fn name(names: &[&str], t: u32) -> String {
    names
        .get(t as usize)
        .map_or_else(|| format!("type {t}"), |n| n.to_string())
}

/// A count with a unit prefix (k, M, G), three significant digits.
pub fn human(v: f64) -> String {
    let (v, p) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    if p.is_empty() && v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}{p}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}{p}")
    } else {
        format!("{v:.2}{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_bpftool_prints_them() {
        assert_eq!(prog_type(6), "xdp");
        assert_eq!(prog_type(1), "socket_filter");
        assert_eq!(prog_type(26), "tracing");
        assert_eq!(prog_type(99), "type 99");
        assert_eq!(map_type(2), "array");
        assert_eq!(map_type(27), "ringbuf");
        assert_eq!(map_type(25), "devmap_hash");
        assert_eq!(link_type(6), "xdp");
        assert_eq!(map_flags(0), "-");
        assert_eq!(map_flags(1 << 10 | 1 << 7), "rdonly_prog,mmapable");
        assert_eq!(map_flags(1 << 30 | 1), "no_prealloc,0x40000000");
        assert_eq!(human(999.0), "999");
        assert_eq!(human(1234.0), "1.23k");
        assert_eq!(human(45_600_000.0), "45.6M");
    }

    /// The tables against this system's uapi header, where it knows the names.
    #[test]
    fn tables_follow_the_uapi_enums() {
        let Ok(h) = std::fs::read_to_string("/usr/include/linux/bpf.h") else {
            return;
        };
        let enum_body = |name: &str| -> Vec<String> {
            let start = h.find(&format!("enum {name} {{")).unwrap();
            let body = &h[start..start + h[start..].find("};").unwrap()];
            // One enumerator per line; aliases (`A = B,`) take no new number.
            body.lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| l.starts_with("BPF_") && !l.split("/*").next().unwrap().contains('='))
                .filter_map(|l| {
                    let id = l
                        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                        .next()?;
                    Some(id.trim_end_matches("_DEPRECATED").to_string())
                })
                .filter(|id| !id.contains("__MAX"))
                .collect()
        };
        for (i, id) in enum_body("bpf_prog_type").iter().enumerate() {
            let want = id.trim_start_matches("BPF_PROG_TYPE_").to_lowercase();
            assert_eq!(prog_type(i as u32), want, "{id}");
        }
        for (i, id) in enum_body("bpf_map_type").iter().enumerate() {
            let want = id.trim_start_matches("BPF_MAP_TYPE_").to_lowercase();
            assert_eq!(map_type(i as u32), want, "{id}");
        }
    }
}
