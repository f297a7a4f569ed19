fn main() {
    eprintln!("bpftime-run: the supervisor is not built yet");
    std::process::exit(1);
}
