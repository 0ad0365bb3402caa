//! A process's own resident memory and CPU time through sysinfo, refreshing only its pid:
//! what hushd's and hush-agent's metrics report as RSS and CPU seconds.

/// Our own process's figures.
pub struct ProcessStats {
    system: Option<sysinfo::System>,
    pid: Option<sysinfo::Pid>,
    /// CPU seconds already handed out by [`ProcessStats::refresh`].
    cpu_seen: f64,
}

impl std::fmt::Debug for ProcessStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessStats")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Default for ProcessStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessStats {
    pub fn new() -> Self {
        Self {
            system: sysinfo::System::new().ok(),
            pid: sysinfo::get_current_pid().ok(),
            cpu_seen: 0.0,
        }
    }

    /// (RSS bytes, CPU seconds since the last call), for a gauge and a counter; `None` where
    /// the platform tells nothing.
    pub fn refresh(&mut self) -> Option<(u64, f64)> {
        let (system, pid) = (self.system.as_mut()?, self.pid?);
        system.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::Some(&[pid]),
            false,
            sysinfo::ProcessRefreshKind::nothing()
                .with_memory()
                .with_cpu(),
        );
        let process = system.process(pid)?;
        let cpu = process.accumulated_cpu_time() as f64 / 1000.0;
        let delta = (cpu - self.cpu_seen).max(0.0);
        self.cpu_seen = self.cpu_seen.max(cpu);
        Some((process.memory(), delta))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_own_process_has_memory() {
        let mut stats = super::ProcessStats::new();
        let (rss, _) = stats.refresh().expect("figures on this platform");
        assert!(rss > 0);
    }
}
