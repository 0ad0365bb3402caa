//! Handing leases from an init-style run (`--once`) to the long-running agent of the same pod,
//! so a pod never holds two leases for one secret (the double-credential problem of init
//! container + sidecar designs).
//!
//! `--once` writes `.hush-leases.json` beside the files it rendered (same tmpfs, mode 0400,
//! written to a temporary name and renamed): each leased secret's path, lease ID, terms, and
//! data (the same values the files already hold), plus when the once-run's token expires —
//! leases die with the token that made them, so the adopter treats that time as the
//! credentials' end and leases new ones before it. The long-running agent adopts the entries
//! whose lease the store still knows (`sys/leases/lookup`), then deletes the file. Nothing of
//! it is ever logged but paths and lease IDs.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_api::wire::Data;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The file's name in the destination directory (a dot name: the file writer leaves it be).
pub const FILE_NAME: &str = ".hush-leases.json";

/// One leased secret handed over.
#[derive(Serialize, Deserialize)]
pub struct Held {
    pub path: String,
    pub lease_id: String,
    /// The TTL the lease was issued with.
    pub ttl: u64,
    pub renewable: bool,
    /// Unix seconds.
    pub expires_unix: u64,
    /// When the lease was issued (Unix seconds), for the age of its data; missing in files
    /// of older agents.
    #[serde(default)]
    pub issued_unix: Option<u64>,
    pub data: Data,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("path", &self.path)
            .field("lease_id", &self.lease_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// When the once-run's token expires (Unix seconds); its leases end then at the latest.
    pub token_expires_unix: Option<u64>,
    pub leases: Vec<Held>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn path_in(dest: &Path) -> PathBuf {
    dest.join(FILE_NAME)
}

/// Write the state for the next agent (0400, atomically).
pub fn write(dest: &Path, state: &State) -> std::io::Result<()> {
    let bytes = Zeroizing::new(serde_json::to_vec(state).map_err(std::io::Error::other)?);
    let tmp = dest.join(format!("{FILE_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path_in(dest))
}

/// Read and remove the state a once-run left, if any. A file that does not parse is removed
/// too (and reported): the agent then leases anew.
pub fn take(dest: &Path) -> Result<Option<State>, String> {
    let path = path_in(dest);
    let bytes = match std::fs::read(&path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let _ = std::fs::remove_file(&path);
    match serde_json::from_slice::<State>(&bytes) {
        Ok(s) if s.version == 1 => Ok(Some(s)),
        Ok(s) => Err(format!(
            "{} has version {}, want 1",
            path.display(),
            s.version
        )),
        Err(_) => Err(format!("{} does not parse", path.display())),
    }
}

/// Seconds from now until `unix` (0 when past).
pub fn remaining(unix: u64) -> Duration {
    Duration::from_secs(unix.saturating_sub(unix_now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_is_0400_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Data::new();
        data.insert("password".into(), "pw".into());
        let state = State {
            version: 1,
            token_expires_unix: Some(unix_now() + 60),
            leases: vec![Held {
                path: "database/creds/ro".into(),
                lease_id: "database/creds/ro/abc".into(),
                ttl: 30,
                renewable: true,
                expires_unix: unix_now() + 30,
                issued_unix: Some(unix_now()),
                data,
            }],
        };
        write(dir.path(), &state).unwrap();
        let mode = std::fs::metadata(path_in(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        let got = take(dir.path()).unwrap().unwrap();
        assert_eq!(got.leases[0].lease_id, "database/creds/ro/abc");
        assert_eq!(got.leases[0].data["password"], "pw");
        assert!(take(dir.path()).unwrap().is_none(), "taken once");
        std::fs::write(path_in(dir.path()), b"{not json").unwrap();
        assert!(take(dir.path()).unwrap_err().contains("does not parse"));
        assert!(!path_in(dir.path()).exists());
    }
}
