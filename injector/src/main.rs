//! `hush-injector`: the webhook's process edge (flags, TLS, listeners, signals).

fn main() -> anyhow::Result<()> {
    Ok(())
}
