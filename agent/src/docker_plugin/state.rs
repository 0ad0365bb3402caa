//! The plugin's state file, `STATE_DIR/volumes.json`: each volume's name and options (file
//! names, secret paths and settings — never a secret value), so volumes outlive a restart of
//! the plugin. Written crash-safely (temporary file, fsync, rename, fsync of the directory).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the state directory.
pub const FILE_NAME: &str = "volumes.json";
const VERSION: u32 = 1;

/// What survives a restart.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// Volume name -> its options as given to `docker volume create`.
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {op} {}: {err}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{} does not parse: {msg}", path.display())]
    Parse { path: PathBuf, msg: String },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |err| StateError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// Read the state (empty when there is no file yet).
pub fn load(dir: &Path) -> Result<State, StateError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io("read", &path)(e)),
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|e| StateError::Parse {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    if state.version != VERSION {
        return Err(StateError::Parse {
            path,
            msg: format!("version {}, want {VERSION}", state.version),
        });
    }
    Ok(state)
}

/// Write the volumes (0600, crash-safe).
pub fn save(
    dir: &Path,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), StateError> {
    let state = State {
        version: VERSION,
        volumes,
    };
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let bytes = serde_json::to_vec_pretty(&state).map_err(|e| StateError::Parse {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(&bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_and_empty_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), State::default());
        let mut volumes = BTreeMap::new();
        volumes.insert(
            "app".to_string(),
            BTreeMap::from([("pw".to_string(), "secret/data/app#pw".to_string())]),
        );
        save(dir.path(), volumes.clone()).unwrap();
        let got = load(dir.path()).unwrap();
        assert_eq!(got.volumes, volumes);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(
            dir.path().join(FILE_NAME),
            b"{\"version\":2,\"volumes\":{}}",
        )
        .unwrap();
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("version 2"));
    }
}
