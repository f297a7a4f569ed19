fn main() {
    eprintln!("bpftime: the daemon is not built yet");
    std::process::exit(1);
}
