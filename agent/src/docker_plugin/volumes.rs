//! The volumes and their lifecycle.
//!
//! A volume is a name and its options until a container mounts it. The first `Mount` mounts a
//! fresh tmpfs on `STATE_DIR/volumes/NAME`, renders every file with a single agent pass
//! (`--once`, under the mount deadline) and only then answers; a long-running agent over the
//! same directory takes the pass's leases over (the `--once` hand-off) and keeps the files
//! fresh and the leases renewed. Later mounts add their mount ID; the last `Unmount` stops the
//! agent (which revokes the volume's leases), unmounts the tmpfs and removes the directory.
//! `Remove` is refused while a container holds the volume. Both agent runs are the agent's own
//! [`crate::run`], with the plugin's server and login settings.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::options::{self, Build, OptionError};
use super::state::{self, StateError};
use crate::config::{RawConfig, ServerFlags, DEFAULT_TMPFS_SIZE};
use crate::keeper::handoff;
use crate::sink::files::fs_check;

/// Mode of a volume's tmpfs root (the files keep their own modes).
const TMPFS_MODE: u32 = 0o755;
/// How long a stopping agent may take (revoking its leases) before the tmpfs goes anyway.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What the plugin is configured with.
#[derive(Debug)]
pub struct Settings {
    /// The plugin's config (file or text) as parsed.
    pub base: RawConfig,
    /// The plugin's server and auth flags.
    pub server: ServerFlags,
    pub state_dir: PathBuf,
    /// How long the first mount may take to render every file.
    pub mount_deadline: Duration,
}

/// A volume request that failed; the message goes back to dockerd as `Err`.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    Options(#[from] OptionError),
    #[error("no volume named {0:?}")]
    NotFound(String),
    #[error("volume {name:?} already exists with other options")]
    Exists { name: String },
    #[error("volume {name:?} is in use by {mounts} container(s); stop them first")]
    InUse { name: String, mounts: usize },
    #[error("volume {name:?}: {msg}")]
    Mount { name: String, msg: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// An agent keeping a mounted volume fresh.
struct Active {
    ids: BTreeSet<String>,
    cancel: CancellationToken,
    task: std::thread::JoinHandle<()>,
}

struct Slot {
    opts: BTreeMap<String, String>,
    mountpoint: PathBuf,
    active: tokio::sync::Mutex<Option<Active>>,
}

/// A volume as `Get` and `List` show it.
pub struct Shown {
    pub name: String,
    /// Set while mounted.
    pub mountpoint: Option<PathBuf>,
    pub opts: BTreeMap<String, String>,
    pub mounts: usize,
}

/// Every volume of the plugin.
pub struct Volumes {
    settings: Settings,
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
}

/// Whether `dir` is a mount point (its device differs from its parent's).
pub fn is_mount_point(dir: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    me.dev() != parent.dev()
}

impl Volumes {
    /// The volumes of the state directory (created if missing).
    pub fn open(settings: Settings) -> Result<Volumes, StateError> {
        let dir = &settings.state_dir;
        std::fs::create_dir_all(dir.join("volumes")).map_err(|err| StateError::Io {
            op: "create",
            path: dir.clone(),
            err,
        })?;
        // The volumes' files are readable by any user of a container: the way to them on the
        // host is root's alone.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|err| {
            StateError::Io {
                op: "restrict",
                path: dir.clone(),
                err,
            }
        })?;
        let saved = state::load(dir)?;
        let slots = saved
            .volumes
            .into_iter()
            .map(|(name, opts)| {
                let slot = Slot {
                    mountpoint: Self::mountpoint_in(dir, &name),
                    opts,
                    active: tokio::sync::Mutex::new(None),
                };
                (name, Arc::new(slot))
            })
            .collect::<BTreeMap<_, _>>();
        tracing::info!(volumes = slots.len(), state_dir = %dir.display(), "volumes loaded");
        Ok(Volumes {
            settings,
            slots: Mutex::new(slots),
        })
    }

    fn mountpoint_in(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join("volumes").join(name)
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, VolumeError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, slots: &BTreeMap<String, Arc<Slot>>) -> Result<(), StateError> {
        let volumes = slots
            .iter()
            .map(|(name, slot)| (name.clone(), slot.opts.clone()))
            .collect();
        state::save(&self.settings.state_dir, volumes)
    }

    fn config(
        &self,
        opts: &BTreeMap<String, String>,
        dest: &Path,
        once: Option<Duration>,
    ) -> Result<crate::config::Config, OptionError> {
        let mut config = options::agent_config(
            opts,
            &Build {
                base: &self.settings.base,
                server: &self.settings.server,
                dest,
                once,
            },
        )?;
        // The hand-off file holds values: it must not stay in a volume containers mount.
        config.lease_record = false;
        Ok(config)
    }

    /// Check the name and options; remember the volume.
    pub fn create(&self, name: &str, opts: BTreeMap<String, String>) -> Result<(), VolumeError> {
        options::check_volume_name(name)?;
        let mountpoint = Self::mountpoint_in(&self.settings.state_dir, name);
        self.config(&opts, &mountpoint, None)?;
        let mut slots = self.lock();
        if let Some(existing) = slots.get(name) {
            return if existing.opts == opts {
                Ok(())
            } else {
                Err(VolumeError::Exists { name: name.into() })
            };
        }
        let files = opts.keys().filter(|k| !k.starts_with("hush.")).count();
        slots.insert(
            name.to_string(),
            Arc::new(Slot {
                opts,
                mountpoint,
                active: tokio::sync::Mutex::new(None),
            }),
        );
        if let Err(e) = self.save(&slots) {
            slots.remove(name);
            return Err(e.into());
        }
        tracing::info!(volume = name, files, "volume created");
        Ok(())
    }

    /// Forget the volume; refused while mounted. Whatever a crash left (a tmpfs, the
    /// directory) goes too.
    pub async fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let slot = self.slot(name)?;
        let active = slot.active.lock().await;
        if let Some(a) = active.as_ref() {
            return Err(VolumeError::InUse {
                name: name.into(),
                mounts: a.ids.len(),
            });
        }
        clear_mountpoint(&slot.mountpoint);
        let mut slots = self.lock();
        slots.remove(name);
        if let Err(e) = self.save(&slots) {
            slots.insert(name.to_string(), slot.clone());
            return Err(e.into());
        }
        tracing::info!(volume = name, "volume removed");
        Ok(())
    }

    /// Mount for container mount `id`: the first one renders the files before answering.
    pub async fn mount(&self, name: &str, id: &str) -> Result<PathBuf, VolumeError> {
        let slot = self.slot(name)?;
        let mut active = slot.active.lock().await;
        if let Some(a) = active.as_mut() {
            if a.task.is_finished() {
                tracing::warn!(
                    volume = name,
                    "the volume's agent had stopped; starting it again"
                );
            } else {
                a.ids.insert(id.to_string());
                tracing::info!(
                    volume = name,
                    id,
                    mounts = a.ids.len(),
                    "volume mounted again"
                );
                return Ok(slot.mountpoint.clone());
            }
        }
        let held = active.take().map(|a| a.ids).unwrap_or_default();
        let mut started = self
            .activate(name, &slot, !held.is_empty())
            .await
            .map_err(|msg| VolumeError::Mount {
                name: name.into(),
                msg,
            })?;
        started.ids = held;
        started.ids.insert(id.to_string());
        tracing::info!(volume = name, id, mounts = started.ids.len(), mountpoint = %slot.mountpoint.display(), "volume mounted");
        *active = Some(started);
        Ok(slot.mountpoint.clone())
    }

    /// Mount the tmpfs (unless `keep_tmpfs`: containers still hold it), render once, then
    /// start the agent that keeps the files fresh.
    async fn activate(&self, name: &str, slot: &Slot, keep_tmpfs: bool) -> Result<Active, String> {
        let dir = &slot.mountpoint;
        let deadline = self.settings.mount_deadline;
        let once = self
            .config(&slot.opts, dir, Some(deadline))
            .map_err(|e| e.to_string())?;
        let size = once.destination.mount_tmpfs.unwrap_or(DEFAULT_TMPFS_SIZE);
        if !keep_tmpfs || !is_mount_point(dir) {
            clear_mountpoint(dir);
            fs_check::mount_tmpfs(dir, size, TMPFS_MODE).map_err(|e| e.to_string())?;
        }
        let span = tracing::info_span!("volume", volume = name);
        let (_, done) = spawn_agent(name, once, CancellationToken::new(), span.clone())
            .map_err(|e| format!("cannot start its agent: {e}"))?;
        let first = tokio::time::timeout(deadline + Duration::from_secs(5), done).await;
        let failed = match first {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(format!("could not render its files: {}", one_line(&e))),
            Ok(Err(_)) => Some("its agent stopped without a word".into()),
            Err(_) => Some(format!(
                "could not render its files within {}",
                crate::config::duration::show(deadline)
            )),
        };
        if let Some(msg) = failed {
            if !keep_tmpfs {
                clear_mountpoint(dir);
            }
            return Err(msg);
        }
        let keep = self
            .config(&slot.opts, dir, None)
            .map_err(|e| e.to_string())?;
        let cancel = CancellationToken::new();
        let (task, _) = spawn_agent(name, keep, cancel.clone(), span)
            .map_err(|e| format!("cannot start its agent: {e}"))?;
        // Answer once the long-running agent has taken the pass's leases over (the hand-off
        // file holds values and must not stay in the volume).
        let handed = handoff::path_in(dir);
        let until = tokio::time::Instant::now() + deadline;
        while handed.exists() {
            if task.is_finished() || tokio::time::Instant::now() >= until {
                cancel.cancel();
                let _ = std::fs::remove_file(&handed);
                if !keep_tmpfs {
                    clear_mountpoint(dir);
                }
                return Err("the agent keeping its files fresh did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Active {
            ids: BTreeSet::new(),
            cancel,
            task,
        })
    }

    /// Drop mount `id`; the last one stops the agent (revoking the leases) and unmounts.
    pub async fn unmount(&self, name: &str, id: &str) -> Result<(), VolumeError> {
        let slot = self.slot(name)?;
        let mut active = slot.active.lock().await;
        let Some(a) = active.as_mut() else {
            tracing::warn!(volume = name, id, "unmount of a volume that is not mounted");
            return Ok(());
        };
        if !a.ids.remove(id) {
            tracing::warn!(volume = name, id, "unmount of an unknown mount ID");
        }
        if !a.ids.is_empty() {
            tracing::info!(
                volume = name,
                id,
                mounts = a.ids.len(),
                "volume unmounted; still held"
            );
            return Ok(());
        }
        if let Some(a) = active.take() {
            stop(a).await;
        }
        clear_mountpoint(&slot.mountpoint);
        tracing::info!(
            volume = name,
            id,
            "volume unmounted; leases revoked, tmpfs gone"
        );
        Ok(())
    }

    /// The mount point while mounted.
    pub async fn path(&self, name: &str) -> Result<Option<PathBuf>, VolumeError> {
        let slot = self.slot(name)?;
        Ok(self.show(&slot, name).await.mountpoint)
    }

    pub async fn get(&self, name: &str) -> Result<Shown, VolumeError> {
        let slot = self.slot(name)?;
        Ok(self.show(&slot, name).await)
    }

    pub async fn list(&self) -> Vec<Shown> {
        let slots: Vec<(String, Arc<Slot>)> = self
            .lock()
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let mut out = Vec::with_capacity(slots.len());
        for (name, slot) in slots {
            out.push(self.show(&slot, &name).await);
        }
        out
    }

    async fn show(&self, slot: &Slot, name: &str) -> Shown {
        let active = slot.active.lock().await;
        let mounts = active.as_ref().map_or(0, |a| a.ids.len());
        Shown {
            name: name.to_string(),
            mountpoint: active.is_some().then(|| slot.mountpoint.clone()),
            opts: slot.opts.clone(),
            mounts,
        }
    }

    /// Stop every volume's agent (revoking its leases) and unmount; containers still
    /// holding a volume keep its last files.
    pub async fn shutdown(&self) {
        let slots: Vec<Arc<Slot>> = self.lock().values().cloned().collect();
        for slot in slots {
            if let Some(a) = slot.active.lock().await.take() {
                stop(a).await;
                clear_mountpoint(&slot.mountpoint);
            }
        }
    }
}

/// How an agent run ended (its error's message).
type Done = oneshot::Receiver<Result<(), String>>;

/// Run the agent over one volume on a thread of its own (with its own runtime, as the agent
/// binary runs it), until `cancel` or, with `--once`, one pass. `done` tells how it ended.
fn spawn_agent(
    name: &str,
    config: crate::config::Config,
    cancel: CancellationToken,
    span: tracing::Span,
) -> std::io::Result<(std::thread::JoinHandle<()>, Done)> {
    let (tx, done) = oneshot::channel();
    let volume = name.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("volume-{name}"))
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))
                .and_then(|rt| {
                    rt.block_on(crate::run(config, cancel).instrument(span))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = &result {
                tracing::warn!(volume = %volume, error = %e, "the volume's agent stopped with an error");
            }
            let _ = tx.send(result);
        })?;
    Ok((thread, done))
}

/// Stop an agent run, within [`STOP_DEADLINE`] (it revokes its leases on the way out).
async fn stop(a: Active) {
    a.cancel.cancel();
    let task = a.task;
    let joined = tokio::task::spawn_blocking(move || task.join());
    if tokio::time::timeout(STOP_DEADLINE, joined).await.is_err() {
        tracing::warn!("the volume's agent did not stop in time");
    }
}

/// A multi-line run error on one line (docker prints the `Err` as it is).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Unmount whatever is on `dir` and remove it (nothing of the volume stays behind).
fn clear_mountpoint(dir: &Path) {
    while is_mount_point(dir) {
        if let Err(e) = fs_check::unmount(dir) {
            tracing::warn!(error = %e, "could not unmount");
            break;
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %dir.display(), error = %e, "could not remove"),
    }
}
