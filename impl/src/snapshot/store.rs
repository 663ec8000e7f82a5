//! One data dir's snapshots: writing parts atomically, assembling the
//! manifest, aborting, listing, choosing the newest, retention.
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
use super::manifest::{assemble, part_file_name, Manifest, PartSummary, Recency};
use crate::config::RestoreFrom;
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

/// Which complete snapshot `--restore latest` / `latest-valid` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Newest {
    /// The newest one, or an error if it is damaged.
    Complete,
    /// The newest one that is whole, skipping damaged newer ones.
    Valid,
}

/// The outcome of choosing the newest snapshot.
#[derive(Debug)]
pub struct Chosen {
    pub manifest: Manifest,
    /// Newer snapshots skipped because they are damaged (only with [`Newest::Valid`]).
    pub skipped: Vec<(SnapshotId, StoreError)>,
}

/// A snapshot `--restore latest` must consider: complete, or claiming to be
/// (a manifest that cannot be read).
enum Candidate {
    Complete(Manifest),
    Damaged {
        id: SnapshotId,
        /// How new it is, when its parts' summaries tell; `None` ranks it newest.
        recency: Option<Recency>,
        error: StoreError,
    },
}

impl Candidate {
    fn rank(&self) -> (bool, Option<Recency>) {
        match self {
            Candidate::Complete(m) => (false, Some(m.recency())),
            Candidate::Damaged { recency: None, .. } => (true, None),
            Candidate::Damaged { recency, .. } => (false, *recency),
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
        let summary = manifest
            .parts
            .get(node)
            .ok_or_else(|| StoreError::Invalid {
                id: manifest.id,
                reason: format!("the manifest has no part for node {node}"),
            })?;
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

    /// Complete snapshots and ones whose manifest is damaged, newest first.
    fn candidates(&self) -> Result<Vec<Candidate>, StoreError> {
        let mut out = Vec::new();
        for id in self.list()? {
            if self.aborted_path(id).exists() || !self.manifest_path(id).exists() {
                continue;
            }
            match self.manifest(id) {
                Ok(m) => out.push(Candidate::Complete(m)),
                Err(error) => {
                    // Rank it by its parts' summaries if they are all there and whole.
                    let present = self.parts_present(id);
                    let summaries: Result<Vec<_>, _> =
                        present.iter().map(|&n| self.summary(id, n)).collect();
                    let recency = summaries
                        .ok()
                        .filter(|s| !s.is_empty())
                        .map(|s| Recency::of(id, &s));
                    out.push(Candidate::Damaged { id, recency, error });
                }
            }
        }
        // A damaged snapshot ranked by fewer parts than the complete ones is
        // not known to be older: rank it newest.
        let nodes = out.iter().find_map(|c| match c {
            Candidate::Complete(m) => Some(m.nodes),
            _ => None,
        });
        for c in &mut out {
            if let Candidate::Damaged { id, recency, .. } = c {
                if nodes.is_some_and(|n| self.parts_present(*id).len() < n) {
                    *recency = None;
                }
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.rank()));
        Ok(out)
    }

    /// The newest complete snapshot (by cut and id, never by wall clock),
    /// with every part present here checked against its summary. A damaged
    /// newer snapshot is an error naming the file under [`Newest::Complete`],
    /// and skipped (reported in [`Chosen::skipped`]) under [`Newest::Valid`].
    pub fn newest(&self, which: Newest) -> Result<Chosen, StoreError> {
        let mut skipped = Vec::new();
        for c in self.candidates()? {
            let (id, error) = match c {
                Candidate::Complete(manifest) => {
                    let checked: Result<Vec<bool>, _> =
                        manifest.parts.iter().map(|s| self.check_part(s)).collect();
                    match checked {
                        Ok(_) => return Ok(Chosen { manifest, skipped }),
                        Err(e) => (manifest.id, e),
                    }
                }
                Candidate::Damaged { id, error, .. } => (id, error),
            };
            if which == Newest::Complete {
                return Err(StoreError::NewestDamaged {
                    id,
                    cause: Box::new(error),
                });
            }
            skipped.push((id, error));
        }
        Err(StoreError::NoneComplete(self.root.clone()))
    }

    /// The snapshot a node restores from: `from` resolved (see [`Self::newest`]),
    /// and for an explicit id, every part present here checked too.
    pub fn restore_point(&self, from: RestoreFrom) -> Result<Chosen, StoreError> {
        match from {
            RestoreFrom::Latest => self.newest(Newest::Complete),
            RestoreFrom::LatestValid => self.newest(Newest::Valid),
            RestoreFrom::Id(id) => {
                let manifest = self.complete(id)?;
                for s in &manifest.parts {
                    self.check_part(s)?;
                }
                Ok(Chosen {
                    manifest,
                    skipped: Vec::new(),
                })
            }
        }
    }

    /// The id of [`Self::newest`] under [`Newest::Complete`].
    pub fn latest_complete(&self) -> Result<SnapshotId, StoreError> {
        Ok(self.newest(Newest::Complete)?.manifest.id)
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

    /// Keeps the newest `keep` complete snapshots (by cut and id) and deletes
    /// older complete and aborted ones. In-progress and damaged snapshots are
    /// left alone (an operator should see them).
    pub fn retain(&self, keep: usize) -> Result<Vec<SnapshotId>, StoreError> {
        let mut complete = Vec::new();
        let mut aborted = Vec::new();
        for id in self.list()? {
            match self.status(id) {
                Ok(Status::Complete(m)) => complete.push(m.recency()),
                Ok(Status::Aborted(_)) => aborted.push(id),
                _ => {}
            }
        }
        complete.sort();
        let excess = complete.len().saturating_sub(keep);
        let doomed: Vec<SnapshotId> = complete
            .into_iter()
            .take(excess)
            .map(|r| r.id)
            .chain(aborted)
            .collect();
        for id in &doomed {
            let dir = self.dir(*id);
            match fs::remove_dir_all(&dir) {
                // Another node sharing this dir got there first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other.map_err(io_err(&dir))?,
            }
        }
        Ok(doomed)
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
mod tests {
    use super::super::format::read_part;
    use super::*;
    use gsmo_spec::kv::Op;
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::node::Command;
    use gsmo_spec::node::Part;
    use gsmo_spec::sim::Cluster;

    fn snapshot_parts(n: usize) -> Vec<Part> {
        let mut c = Cluster::new(n, Mode::TotalIsis);
        c.client(
            0,
            Command::Write(Op::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            }),
        );
        c.quiesce().unwrap();
        c.client(
            0,
            Command::Write(Op::Set {
                key: b"k2".to_vec(),
                value: b"in flight".to_vec(),
            }),
        );
        let id = c.snapshot(n - 1);
        c.quiesce().unwrap();
        c.completed(id).unwrap()
    }

    fn store_with_complete_snapshot(n: usize) -> (tempfile::TempDir, SnapshotStore, SnapshotId) {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let parts = snapshot_parts(n);
        let id = parts[0].id;
        for (i, part) in parts.into_iter().enumerate() {
            assert_eq!(
                store.try_assemble(id, n).unwrap(),
                None,
                "not all parts yet"
            );
            let pf = PartFile {
                cluster_id: "t".into(),
                mode: Mode::TotalIsis,
                recorded_unix_ms: 1,
                duration_ms: i as u64,
                part,
            };
            store.write_part(&pf).unwrap();
        }
        assert!(store.try_assemble(id, n).unwrap().is_some());
        (dir, store, id)
    }

    #[test]
    fn round_trip_and_manifest() {
        let (_dir, store, id) = store_with_complete_snapshot(3);
        let (manifest, parts) = store.load(id).unwrap();
        assert_eq!(manifest.nodes, 3);
        assert_eq!(parts.len(), 3);
        assert!(manifest.parts.iter().all(|p| p.keys >= 1), "{manifest:?}");
        assert!(matches!(store.status(id).unwrap(), Status::Complete(_)));
        let leftovers: Vec<_> = fs::read_dir(store.dir(id))
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().into_string().unwrap();
                n.contains(".tmp").then_some(n)
            })
            .collect();
        assert!(
            leftovers.is_empty(),
            "temp files left behind: {leftovers:?}"
        );
    }

    /// A part bigger than the write buffer, streamed to disk, is byte for
    /// byte the in-memory image, and its summary declares that image.
    #[test]
    fn a_streamed_part_is_the_in_memory_image() {
        let mut c = Cluster::new(1, Mode::TotalIsis);
        for i in 0..12_000 {
            c.client(
                0,
                Command::Write(Op::Set {
                    key: format!("key:{i:08}").into_bytes(),
                    value: vec![b'v'; 90],
                }),
            );
        }
        c.quiesce().unwrap();
        let id = c.snapshot(0);
        c.quiesce().unwrap();
        let part = c.completed(id).unwrap().remove(0);
        let pf = PartFile {
            cluster_id: "t".into(),
            mode: Mode::TotalIsis,
            recorded_unix_ms: 1,
            duration_ms: 0,
            part,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let summary = store.store_part(&pf).unwrap();
        let image = encode_file(PART_MAGIC, &pf);
        assert!(image.len() > 1 << 20, "many times the write buffer");
        assert_eq!(fs::read(store.part_path(id, 0)).unwrap(), image);
        assert_eq!(summary, PartSummary::of(&pf, &image));
    }

    /// A node killed while writing its part leaves a temp file (or a part
    /// without its summary); at its restart both go and the snapshot is
    /// marked aborted by that node. Whole parts and other snapshots stay.
    #[test]
    fn a_restarted_node_sweeps_its_interrupted_part() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        complete_after(&store, sid(0, 1), 2, 2, 1);
        let (torn, half, whole) = (sid(0, 2), sid(0, 3), sid(1, 4));
        for id in [torn, half, whole] {
            fs::create_dir_all(store.dir(id)).unwrap();
        }
        let tmp = store.dir(torn).join(".part-1.gsmo.tmp-4242");
        fs::write(&tmp, b"GSMOPART half").unwrap();
        fs::write(store.part_path(torn, 0), b"node 0's part").unwrap();
        fs::write(store.part_path(half, 1), b"no summary yet").unwrap();
        fs::write(store.part_path(whole, 1), b"whole").unwrap();
        fs::write(store.info_path(whole, 1), b"summary").unwrap();
        assert_eq!(store.sweep_interrupted(1).unwrap(), vec![torn, half]);
        for id in [torn, half] {
            let status = store.status(id).unwrap();
            assert!(
                matches!(&status, Status::Aborted(why) if why.starts_with("node 1: interrupted")),
                "{status}"
            );
            assert_eq!(store.parts_present(id), Vec::<NodeId>::new());
        }
        assert!(!tmp.exists());
        assert_eq!(
            store.status(whole).unwrap(),
            Status::Incomplete { parts: vec![1] }
        );
        assert!(matches!(
            store.status(sid(0, 1)).unwrap(),
            Status::Complete(_)
        ));
        assert!(store.sweep_interrupted(1).unwrap().is_empty());
    }

    #[test]
    fn a_part_damaged_before_assembly_blocks_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let parts = snapshot_parts(2);
        let id = parts[0].id;
        for part in parts {
            let pf = PartFile {
                cluster_id: "t".into(),
                mode: Mode::TotalIsis,
                recorded_unix_ms: 1,
                duration_ms: 0,
                part,
            };
            store.write_part(&pf).unwrap();
        }
        let path = store.part_path(id, 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = store.try_assemble(id, 2).unwrap_err();
        assert!(
            matches!(&err, StoreError::Checksum { path: p, .. } if *p == path),
            "{err}"
        );
        assert!(!store.manifest_path(id).exists());
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        let (_dir, store, id) = store_with_complete_snapshot(2);
        let path = store.part_path(id, 1);
        let good = fs::read(&path).unwrap();

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        fs::write(&path, &flipped).unwrap();
        let err = store.load(id).unwrap_err();
        assert!(matches!(err, StoreError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("part-1.gsmo"), "{err}");

        fs::write(&path, &good[..good.len() - 5]).unwrap();
        assert!(matches!(
            read_part(&path).unwrap_err(),
            StoreError::Truncated { .. }
        ));

        fs::write(&path, b"hello world, definitely not a snapshot").unwrap();
        assert!(matches!(
            read_part(&path).unwrap_err(),
            StoreError::NotASnapshot { .. }
        ));

        let mut future = good.clone();
        future[8] = 9;
        fs::write(&path, &future).unwrap();
        let err = read_part(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("format version 9 is not supported"),
            "{err}"
        );

        // Valid header and checksum around a payload that is not a part.
        let mut bogus = encode_file(PART_MAGIC, &vec![1u8, 2, 3]);
        fs::write(&path, &bogus).unwrap();
        assert!(matches!(
            read_part(&path).unwrap_err(),
            StoreError::Decode { .. }
        ));
        bogus.truncate(3);
        assert!(read_part(&path).is_err());
    }

    #[test]
    fn abort_removes_parts_and_blocks_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let parts = snapshot_parts(2);
        let id = parts[0].id;
        let pf = PartFile {
            cluster_id: "t".into(),
            mode: Mode::TotalIsis,
            recorded_unix_ms: 1,
            duration_ms: 0,
            part: parts[0].clone(),
        };
        store.write_part(&pf).unwrap();
        assert_eq!(
            store.status(id).unwrap(),
            Status::Incomplete { parts: vec![0] }
        );
        store
            .mark_aborted(id, 0, "timed out waiting for markers from nodes [1]")
            .unwrap();
        let pf1 = PartFile {
            part: parts[1].clone(),
            ..pf
        };
        assert!(matches!(
            store.write_part(&pf1),
            Err(StoreError::Aborted { .. })
        ));
        assert!(!store.part_path(id, 1).exists());
        assert_eq!(store.try_assemble(id, 2).unwrap(), None);
        let status = store.status(id).unwrap();
        assert!(
            matches!(&status, Status::Aborted(why) if why.contains("nodes [1]")),
            "{status}"
        );
        assert!(matches!(
            store.load(id).unwrap_err(),
            StoreError::NotComplete { .. }
        ));
        assert_eq!(
            store.retain(5).unwrap(),
            vec![id],
            "aborted snapshots are cleaned up"
        );
    }

    fn valid_part_file() -> Vec<u8> {
        let part = snapshot_parts(2).remove(1);
        encode_file(
            PART_MAGIC,
            &PartFile {
                cluster_id: "t".into(),
                mode: Mode::TotalIsis,
                recorded_unix_ms: 1,
                duration_ms: 0,
                part,
            },
        )
    }

    /// The case proptest once found: a v2 file whose version byte reads 1
    /// would reach the v1 decoder if the checksum did not cover the version.
    #[test]
    fn a_downgraded_version_field_is_corrupt() {
        let mut bad = valid_part_file();
        bad[8] = 1;
        let err = decode_part(Path::new("m.gsmo"), &bad).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(gsmo_spec::testing::proptest_config(300))]

        /// Arbitrary bytes: never a panic, always a named error.
        #[test]
        fn random_bytes_are_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096), with_magic: bool) {
            let mut bytes = bytes;
            if with_magic && bytes.len() >= 8 {
                bytes[..8].copy_from_slice(PART_MAGIC);
            }
            let err = decode_part(Path::new("fuzz.gsmo"), &bytes).unwrap_err();
            proptest::prop_assert!(err.to_string().starts_with("fuzz.gsmo: "), "{}", err);
        }

        /// Any single-byte change or truncation of a valid file is detected.
        #[test]
        fn every_mutation_of_a_valid_file_is_detected(pos in 0usize..100_000, xor in 1u8..=255, cut in proptest::prelude::any::<bool>()) {
            let good = valid_part_file();
            let pos = pos % good.len();
            let mut bad = good.clone();
            if cut {
                bad.truncate(pos);
            } else {
                bad[pos] ^= xor;
            }
            proptest::prop_assert!(decode_part(Path::new("m.gsmo"), &bad).is_err());
            proptest::prop_assert!(decode_part(Path::new("m.gsmo"), &good).is_ok());
        }
    }

    #[test]
    fn retention_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let template = snapshot_parts(1).remove(0);
        for seq in 1..=4u64 {
            let mut part = template.clone();
            part.id = SnapshotId { initiator: 0, seq };
            let pf = PartFile {
                cluster_id: "t".into(),
                mode: Mode::TotalIsis,
                recorded_unix_ms: seq,
                duration_ms: 0,
                part,
            };
            store.write_part(&pf).unwrap();
            store.try_assemble(pf.part.id, 1).unwrap().unwrap();
        }
        let removed = store.retain(2).unwrap();
        assert_eq!(
            removed,
            vec![
                SnapshotId {
                    initiator: 0,
                    seq: 1
                },
                SnapshotId {
                    initiator: 0,
                    seq: 2
                }
            ]
        );
        assert_eq!(store.list().unwrap().len(), 2);
        assert_eq!(store.last_seq_of(0), 4);
    }

    /// Stores, as snapshot `id`, a `n`-node snapshot taken after `writes`
    /// writes, recorded at wall-clock time `at`; completes it.
    pub(crate) fn complete_after(
        store: &SnapshotStore,
        id: SnapshotId,
        n: usize,
        writes: usize,
        at: u64,
    ) {
        let mut c = Cluster::new(n, Mode::TotalSequencer);
        for w in 0..writes {
            c.client(
                w % n,
                Command::Write(Op::Set {
                    key: format!("k{w}").into_bytes(),
                    value: b"v".to_vec(),
                }),
            );
        }
        c.quiesce().unwrap();
        let sim_id = c.snapshot(0);
        c.quiesce().unwrap();
        for mut part in c.completed(sim_id).unwrap() {
            part.id = id;
            store
                .write_part(&PartFile {
                    cluster_id: "t".into(),
                    mode: Mode::TotalSequencer,
                    recorded_unix_ms: at,
                    duration_ms: 0,
                    part,
                })
                .unwrap();
        }
        store.try_assemble(id, n).unwrap().unwrap();
    }

    fn sid(initiator: NodeId, seq: u64) -> SnapshotId {
        SnapshotId { initiator, seq }
    }

    #[test]
    fn newest_is_chosen_by_cut_and_id_not_by_wall_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        // Node 0 took many snapshots early; node 2 took one later, with more
        // writes in its cut, but its clock runs an hour behind.
        complete_after(&store, sid(0, 7), 3, 2, 10_000_000);
        complete_after(&store, sid(2, 1), 3, 5, 10_000_000 - 3_600_000);
        complete_after(&store, sid(1, 3), 3, 1, 20_000_000);
        assert_eq!(store.latest_complete().unwrap(), sid(2, 1));
        // Equal cuts (no writes in between): the later sequence number.
        complete_after(&store, sid(2, 2), 3, 5, 0);
        assert_eq!(store.latest_complete().unwrap(), sid(2, 2));
        // Retention keeps the newest by the same order.
        assert_eq!(store.retain(2).unwrap(), vec![sid(1, 3), sid(0, 7)]);
    }

    #[test]
    fn a_damaged_newest_snapshot_is_refused_by_name_never_skipped_silently() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        complete_after(&store, sid(0, 1), 2, 2, 1);
        complete_after(&store, sid(0, 2), 2, 4, 2);
        let manifest = store.manifest_path(sid(0, 2));
        let mut bytes = fs::read(&manifest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&manifest, &bytes).unwrap();

        let err = store.newest(Newest::Complete).unwrap_err();
        assert!(matches!(err, StoreError::NewestDamaged { id, .. } if id == sid(0, 2)));
        let text = err.to_string();
        assert!(text.contains(&manifest.display().to_string()), "{text}");
        assert!(text.contains("latest-valid"), "{text}");

        let chosen = store.newest(Newest::Valid).unwrap();
        assert_eq!(chosen.manifest.id, sid(0, 1));
        assert_eq!(chosen.skipped.len(), 1);
        assert_eq!(chosen.skipped[0].0, sid(0, 2));

        // Damage without summaries to rank it by: still assumed newest.
        fs::remove_file(store.info_path(sid(0, 2), 0)).unwrap();
        assert!(store.newest(Newest::Complete).is_err());
        // A whole manifest over a damaged part is refused the same way.
        fs::remove_dir_all(store.dir(sid(0, 2))).unwrap();
        complete_after(&store, sid(1, 1), 2, 6, 3);
        let part = store.part_path(sid(1, 1), 1);
        let mut bytes = fs::read(&part).unwrap();
        bytes[30] ^= 1;
        fs::write(&part, &bytes).unwrap();
        let err = store.restore_point(RestoreFrom::Latest).unwrap_err();
        assert!(
            err.to_string().contains(&part.display().to_string()),
            "{err}"
        );
        let chosen = store.restore_point(RestoreFrom::LatestValid).unwrap();
        assert_eq!(chosen.manifest.id, sid(0, 1));
    }

    #[test]
    fn a_renamed_snapshot_dir_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        complete_after(&store, sid(0, 1), 2, 2, 1);
        fs::rename(store.dir(sid(0, 1)), store.dir(sid(0, 9))).unwrap();
        let err = store.load(sid(0, 9)).unwrap_err().to_string();
        assert!(
            err.contains(&store.manifest_path(sid(0, 9)).display().to_string())
                && err.contains("holds snapshot 0-1"),
            "{err}"
        );
        // A part moved into another snapshot's directory is refused too.
        complete_after(&store, sid(0, 2), 2, 2, 1);
        complete_after(&store, sid(0, 3), 2, 2, 1);
        let from = store.part_path(sid(0, 2), 1);
        let to = store.part_path(sid(0, 3), 1);
        fs::copy(&from, &to).unwrap();
        let m = store.manifest(sid(0, 3)).unwrap();
        let err = store.load_part(&m, 1).unwrap_err().to_string();
        assert!(err.contains(&to.display().to_string()), "{err}");
        // A snapshot copied into another cluster's data dir.
        fs::write(dir.path().join("CLUSTER"), "other\n").unwrap();
        let err = store.load(sid(0, 2)).unwrap_err().to_string();
        assert!(
            err.contains(&store.manifest_path(sid(0, 2)).display().to_string())
                && err.contains("cluster `other`"),
            "{err}"
        );
    }
}
