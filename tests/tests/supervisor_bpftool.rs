//! bpftool under bpftime-run on objects a libbpf loader created and holds: prog show,
//! prog dump xlated, prog run, map show, map lookup, map update, map dump, btf dump.
//! The same commands run against the kernel on the kernel's objects; outputs compare
//! (ids and times excepted).

#[path = "supervisor_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use bpftime_tests::privilege::{require, Need};
use common::*;
use serde_json::Value;

/// A loader in hold mode: it keeps its objects until stdin closes.
struct Holder {
    child: Child,
    /// prog, counts map, config map, btf ids.
    ids: [u32; 4],
}

impl Holder {
    fn spawn(mut cmd: Command) -> Holder {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut ids = None;
        let mut seen = String::new();
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.strip_prefix("ids ") {
                let v: Vec<u32> = rest
                    .split_whitespace()
                    .map(|x| x.parse().unwrap())
                    .collect();
                ids = Some([v[0], v[1], v[2], v[3]]);
                break;
            }
            seen.push_str(&line);
            line.clear();
        }
        let ids = ids.unwrap_or_else(|| panic!("loader did not reach hold:\n{seen}"));
        Holder { child, ids }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn bpftool(run: &dyn Fn(&[&str]) -> std::process::Output, args: &str) -> String {
    let argv: Vec<&str> = std::iter::once("bpftool")
        .chain(args.split_whitespace())
        .collect();
    stdout_ok(&run(&argv), &format!("bpftool {args}"))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad json ({e}): {s}"))
}

#[test]
fn bpftool_on_bpftime_objects() {
    if !require(&[Need::Root, Need::Bpf, Need::Clang, Need::Bpftool]) {
        return;
    }
    let tmp = TempDir::new("bpftool");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let loader = gcc(tmp.path(), "sv_loader.c", "loader", false, &["-lbpf"]);
    let pkt = tmp.path().join("pkt");
    std::fs::write(&pkt, [0xabu8; 60]).unwrap();
    let pkt = pkt.to_str().unwrap().to_string();
    let d = Daemon::start();

    let native_run = |argv: &[&str]| Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    let ours_run = |argv: &[&str]| d.run(argv);
    let mut kcmd = Command::new(&loader);
    kcmd.arg(&obj).arg("hold");
    let kern = Holder::spawn(kcmd);
    let mut ocmd = d.run_cmd(&[loader.to_str().unwrap(), obj.to_str().unwrap(), "hold"]);
    ocmd.stderr(Stdio::null());
    let ours = Holder::spawn(ocmd);

    let mut results = Vec::new();
    for (who, run, h) in [
        ("kernel", &native_run as &dyn Fn(&[&str]) -> _, &kern),
        ("bpftime", &ours_run, &ours),
    ] {
        let [p, c, g, b] = h.ids;
        let prog = json(&bpftool(run, &format!("-j prog show id {p}")));
        let map = json(&bpftool(run, &format!("-j map show id {c}")));
        let btf = bpftool(run, &format!("btf dump id {b}"));
        let lookup = bpftool(run, &format!("map lookup id {g} key 1 0 0 0"));
        bpftool(run, &format!("map update id {g} key 2 0 0 0 value 9 0 0 0"));
        let dump = bpftool(run, &format!("map dump id {g}"));
        let prun = bpftool(run, &format!("prog run id {p} data_in {pkt} repeat 3"));
        let xlated = bpftool(run, &format!("prog dump xlated id {p}"));
        let retval = prun
            .lines()
            .next()
            .unwrap_or("")
            .split(',')
            .next()
            .unwrap_or("")
            .to_string();
        results.push((who, prog, map, btf, lookup, dump, retval, xlated));
    }
    let (k, o) = (&results[0], &results[1]);
    for f in ["type", "name", "tag", "gpl_compatible"] {
        assert_eq!(
            k.1[f], o.1[f],
            "prog show field {f}: kernel {} bpftime {}",
            k.1, o.1
        );
    }
    assert_eq!(
        k.1["map_ids"].as_array().unwrap().len(),
        o.1["map_ids"].as_array().unwrap().len()
    );
    assert!(
        o.1["btf_id"].as_u64().unwrap_or(0) > 0,
        "no btf_id: {}",
        o.1
    );
    for f in [
        "type",
        "name",
        "flags",
        "bytes_key",
        "bytes_value",
        "max_entries",
    ] {
        assert_eq!(
            k.2[f], o.2[f],
            "map show field {f}: kernel {} bpftime {}",
            k.2, o.2
        );
    }
    assert_eq!(k.3, o.3, "btf dump differs");
    assert!(o.3.contains("INT 'int'"), "{}", o.3);
    assert_eq!(k.4, o.4, "map lookup differs");
    assert_eq!(k.5, o.5, "map dump differs");
    assert_eq!(k.6, o.6, "prog run differs");
    assert!(o.6.starts_with("Return value: 2"), "{}", o.6);
    assert!(
        o.7.contains("sv_prog") && o.7.contains("exit"),
        "xlated dump:\n{}",
        o.7
    );

    // Only the held program is listed: libbpf's probe programs are gone, as in the kernel.
    let all = json(&bpftool(&ours_run, "-j prog show"));
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["sv_prog"], "programs listed: {all}");
    drop(ours);
    drop(kern);
}

/// Pinning commands: `map create`, `map update/lookup/dump pinned`, `prog load`,
/// `prog show pinned`, `prog run pinned`, against the kernel's /sys/fs/bpf and ours.
#[test]
fn bpftool_pinning_commands() {
    if !require(&[
        Need::Root,
        Need::Bpf,
        Need::Clang,
        Need::Bpftool,
        Need::Fuse,
    ]) {
        return;
    }
    let tmp = TempDir::new("bpftool-pin");
    let obj = clang_bpf(tmp.path(), "sv_prog.bpf.c", "sv_prog.bpf.o");
    let obj = obj.to_str().unwrap().to_string();
    let pkt = tmp.path().join("pkt");
    std::fs::write(&pkt, [0xabu8; 60]).unwrap();
    let pkt = pkt.to_str().unwrap().to_string();
    let d = Daemon::start();
    // A unique name so parallel runs on the host's kernel bpffs do not collide.
    let tag = tmp
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .replace('.', "_");
    let (m, p) = (
        format!("/sys/fs/bpf/{tag}_m"),
        format!("/sys/fs/bpf/{tag}_p"),
    );
    let native_run = |argv: &[&str]| Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    let ours_run = |argv: &[&str]| d.run(argv);
    let mut outs = Vec::new();
    for run in [
        &native_run as &dyn Fn(&[&str]) -> std::process::Output,
        &ours_run,
    ] {
        let _ = run(&["rm", "-f", &m, &p]);
        bpftool(
            run,
            &format!("map create {m} type hash key 4 value 8 entries 8 name pm"),
        );
        bpftool(
            run,
            &format!("map update pinned {m} key 1 0 0 0 value 2 0 0 0 0 0 0 0"),
        );
        bpftool(
            run,
            &format!("map update pinned {m} key 3 0 0 0 value 4 0 0 0 0 0 0 0"),
        );
        let show = json(&bpftool(run, &format!("-j map show pinned {m}")));
        let lookup = bpftool(run, &format!("map lookup pinned {m} key 3 0 0 0"));
        let mut dump = bpftool(run, &format!("map dump pinned {m}"))
            .lines()
            .map(String::from)
            .collect::<Vec<_>>();
        dump.sort();
        bpftool(run, &format!("prog load {obj} {p}"));
        let prog = json(&bpftool(run, &format!("-j prog show pinned {p}")));
        let prun = bpftool(run, &format!("prog run pinned {p} data_in {pkt}"));
        let exists = stdout_ok(&run(&["stat", "-c", "%s %a %F", &m]), "stat pin");
        let again = run(&[
            "bpftool", "map", "create", &m, "type", "hash", "key", "4", "value", "8", "entries",
            "8",
        ]);
        let _ = run(&["rm", "-f", &m, &p]);
        outs.push((
            show,
            lookup,
            dump,
            prog,
            prun.split(',').next().unwrap_or("").to_string(),
            exists,
            again.status.success(),
        ));
    }
    let (k, o) = (&outs[0], &outs[1]);
    for f in [
        "type",
        "name",
        "flags",
        "bytes_key",
        "bytes_value",
        "max_entries",
    ] {
        assert_eq!(k.0[f], o.0[f], "map show pinned {f}: {} vs {}", k.0, o.0);
    }
    assert_eq!(k.1, o.1, "lookup pinned");
    assert_eq!(k.2, o.2, "dump pinned");
    for f in ["type", "name", "tag", "gpl_compatible"] {
        assert_eq!(k.3[f], o.3[f], "prog show pinned {f}: {} vs {}", k.3, o.3);
    }
    assert_eq!(k.4, o.4, "prog run pinned");
    assert_eq!(k.5, o.5, "pin file attributes");
    assert_eq!(
        (k.6, o.6),
        (false, false),
        "pinning over an existing pin must fail"
    );
    // The pins are gone, so are the objects.
    assert_eq!(
        d.wait_empty(std::time::Duration::from_secs(5)),
        (0, 0, 0, 0),
        "{}",
        d.status()
    );
}
