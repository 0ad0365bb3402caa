//! Keep secrets out of core dumps: hushd and hush-agent hold unseal keys, tokens and secret
//! values in memory, so each marks itself not dumpable (`prctl(PR_SET_DUMPABLE, 0)`) first
//! thing. The kernel then writes no core file for it, refuses `ptrace` attaches by other
//! processes of the same user, and makes its `/proc/PID` files (`mem`, `environ`, `maps`)
//! root's. The flag is reset when a process `exec`s, so the commands the agent starts are not
//! affected.

/// Mark this process not dumpable.
pub fn forbid() -> std::io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(std::io::Error::from)
}

/// Whether this process may dump core (false once [`forbid`] ran).
pub fn allowed() -> std::io::Result<bool> {
    let now = rustix::process::dumpable_behavior().map_err(std::io::Error::from)?;
    Ok(now != rustix::process::DumpableBehavior::NotDumpable)
}

#[cfg(test)]
mod tests {
    #[test]
    fn forbid_clears_the_dumpable_flag() {
        // The test process itself: it starts dumpable and stays not dumpable.
        super::forbid().unwrap();
        assert!(!super::allowed().unwrap());
    }
}
