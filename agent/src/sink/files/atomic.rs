//! A set of files that changes all at once: the `..data` symlink swap of kubelet's AtomicWriter.
//!
//! # On-disk layout
//!
//! ```text
//! <target>/
//!   ..2025_01_31_12_00_00.123456789/   one directory per generation (0755), files inside
//!       db/password                    with their own mode and owner
//!       api-key
//!       .generation                    "42\n": this set's generation number (0644)
//!   ..data -> ..2025_01_31_12_00_00.123456789
//!   db -> ..data/db                    user-visible names: links through `..data`
//!   api-key -> ..data/api-key
//! ```
//!
//! A write builds a complete new generation directory beside the current one, fsyncs every file
//! and directory in it, points a fresh `..data_tmp` link at it and renames that link over `..data`
//! (one atomic `rename(2)`), then fsyncs the target directory. The user-visible names are links
//! through `..data`, created once; a name that leaves the set loses its link.
//!
//! # What readers get
//!
//! Whoever resolves `..data` once (reads the link, or opens the directory through it) sees one
//! complete generation: every file, fully written, all from the same set. Reading each name
//! through its own link resolves `..data` anew each time, so an application that wants a
//! consistent set across several files should read `..data/.generation` before and after, or
//! resolve `..data` once. The generation number grows by one with every change and survives
//! restarts of the agent (it is read back from `..data/.generation`).
//!
//! The previous generation is kept until the next change so that a reader which resolved `..data`
//! just before a swap can finish (see [`AtomicWriter::keep_previous`]); older ones are removed,
//! each first renamed away so that a reader never sees one half-deleted.
//!
//! Nothing is touched when the new set equals the current one (content, mode and, when given,
//! owner): no directory, no new generation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{fchown, DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::sink::{FileProjection, Sink, WriteError, WriteOutcome};

/// The link that names the current generation directory.
pub const DATA_DIR_NAME: &str = "..data";
/// The link built beside `..data` and renamed over it.
pub const DATA_TMP_NAME: &str = "..data_tmp";
/// Inside each generation directory: the generation number, in decimal, then a newline.
pub const GENERATION_FILE: &str = ".generation";
/// Prefix of generation directories being removed.
const REMOVING_PREFIX: &str = "..removing_";
/// Mode of generation directories and the directories inside them.
const DIR_MODE: u32 = 0o755;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |err| WriteError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// Writes sets of files into one target directory; see the module docs for the layout.
#[derive(Debug)]
pub struct AtomicWriter {
    target: PathBuf,
    keep_previous: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    generation: u64,
    /// The generation directory that was current before the last change, kept for slow readers.
    previous: Option<String>,
}

impl AtomicWriter {
    /// Opens the writer on an existing directory and reads back the current generation.
    pub fn new(target_dir: &Path) -> Result<Self, WriteError> {
        let meta = fs::metadata(target_dir).map_err(|_| WriteError::NoTarget {
            path: target_dir.to_path_buf(),
        })?;
        if !meta.is_dir() {
            return Err(WriteError::NoTarget {
                path: target_dir.to_path_buf(),
            });
        }
        let writer = Self {
            target: target_dir.to_path_buf(),
            keep_previous: true,
            state: Mutex::new(State {
                generation: 0,
                previous: None,
            }),
        };
        let generation = match writer.current_dir()? {
            Some(dir) => read_generation(&writer.target.join(dir).join(GENERATION_FILE))?,
            None => 0,
        };
        writer.lock().generation = generation;
        Ok(writer)
    }

    /// Whether to keep the previous generation until the next change (default: yes), so that a
    /// reader that resolved `..data` just before a swap can finish. With `false`, an old value
    /// is gone from the tmpfs as soon as the new one is in place.
    pub fn keep_previous(mut self, keep: bool) -> Self {
        self.keep_previous = keep;
        self
    }

    /// The directory written into.
    pub fn target_dir(&self) -> &Path {
        &self.target
    }

    /// The current generation (0 before the first write).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the whole set; names not in `payload` disappear. When content, mode and owner all
    /// equal the current set, nothing is touched and `changed` is false.
    pub fn write(
        &self,
        payload: &BTreeMap<String, FileProjection>,
    ) -> Result<WriteOutcome, WriteError> {
        validate_payload(payload)?;
        let mut state = self.lock();
        // A dangling `..data` (its directory removed by hand) counts as no current set.
        let current = self
            .current_dir()?
            .filter(|dir| self.target.join(dir).is_dir());
        let changed_files = match &current {
            Some(dir) => diff(&self.target.join(dir), payload)?,
            None => payload.keys().cloned().collect(),
        };
        if current.is_some() && changed_files.is_empty() {
            return Ok(WriteOutcome {
                changed: false,
                generation: state.generation,
                changed_files,
            });
        }
        let tops: BTreeSet<&str> = payload.keys().map(|n| top_component(n)).collect();
        self.check_links(&tops)?;

        let generation = state.generation + 1;
        let new_dir = self.create_generation_dir()?;
        let new_path = self.target.join(&new_dir);
        if let Err(e) = write_generation(&new_path, payload, generation) {
            let _ = fs::remove_dir_all(&new_path);
            return Err(e);
        }
        if let Err(e) = self.swap(&new_dir) {
            // Still the old set (the rename did not happen): the new directory must not stay
            // behind, taking space on a tmpfs that may be full.
            if self.current_dir().ok().flatten().as_deref() == Some(new_dir.as_str()) {
                state.generation = generation;
            } else {
                let _ = fs::remove_dir_all(&new_path);
                let _ = fs::remove_file(self.target.join(DATA_TMP_NAME));
            }
            return Err(e);
        }
        state.generation = generation;

        self.update_links(&tops)?;
        fsync_dir(&self.target)?;
        let keep = if self.keep_previous { current } else { None };
        self.prune(&new_dir, keep.as_deref())?;
        state.previous = keep;
        tracing::debug!(
            target_dir = %self.target.display(),
            generation,
            changed = changed_files.len(),
            "wrote a new generation"
        );
        Ok(WriteOutcome {
            changed: true,
            generation,
            changed_files,
        })
    }

    /// The generation directory `..data` points at, if any.
    fn current_dir(&self) -> Result<Option<String>, WriteError> {
        let link = self.target.join(DATA_DIR_NAME);
        match fs::read_link(&link) {
            Ok(p) => Ok(Some(p.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(WriteError::Io {
                op: "read link",
                path: link,
                err,
            }),
        }
    }

    /// Every user-visible name must be free or a link this writer made.
    fn check_links(&self, tops: &BTreeSet<&str>) -> Result<(), WriteError> {
        for top in tops {
            let path = self.target.join(top);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {}
                Ok(_) => return Err(WriteError::Conflict { path }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(WriteError::Io {
                        op: "stat",
                        path,
                        err,
                    })
                }
            }
        }
        Ok(())
    }

    fn create_generation_dir(&self) -> Result<String, WriteError> {
        loop {
            let name = chrono::Utc::now()
                .format("..%Y_%m_%d_%H_%M_%S%.9f")
                .to_string();
            let path = self.target.join(&name);
            match DirBuilder::new().mode(DIR_MODE).create(&path) {
                Ok(()) => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE))
                        .map_err(io_err("chmod", &path))?;
                    return Ok(name);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(WriteError::Io {
                        op: "create directory",
                        path,
                        err,
                    })
                }
            }
        }
    }

    /// `..data_tmp -> new_dir`, renamed over `..data`, then the target directory fsynced.
    fn swap(&self, new_dir: &str) -> Result<(), WriteError> {
        let tmp = self.target.join(DATA_TMP_NAME);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(WriteError::Io {
                    op: "remove stale link",
                    path: tmp,
                    err,
                })
            }
        }
        std::os::unix::fs::symlink(new_dir, &tmp).map_err(io_err("create link", &tmp))?;
        let data = self.target.join(DATA_DIR_NAME);
        fs::rename(&tmp, &data).map_err(io_err("rename link", &data))?;
        fsync_dir(&self.target)
    }

    /// Creates links for new top-level names and removes ours for names that left the set.
    fn update_links(&self, tops: &BTreeSet<&str>) -> Result<(), WriteError> {
        for top in tops {
            let path = self.target.join(top);
            let want = Path::new(DATA_DIR_NAME).join(top);
            match fs::read_link(&path) {
                Ok(p) if p == want => continue,
                Ok(_) => {
                    fs::remove_file(&path).map_err(io_err("remove link", &path))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => return Err(WriteError::Conflict { path }),
            }
            std::os::unix::fs::symlink(&want, &path).map_err(io_err("create link", &path))?;
        }
        let entries = fs::read_dir(&self.target).map_err(io_err("list", &self.target))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.target))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || tops.contains(name.as_str()) {
                continue;
            }
            let path = entry.path();
            if fs::read_link(&path).is_ok_and(|p| p == Path::new(DATA_DIR_NAME).join(&name)) {
                fs::remove_file(&path).map_err(io_err("remove link", &path))?;
            }
        }
        Ok(())
    }

    /// Removes generation directories other than `current` and `keep` (and leftovers of crashes).
    fn prune(&self, current: &str, keep: Option<&str>) -> Result<(), WriteError> {
        let entries = fs::read_dir(&self.target).map_err(io_err("list", &self.target))?;
        let mut doomed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.target))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == current || Some(name.as_str()) == keep {
                continue;
            }
            if is_generation_dir_name(&name) {
                let away = self.target.join(format!("{REMOVING_PREFIX}{}", &name[2..]));
                fs::rename(entry.path(), &away).map_err(io_err("rename", &entry.path()))?;
                doomed.push(away);
            } else if name.starts_with(REMOVING_PREFIX) {
                doomed.push(entry.path());
            }
        }
        for path in doomed {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        }
        Ok(())
    }
}

/// `..YYYY_MM_DD_HH_MM_SS.nnnnnnnnn`
fn is_generation_dir_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("..") else {
        return false;
    };
    rest.len() == 29
        && rest.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 10 | 13 | 16 => b == b'_',
            19 => b == b'.',
            _ => b.is_ascii_digit(),
        })
}

fn top_component(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

fn validate_name(name: &str) -> Result<(), WriteError> {
    let bad = |reason| {
        Err(WriteError::BadPath {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.starts_with('/') {
        return bad("it must be relative");
    }
    if name.contains('\0') {
        return bad("it contains a NUL byte");
    }
    for comp in name.split('/') {
        if comp.is_empty() {
            return bad("it has an empty component");
        }
        if comp == ".." {
            return bad("it contains `..`");
        }
        if comp.starts_with('.') {
            return bad("a component starts with `.`");
        }
    }
    Ok(())
}

fn validate_payload(payload: &BTreeMap<String, FileProjection>) -> Result<(), WriteError> {
    for (name, file) in payload {
        validate_name(name)?;
        if file.mode & !0o777 != 0 {
            return Err(WriteError::BadMode {
                name: name.clone(),
                mode: file.mode,
            });
        }
        // `db` and `db/password` cannot both be files.
        let mut prefix = String::new();
        let comps: Vec<&str> = name.split('/').collect();
        for comp in &comps[..comps.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            if payload.contains_key(&prefix) {
                return Err(WriteError::BadPath {
                    name: name.clone(),
                    reason: "a parent of it is also a file in the set",
                });
            }
        }
    }
    Ok(())
}

fn read_generation(path: &Path) -> Result<u64, WriteError> {
    match fs::read_to_string(path) {
        Ok(s) => s.trim().parse().map_err(|_| WriteError::BadGeneration {
            path: path.to_path_buf(),
        }),
        // A `..data` made by someone else: start counting from zero.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(WriteError::Io {
            op: "read",
            path: path.to_path_buf(),
            err,
        }),
    }
}

/// Names whose content, mode or owner differ between `dir` and `payload`, plus names in only
/// one of them; sorted.
fn diff(dir: &Path, payload: &BTreeMap<String, FileProjection>) -> Result<Vec<String>, WriteError> {
    let mut existing = BTreeSet::new();
    list_files(dir, "", &mut existing)?;
    let mut changed = BTreeSet::new();
    for name in existing.difference(&payload.keys().cloned().collect()) {
        changed.insert(name.clone());
    }
    for (name, file) in payload {
        if !existing.contains(name) || !same_file(&dir.join(name), file)? {
            changed.insert(name.clone());
        }
    }
    Ok(changed.into_iter().collect())
}

fn list_files(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> Result<(), WriteError> {
    let entries = fs::read_dir(dir).map_err(io_err("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.is_empty() && name == GENERATION_FILE {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let ft = entry.file_type().map_err(io_err("stat", &entry.path()))?;
        if ft.is_dir() {
            list_files(&entry.path(), &rel, out)?;
        } else {
            out.insert(rel);
        }
    }
    Ok(())
}

fn same_file(path: &Path, want: &FileProjection) -> Result<bool, WriteError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    if !meta.is_file()
        || meta.mode() & 0o7777 != want.mode
        || want.uid.is_some_and(|u| u != meta.uid())
        || want.gid.is_some_and(|g| g != meta.gid())
        || meta.len() != want.data.len() as u64
    {
        return Ok(false);
    }
    let mut have = Zeroizing::new(Vec::with_capacity(want.data.len()));
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut have))
        .map_err(io_err("read", path))?;
    Ok(bool::from(have.as_slice().ct_eq(want.data.as_slice())))
}

/// Fills a fresh generation directory: every file, the marker, then fsyncs all directories.
fn write_generation(
    root: &Path,
    payload: &BTreeMap<String, FileProjection>,
    generation: u64,
) -> Result<(), WriteError> {
    let mut dirs = BTreeSet::new();
    for (name, file) in payload {
        let path = root.join(name);
        if let Some(parent) = Path::new(name).parent() {
            let mut at = root.to_path_buf();
            for comp in parent.components() {
                at.push(comp);
                if dirs.insert(at.clone()) {
                    DirBuilder::new()
                        .mode(DIR_MODE)
                        .create(&at)
                        .map_err(io_err("create directory", &at))?;
                    fs::set_permissions(&at, fs::Permissions::from_mode(DIR_MODE))
                        .map_err(io_err("chmod", &at))?;
                }
            }
        }
        write_file(&path, &file.data, file.mode, file.uid, file.gid)?;
    }
    write_file(
        &root.join(GENERATION_FILE),
        format!("{generation}\n").as_bytes(),
        0o644,
        None,
        None,
    )?;
    // Deepest first, so each directory is durable before its parent names it.
    for dir in dirs.iter().rev() {
        fsync_dir(dir)?;
    }
    fsync_dir(root)
}

fn write_file(
    path: &Path,
    data: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), WriteError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create", path))?;
    f.write_all(data).map_err(io_err("write", path))?;
    if uid.is_some() || gid.is_some() {
        fchown(&f, uid, gid).map_err(io_err("chown", path))?;
    }
    // After chown, which may clear bits; explicit, so the umask does not matter.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", path))?;
    f.sync_all().map_err(io_err("fsync", path))
}

fn fsync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

impl Sink for AtomicWriter {
    fn write(&self, set: &BTreeMap<String, FileProjection>) -> Result<WriteOutcome, WriteError> {
        AtomicWriter::write(self, set)
    }

    fn target(&self) -> &Path {
        self.target_dir()
    }
}

#[cfg(test)]
#[path = "atomic_tests.rs"]
mod tests;
