//! Compiles the BPF C corpus (tests/progs/*.c) with clang-19 into OUT_DIR, twice:
//! `<stem>.v3.o` (-mcpu=v3) and `<stem>.v4.o` (-mcpu=v4). No object file is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    let mut failures = Vec::new();
    let mut children = Vec::new();
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
            children.push((stem.clone(), cpu, cmd.output()));
        }
    }
    for (stem, cpu, res) in children {
        match res {
            Ok(o) if o.status.success() => {}
            Ok(o) => failures.push(format!(
                "{stem}.c (-mcpu={cpu}):\n{}",
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => failures.push(format!("{stem}.c (-mcpu={cpu}): cannot run {clang}: {e}")),
        }
    }
    if !failures.is_empty() {
        panic!(
            "\n\nbpftime-tests: compiling the BPF corpus failed:\n{}\n",
            failures.join("\n")
        );
    }
}
