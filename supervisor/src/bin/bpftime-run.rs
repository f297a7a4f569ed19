//! `bpftime-run [OPTIONS] [--] CMD [ARGS...]`: run CMD with its bpf() answered by bpftime.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "bpftime-run",
    version,
    about = "Run a BPF loader with bpftime answering its bpf() calls"
)]
struct Cli {
    /// The daemon's socket (default: $BPFTIME_SOCKET or /run/bpftime/bpftimed.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Where the target sees the bpffs.
    #[arg(long, default_value = "/sys/fs/bpf")]
    bpffs: PathBuf,
    /// Print every emulated syscall (command, arguments, result) to stderr.
    #[arg(long)]
    trace_syscalls: bool,
    /// More logs (or RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<OsString>,
}

fn main() {
    let cli = Cli::parse();
    bpftime_supervisor::init_tracing(match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    });
    let opts = bpftime_supervisor::run::RunOpts {
        socket: bpftime_supervisor::proto::socket_path(cli.socket),
        bpffs: cli.bpffs,
        trace: cli.trace_syscalls,
        cmd: cli.cmd,
    };
    match bpftime_supervisor::run::run(opts) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("bpftime-run: {e:#}");
            std::process::exit(125);
        }
    }
}
