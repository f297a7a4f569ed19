//! Compiles the BPF C corpus (tests/progs/*.c) with clang-19 into OUT_DIR, twice:
//! `<stem>.v3.o` (-mcpu=v3) and `<stem>.v4.o` (-mcpu=v4). No object file is committed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let progs = manifest.join("progs");
    println!("cargo:rerun-if-changed={}", progs.display());
    println!("cargo:rerun-if-env-changed=BPFTIME_CLANG");

    let clang = std::env::var("BPFTIME_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    match Command::new(&clang).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "\n\nbpftime-tests: `{clang}` was not found. The BPF test corpus (tests/progs/*.c) is \
             compiled with clang-19.\nInstall it with `sudo bash tests/install-deps.sh` (Debian: \
             apt-get install clang-19 libbpf-dev), or point BPFTIME_CLANG at a clang >= 19.\n\n"
        ),
    }
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        panic!(
            "\n\nbpftime-tests: libbpf's headers (/usr/include/bpf/bpf_helpers.h) are missing.\n\
             Install them with `sudo bash tests/install-deps.sh` (Debian: apt-get install libbpf-dev).\n\n"
        );
    }

    let mut sources: Vec<PathBuf> = std::fs::read_dir(&progs)
        .expect("read tests/progs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c" || x == "h"))
        .collect();
    sources.sort();
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
    }
    let multiarch = Path::new("/usr/include/x86_64-linux-gnu");
    let mut jobs = Vec::new();
    for src in sources
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
    {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        for cpu in ["v3", "v4"] {
            let obj = out.join(format!("{stem}.{cpu}.o"));
            let mut cmd = Command::new(&clang);
            cmd.args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                &format!("-mcpu={cpu}"),
                "-Wall",
                "-Werror",
            ])
            .arg("-I")
            .arg(&progs);
            if multiarch.exists() {
                cmd.arg("-I").arg(multiarch);
            }
            cmd.arg("-c").arg(src).arg("-o").arg(&obj);
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            jobs.push((format!("{stem}.c (-mcpu={cpu})"), cmd));
        }
    }
    // NUM_JOBS compilers at a time (cargo's -j)
    let parallel: usize = std::env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2)
        .max(1);
    let mut failures = Vec::new();
    for chunk in jobs.chunks_mut(parallel) {
        let children: Vec<_> = chunk
            .iter_mut()
            .map(|(what, cmd)| (what.clone(), cmd.spawn()))
            .collect();
        for (what, child) in children {
            match child.and_then(|c| c.wait_with_output()) {
                Ok(o) if o.status.success() => {}
                Ok(o) => failures.push(format!("{what}:\n{}", String::from_utf8_lossy(&o.stderr))),
                Err(e) => failures.push(format!("{what}: cannot run {clang}: {e}")),
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "\n\nbpftime-tests: compiling the BPF corpus failed:\n{}\n",
            failures.join("\n")
        );
    }
}
