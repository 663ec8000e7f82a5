//! One data dir's snapshots: writing parts atomically, assembling the
//! manifest, aborting, listing (choosing the newest and retention: [`super::choose`]).
//!
//! ```text
//! DATA_DIR/snapshots/<initiator>-<seq>/part-<node>.gsmo        one node's part
//! DATA_DIR/snapshots/<initiator>-<seq>/part-<node>.info.gsmo   its PartSummary, written after it
//! DATA_DIR/snapshots/<initiator>-<seq>/MANIFEST.gsmo           present once every part is stored
//! DATA_DIR/snapshots/<initiator>-<seq>/ABORTED                 present if a node gave up (reason)
//! ```
//! A snapshot is *complete* exactly when its manifest exists and it is not
//! aborted. Every file is written atomically (temp file, fsync, rename, fsync
//! of the directory). Every read checks that a file's contents belong where it
//! lies: the snapshot id and node inside must match the directory and file name.

use super::error::{io_err, StoreError};
use super::format::{
    check_image, decode_part, encode_file, read_bytes, read_manifest, read_summary, write_file,
    PartFile, HEADER_LEN, INFO_MAGIC, MANIFEST_MAGIC, PART_MAGIC,
};
use super::manifest::{assemble, part_file_name, Manifest, PartSummary};
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::NodeId;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// The temp file a write of `path` goes through (a dot file next to it, named
/// for the writing process, so a restarted node knows a leftover for its own).
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `path` atomically with `fill` (through a buffer into the temp
/// file), then fsync, rename, fsync of the directory. On any error the temp
/// file is removed: a failed write leaves nothing behind.
pub fn write_atomic_with<R>(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> std::io::Result<R>,
) -> Result<R, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    let result = (|| {
        let f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = BufWriter::new(f);
        let r = fill(&mut w).map_err(io_err(&tmp))?;
        let f = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        Ok(r)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Where a snapshot stands on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Complete(Manifest),
    Aborted(String),
    /// Some parts written, no manifest yet (in progress, or a node died).
    Incomplete {
        parts: Vec<NodeId>,
    },
    /// No trace of it: not (yet) written here, or deleted by retention.
    Missing,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Complete(m) => write!(f, "complete ({} parts)", m.parts.len()),
            Status::Aborted(why) => write!(f, "aborted: {why}"),
            Status::Missing => write!(
                f,
                "not found (no part written yet, or deleted by retention)"
            ),
            Status::Incomplete { parts } => {
                write!(f, "incomplete (parts present from nodes {parts:?})")
            }
        }
    }
}

/// The `snapshots/` directory of a data dir.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let root = data_dir.join("snapshots");
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        Ok(SnapshotStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: SnapshotId) -> PathBuf {
        self.root.join(id.to_string())
    }

    pub fn part_path(&self, id: SnapshotId, node: NodeId) -> PathBuf {
        self.dir(id).join(part_file_name(node))
    }

    /// The part's [`PartSummary`], written after the part: its presence means the part is whole.
    pub fn info_path(&self, id: SnapshotId, node: NodeId) -> PathBuf {
        self.dir(id).join(format!("part-{node}.info.gsmo"))
    }

    pub fn manifest_path(&self, id: SnapshotId) -> PathBuf {
        self.dir(id).join("MANIFEST.gsmo")
    }

    pub fn aborted_path(&self, id: SnapshotId) -> PathBuf {
        self.dir(id).join("ABORTED")
    }

    fn aborted_reason(&self, id: SnapshotId) -> Option<String> {
        let path = self.aborted_path(id);
        path.exists().then(|| {
            fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string()
        })
    }

    /// Persists one node's part and then its summary, atomically; returns the summary.
    pub fn store_part(&self, file: &PartFile) -> Result<PartSummary, StoreError> {
        let id = file.part.id;
        let dir = self.dir(id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if let Some(reason) = self.aborted_reason(id) {
            return Err(StoreError::Aborted { id, reason });
        }
        // Streamed: no second copy of the store is built in memory.
        let written = write_atomic_with(&self.part_path(id, file.part.node), |w| {
            write_file(w, PART_MAGIC, file)
        })?;
        let summary = PartSummary::of_written(file, written);
        write_atomic(
            &self.info_path(id, summary.node),
            &encode_file(INFO_MAGIC, &summary),
        )?;
        Ok(summary)
    }

    /// [`Self::store_part`], answering the part's path and size.
    pub fn write_part(&self, file: &PartFile) -> Result<(PathBuf, u64), StoreError> {
        let summary = self.store_part(file)?;
        Ok((self.part_path(summary.id, summary.node), summary.bytes))
    }

    /// Records that `node` gave up on `id` and removes the parts already written,
    /// so no half snapshot lingers or is mistaken for a usable one.
    pub fn mark_aborted(
        &self,
        id: SnapshotId,
        node: NodeId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let dir = self.dir(id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if self.manifest_path(id).exists() {
            return Ok(()); // completed elsewhere before this node timed out: keep it
        }
        // On a disk that refuses the record (full, read-only, out of
        // descriptors) the parts still go; the error is reported after.
        let recorded = write_atomic(
            &self.aborted_path(id),
            format!("node {node}: {reason}\n").as_bytes(),
        );
        // Parts, their info files, and temp files of writes in progress.
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("part-") || name.starts_with(".part-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        recorded
    }

    /// At a node's start: finds the snapshots whose part `node` was writing
    /// when its process died (kill -9, power loss), removes the leftovers
    /// (temp files, a part without its summary) and marks each aborted, naming
    /// the node. Such a snapshot cannot have completed anywhere: a node
    /// acknowledges its part only once part and summary are on disk. A whole
    /// part is left alone (its snapshot may have completed at the others).
    pub fn sweep_interrupted(&self, node: NodeId) -> Result<Vec<SnapshotId>, StoreError> {
        let part = part_file_name(node);
        let info = format!("part-{node}.info.gsmo");
        let temps = [format!(".{part}.tmp-"), format!(".{info}.tmp-")];
        let mut swept = Vec::new();
        for id in self.list()? {
            let dir = self.dir(id);
            if self.manifest_path(id).exists() || self.aborted_path(id).exists() {
                continue;
            }
            let mut leftovers = Vec::new();
            for e in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if temps.iter().any(|t| name.starts_with(t.as_str())) {
                    leftovers.push(e.path());
                }
            }
            if self.part_path(id, node).exists() && !self.info_path(id, node).exists() {
                leftovers.push(self.part_path(id, node));
            }
            if leftovers.is_empty() {
                continue;
            }
            for path in &leftovers {
                fs::remove_file(path).map_err(io_err(path))?;
            }
            self.mark_aborted(
                id,
                node,
                "interrupted: the node stopped while writing its part (found at its restart)",
            )?;
            swept.push(id);
        }
        Ok(swept)
    }

    /// Nodes whose part file is present here.
    pub fn parts_present(&self, id: SnapshotId) -> Vec<NodeId> {
        let Ok(entries) = fs::read_dir(self.dir(id)) else {
            return Vec::new();
        };
        let mut nodes: Vec<NodeId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("part-")?
                    .strip_suffix(".gsmo")?
                    .parse()
                    .ok()
            })
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// Reads the manifest of `id`, refusing one that lies in another snapshot's directory.
    pub fn manifest(&self, id: SnapshotId) -> Result<Manifest, StoreError> {
        let path = self.manifest_path(id);
        let m = read_manifest(&path)?;
        if m.id != id {
            return Err(misplaced(&path, format!("holds snapshot {}", m.id), id));
        }
        // The data dir's owner (see `datadir`), when it has one, must be the snapshot's cluster.
        if let Some(data_dir) = self.root.parent() {
            if let Ok(owner) = fs::read_to_string(data_dir.join("CLUSTER")) {
                if owner.trim() != m.cluster_id {
                    return Err(StoreError::Misplaced {
                        path,
                        reason: format!(
                            "a snapshot of cluster `{}`, but {} says this data dir is cluster `{}`'s",
                            m.cluster_id,
                            data_dir.join("CLUSTER").display(),
                            owner.trim()
                        ),
                    });
                }
            }
        }
        if let Some(p) = m.parts.iter().enumerate().find(|(i, p)| p.node != *i) {
            return Err(StoreError::Misplaced {
                path,
                reason: format!("entry {} names node {}", p.0, p.1.node),
            });
        }
        Ok(m)
    }

    /// Reads node `node`'s summary of `id`, checking it belongs here.
    pub fn summary(&self, id: SnapshotId, node: NodeId) -> Result<PartSummary, StoreError> {
        let path = self.info_path(id, node);
        let s = read_summary(&path)?;
        if s.id != id || s.node != node {
            return Err(misplaced(
                &path,
                format!("summarises node {}'s part of snapshot {}", s.node, s.id),
                id,
            ));
        }
        Ok(s)
    }

    pub fn status(&self, id: SnapshotId) -> Result<Status, StoreError> {
        if let Some(why) = self.aborted_reason(id) {
            return Ok(Status::Aborted(why));
        }
        if self.manifest_path(id).exists() {
            return Ok(Status::Complete(self.manifest(id)?));
        }
        if !self.dir(id).is_dir() {
            return Ok(Status::Missing);
        }
        Ok(Status::Incomplete {
            parts: self.parts_present(id),
        })
    }

    /// Writes the manifest if all `nodes` parts are present and verified and the
    /// snapshot was not aborted. Any node may call this after writing its part;
    /// the manifest is a function of the parts' summaries, so racing writers agree.
    pub fn try_assemble(
        &self,
        id: SnapshotId,
        nodes: usize,
    ) -> Result<Option<Manifest>, StoreError> {
        if self.aborted_path(id).exists() || self.parts_present(id).len() < nodes {
            return Ok(None);
        }
        if (0..nodes).any(|n| !self.info_path(id, n).exists()) {
            return Ok(None); // a part is still being written
        }
        let mut summaries = Vec::with_capacity(nodes);
        for node in 0..nodes {
            let summary = self.summary(id, node)?;
            // The part must be whole and be the very bytes its node declared.
            self.check_part(&summary)?;
            summaries.push(summary);
        }
        let manifest = assemble(id, nodes, summaries)?;
        self.write_manifest(&manifest)?;
        Ok(Some(manifest))
    }

    /// Writes a manifest assembled elsewhere (e.g. from summaries sent over
    /// the network), unless the snapshot was aborted here.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let id = manifest.id;
        if let Some(reason) = self.aborted_reason(id) {
            return Err(StoreError::Aborted { id, reason });
        }
        let dir = self.dir(id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        write_atomic(
            &self.manifest_path(id),
            &encode_file(MANIFEST_MAGIC, manifest),
        )
    }

    /// Checks the part file `summary` describes, if it is in this dir: whole,
    /// and the very bytes its node declared (CRC and size, without decoding).
    /// Answers whether the part is here.
    pub fn check_part(&self, summary: &PartSummary) -> Result<bool, StoreError> {
        let path = self.dir(summary.id).join(&summary.file);
        if !path.exists() {
            return Ok(false);
        }
        let bytes = read_bytes(&path)?;
        let (_, payload) = check_image(&path, PART_MAGIC, &bytes)?;
        let crc = crc32fast::hash(payload);
        if crc != summary.crc32 || bytes.len() as u64 != summary.bytes {
            return Err(StoreError::Checksum {
                path,
                expected: summary.crc32,
                actual: crc,
            });
        }
        Ok(true)
    }

    /// Decodes node `node`'s part of a complete snapshot and checks it
    /// against the manifest's summary of it and against where it lies.
    pub fn load_part(&self, manifest: &Manifest, node: NodeId) -> Result<PartFile, StoreError> {
        let summary = manifest.part(node)?;
        let path = self.dir(manifest.id).join(&summary.file);
        let bytes = read_bytes(&path)?;
        let pf = decode_part(&path, &bytes)?;
        let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
        if crc != summary.crc32 || bytes.len() as u64 != summary.bytes {
            return Err(StoreError::Checksum {
                path,
                expected: summary.crc32,
                actual: crc,
            });
        }
        if pf.part.id != manifest.id || pf.part.node != node {
            return Err(misplaced(
                &path,
                format!(
                    "holds node {}'s part of snapshot {}",
                    pf.part.node, pf.part.id
                ),
                manifest.id,
            ));
        }
        if pf.cluster_id != manifest.cluster_id || pf.mode != manifest.mode {
            return Err(StoreError::Misplaced {
                path,
                reason: format!(
                    "a part of cluster `{}` in mode {}, the manifest's is `{}` in mode {}",
                    pf.cluster_id, pf.mode, manifest.cluster_id, manifest.mode
                ),
            });
        }
        Ok(pf)
    }

    /// Loads a complete snapshot whose parts are all in this dir, checking
    /// every file against the manifest.
    pub fn load(&self, id: SnapshotId) -> Result<(Manifest, Vec<PartFile>), StoreError> {
        let manifest = self.complete(id)?;
        let parts = (0..manifest.nodes)
            .map(|node| self.load_part(&manifest, node))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((manifest, parts))
    }

    /// The manifest of `id`, or why it is not a complete snapshot.
    pub fn complete(&self, id: SnapshotId) -> Result<Manifest, StoreError> {
        if !self.dir(id).is_dir() {
            return Err(StoreError::NotFound {
                id,
                dir: self.root.clone(),
            });
        }
        match self.status(id)? {
            Status::Complete(m) => Ok(m),
            other => Err(StoreError::NotComplete {
                id,
                status: other.to_string(),
            }),
        }
    }

    /// All snapshot ids on disk, oldest first (by initiator-local order, then initiator).
    pub fn list(&self) -> Result<Vec<SnapshotId>, StoreError> {
        let mut ids: Vec<SnapshotId> = fs::read_dir(&self.root)
            .map_err(io_err(&self.root))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse().ok())
            .collect();
        ids.sort_by_key(|id| (id.seq, id.initiator));
        Ok(ids)
    }

    /// The largest snapshot sequence number `node` has initiated, so a restarted
    /// node does not reuse an id.
    pub fn last_seq_of(&self, node: NodeId) -> u64 {
        self.list()
            .unwrap_or_default()
            .iter()
            .filter(|id| id.initiator == node)
            .map(|id| id.seq)
            .max()
            .unwrap_or(0)
    }
}

fn misplaced(path: &Path, holds: String, expected: SnapshotId) -> StoreError {
    StoreError::Misplaced {
        path: path.to_path_buf(),
        reason: format!(
            "{holds}, but lies in the directory of snapshot {expected} (renamed or copied?)"
        ),
    }
}

#[cfg(test)]
mod tests;
