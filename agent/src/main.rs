//! `hush-agent`: wires flags, config, tracing, signals and shutdown; the logic is in the library.

fn main() {
    eprintln!("hush-agent: not built yet");
    std::process::exit(70);
}
