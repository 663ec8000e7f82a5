//! Snapshot storage: every node's part of a Chandy-Lamport snapshot, and the
//! manifest that declares a snapshot complete.
//!
//! ## Layout (under `--data-dir`, shared by the nodes of a local cluster)
//! ```text
//! snapshots/<initiator>-<seq>/part-<node>.gsmo   one node's part
//! snapshots/<initiator>-<seq>/MANIFEST.gsmo      present only once every part is written
//! snapshots/<initiator>-<seq>/ABORTED            present if any node gave up (reason inside)
//! ```
//! A snapshot is *complete* exactly when its manifest exists and it is not aborted.
//!
//! ## File format (parts and manifests alike)
//! ```text
//! offset  size  field
//! 0       8     magic: "GSMOPART" or "GSMOMANI"
//! 8       2     format version, little-endian (currently 2; 1 is read, see store_v1.rs)
//! 10      2     reserved, 0
//! 12      8     payload length in bytes, little-endian
//! 20      4     CRC-32 (IEEE) of the payload, little-endian
//! 24      ...   payload: bincode 2 (standard config) of PartFile / Manifest
//! ```
//! Files are written atomically: a temp file in the same directory, fsync,
//! rename, fsync of the directory. Readers check magic, version, length and
//! checksum before decoding, and name the file in every error.

use gsmo_spec::multicast::Mode;
use gsmo_spec::node::Part;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::NodeId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const PART_MAGIC: &[u8; 8] = b"GSMOPART";
pub const MANIFEST_MAGIC: &[u8; 8] = b"GSMOMANI";
pub const INFO_MAGIC: &[u8; 8] = b"GSMOINFO";
/// 2: typed values (lists, sets, ...) in persistent maps. Version 1 (strings
/// only) is still read: [`crate::store_v1`].
pub const FORMAT_VERSION: u16 = 2;
/// The oldest version this build reads.
pub const OLDEST_VERSION: u16 = 1;
const HEADER_LEN: usize = 24;
/// Largest file a reader will load (a 1 M-key snapshot part is ~100 MB); a
/// larger one is refused before any allocation.
pub const MAX_FILE_BYTES: u64 = 8 << 30;

/// Everything that can be wrong with a snapshot on disk; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a gsmo snapshot file (bad magic)")]
    NotASnapshot { path: PathBuf },
    #[error("{path}: format version {found} is not supported (this build reads versions {OLDEST_VERSION} to {FORMAT_VERSION})")]
    Version { path: PathBuf, found: u16 },
    #[error(
        "{path}: reserved header bytes are {found:#06x}, expected 0 (written by a newer gsmo?)"
    )]
    Reserved { path: PathBuf, found: u16 },
    #[error(
        "{path}: {bytes} bytes is larger than the {MAX_FILE_BYTES}-byte limit for snapshot files"
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path}: truncated: header promises {expected} payload bytes, file holds {actual}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: corrupted: checksum {actual:08x} does not match recorded {expected:08x}")]
    Checksum {
        path: PathBuf,
        expected: u32,
        actual: u32,
    },
    #[error("{path}: undecodable payload: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("snapshot {id}: {reason}")]
    Invalid { id: SnapshotId, reason: String },
    #[error("snapshot {id} was aborted ({reason}); its part is not written")]
    Aborted { id: SnapshotId, reason: String },
    #[error("no snapshot {id} in {dir}")]
    NotFound { id: SnapshotId, dir: PathBuf },
    #[error("no complete snapshot in {0}")]
    NoneComplete(PathBuf),
    #[error("snapshot {id} is not complete: {status}")]
    NotComplete { id: SnapshotId, status: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One node's part, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    pub cluster_id: String,
    pub mode: Mode,
    /// Wall-clock time the local state was recorded (ms since the Unix epoch).
    pub recorded_unix_ms: u64,
    /// From recording the local state to the last incoming channel closing.
    pub duration_ms: u64,
    pub part: Part,
}

/// Per-part facts kept in the manifest, so `show` needs no part decoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub node: NodeId,
    pub file: String,
    pub bytes: u64,
    pub crc32: u32,
    pub keys: u64,
    pub state_bytes: u64,
    pub channel_messages: u64,
    pub duration_ms: u64,
}

/// What a node declares about the part it wrote, in a small file beside it,
/// so assembling the manifest checks checksums without decoding big parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoFile {
    pub cluster_id: String,
    pub mode: Mode,
    pub recorded_unix_ms: u64,
    pub info: PartInfo,
}

/// Declares a snapshot complete: every part present, each with its checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: SnapshotId,
    pub cluster_id: String,
    pub mode: Mode,
    pub nodes: usize,
    pub created_unix_ms: u64,
    pub parts: Vec<PartInfo>,
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

fn encode_file<T: Serialize>(magic: &[u8; 8], value: &T) -> Vec<u8> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("in-memory encoding cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Checks and decodes a file image; `bytes` is the whole file.
pub fn decode_file<T: DeserializeOwned + 'static>(
    path: &Path,
    magic: &[u8; 8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    let payload = check_image(path, magic, bytes)?;
    // Only a part's payload changed in version 2; manifests and info files read as they are.
    if bytes[8..10] == 1u16.to_le_bytes() && magic == PART_MAGIC {
        let old: crate::store_v1::PartFileV1 = decode_payload(path, payload)?;
        let new: Box<dyn std::any::Any> = Box::new(old.upgrade());
        return new
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Decode {
                path: path.to_path_buf(),
                reason: "a version-1 part read as something other than a part".into(),
            });
    }
    decode_payload(path, payload)
}

/// Checks a file image's header, length and checksum; returns the payload.
pub fn check_image<'a>(
    path: &Path,
    magic: &[u8; 8],
    bytes: &'a [u8],
) -> Result<&'a [u8], StoreError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < 8 || &bytes[..8] != magic {
        return Err(StoreError::NotASnapshot { path: path_buf() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(StoreError::Truncated {
            path: path_buf(),
            expected: HEADER_LEN as u64,
            actual: bytes.len() as u64,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(StoreError::Version {
            path: path_buf(),
            found: version,
        });
    }
    let reserved = u16::from_le_bytes([bytes[10], bytes[11]]);
    if reserved != 0 {
        return Err(StoreError::Reserved {
            path: path_buf(),
            found: reserved,
        });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(StoreError::Truncated {
            path: path_buf(),
            expected: len,
            actual: payload.len() as u64,
        });
    }
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(StoreError::Checksum {
            path: path_buf(),
            expected: crc,
            actual,
        });
    }
    Ok(payload)
}

fn decode_payload<T: DeserializeOwned>(path: &Path, payload: &[u8]) -> Result<T, StoreError> {
    let path_buf = || path.to_path_buf();
    // The limit stops a crafted length field from claiming more than a file may hold.
    let config = bincode::config::standard().with_limit::<{ MAX_FILE_BYTES as usize }>();
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config).map_err(|e| StoreError::Decode {
            path: path_buf(),
            reason: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(StoreError::Decode {
            path: path_buf(),
            reason: format!("{} trailing bytes", payload.len() - used),
        });
    }
    Ok(value)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn read_checked<T: DeserializeOwned + 'static>(
    path: &Path,
    magic: &[u8; 8],
) -> Result<(T, Vec<u8>), StoreError> {
    let size = fs::metadata(path).map_err(io_err(path))?.len();
    if size > MAX_FILE_BYTES {
        return Err(StoreError::TooLarge {
            path: path.to_path_buf(),
            bytes: size,
        });
    }
    let bytes = fs::read(path).map_err(io_err(path))?;
    let value = decode_file(path, magic, &bytes)?;
    Ok((value, bytes))
}

/// Reads and verifies one part file.
pub fn read_part(path: &Path) -> Result<PartFile, StoreError> {
    read_checked(path, PART_MAGIC).map(|(v, _)| v)
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
        self.dir(id).join(format!("part-{node}.gsmo"))
    }

    /// Written after the part itself: its presence means the part is whole.
    pub fn info_path(&self, id: SnapshotId, node: NodeId) -> PathBuf {
        self.dir(id).join(format!("part-{node}.info.gsmo"))
    }

    pub fn manifest_path(&self, id: SnapshotId) -> PathBuf {
        self.dir(id).join("MANIFEST.gsmo")
    }

    fn aborted_path(&self, id: SnapshotId) -> PathBuf {
        self.dir(id).join("ABORTED")
    }

    /// Persists one node's part atomically; returns its path and size.
    pub fn write_part(&self, file: &PartFile) -> Result<(PathBuf, u64), StoreError> {
        let dir = self.dir(file.part.id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let aborted = self.aborted_path(file.part.id);
        if aborted.exists() {
            let reason = fs::read_to_string(&aborted).unwrap_or_default();
            return Err(StoreError::Aborted {
                id: file.part.id,
                reason: reason.trim().to_string(),
            });
        }
        let (id, node) = (file.part.id, file.part.node);
        let path = self.part_path(id, node);
        let bytes = encode_file(PART_MAGIC, file);
        write_atomic(&path, &bytes)?;
        let info = InfoFile {
            cluster_id: file.cluster_id.clone(),
            mode: file.mode,
            recorded_unix_ms: file.recorded_unix_ms,
            info: PartInfo {
                node,
                file: format!("part-{node}.gsmo"),
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes[HEADER_LEN..]),
                keys: file.part.state.kv.len() as u64,
                state_bytes: file.part.state.kv.payload_bytes() as u64,
                channel_messages: file.part.channel_messages() as u64,
                duration_ms: file.duration_ms,
            },
        };
        write_atomic(&self.info_path(id, node), &encode_file(INFO_MAGIC, &info))?;
        Ok((path, bytes.len() as u64))
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
        write_atomic(
            &self.aborted_path(id),
            format!("node {node}: {reason}\n").as_bytes(),
        )?;
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
        Ok(())
    }

    fn parts_present(&self, id: SnapshotId) -> Vec<NodeId> {
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

    pub fn status(&self, id: SnapshotId) -> Result<Status, StoreError> {
        let aborted = self.aborted_path(id);
        if aborted.exists() {
            let why = fs::read_to_string(&aborted).map_err(io_err(&aborted))?;
            return Ok(Status::Aborted(why.trim().to_string()));
        }
        let manifest = self.manifest_path(id);
        if manifest.exists() {
            return Ok(Status::Complete(read_checked(&manifest, MANIFEST_MAGIC)?.0));
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
    /// the manifest is a function of the parts, so racing writers agree.
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
        let mut infos: Vec<InfoFile> = Vec::with_capacity(nodes);
        for node in 0..nodes {
            let info: InfoFile = read_checked(&self.info_path(id, node), INFO_MAGIC)?.0;
            // The part must be whole and be the very bytes its node declared.
            let path = self.part_path(id, node);
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            let payload = check_image(&path, PART_MAGIC, &bytes)?;
            let crc = crc32fast::hash(payload);
            if crc != info.info.crc32 || info.info.node != node {
                return Err(StoreError::Checksum {
                    path,
                    expected: info.info.crc32,
                    actual: crc,
                });
            }
            infos.push(info);
        }
        let first = &infos[0];
        if let Some(bad) = infos
            .iter()
            .find(|p| p.cluster_id != first.cluster_id || p.mode != first.mode)
        {
            return Err(StoreError::Invalid {
                id,
                reason: format!(
                    "node {}'s part is from another cluster or mode",
                    bad.info.node
                ),
            });
        }
        let manifest = Manifest {
            id,
            cluster_id: first.cluster_id.clone(),
            mode: first.mode,
            nodes,
            created_unix_ms: infos
                .iter()
                .map(|p| p.recorded_unix_ms)
                .max()
                .unwrap_or_else(now_unix_ms),
            parts: infos.into_iter().map(|i| i.info).collect(),
        };
        write_atomic(
            &self.manifest_path(id),
            &encode_file(MANIFEST_MAGIC, &manifest),
        )?;
        Ok(Some(manifest))
    }

    /// Loads a complete snapshot, checking every file against the manifest.
    pub fn load(&self, id: SnapshotId) -> Result<(Manifest, Vec<PartFile>), StoreError> {
        if !self.dir(id).is_dir() {
            return Err(StoreError::NotFound {
                id,
                dir: self.root.clone(),
            });
        }
        let manifest = match self.status(id)? {
            Status::Complete(m) => m,
            other => {
                return Err(StoreError::NotComplete {
                    id,
                    status: other.to_string(),
                })
            }
        };
        let mut parts = Vec::with_capacity(manifest.nodes);
        for info in &manifest.parts {
            let path = self.dir(id).join(&info.file);
            let (pf, bytes): (PartFile, Vec<u8>) = read_checked(&path, PART_MAGIC)?;
            let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
            if crc != info.crc32 || bytes.len() as u64 != info.bytes {
                return Err(StoreError::Checksum {
                    path,
                    expected: info.crc32,
                    actual: crc,
                });
            }
            parts.push(pf);
        }
        Ok((manifest, parts))
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

    /// The most recently assembled complete snapshot (what `--restore latest` uses).
    pub fn latest_complete(&self) -> Result<SnapshotId, StoreError> {
        let mut best: Option<(u64, SnapshotId)> = None;
        for id in self.list()? {
            if let Ok(Status::Complete(m)) = self.status(id) {
                if best.is_none_or(|(t, _)| m.created_unix_ms >= t) {
                    best = Some((m.created_unix_ms, id));
                }
            }
        }
        best.map(|(_, id)| id)
            .ok_or_else(|| StoreError::NoneComplete(self.root.clone()))
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

    /// Keeps the newest `keep` complete snapshots (by manifest time) and deletes
    /// older complete and aborted ones. In-progress snapshots are left alone.
    pub fn retain(&self, keep: usize) -> Result<Vec<SnapshotId>, StoreError> {
        let mut complete = Vec::new();
        let mut aborted = Vec::new();
        for id in self.list()? {
            match self.status(id) {
                Ok(Status::Complete(m)) => complete.push((m.created_unix_ms, id)),
                Ok(Status::Aborted(_)) => aborted.push(id),
                _ => {}
            }
        }
        complete.sort();
        let excess = complete.len().saturating_sub(keep);
        let doomed: Vec<SnapshotId> = complete
            .into_iter()
            .take(excess)
            .map(|(_, id)| id)
            .chain(aborted)
            .collect();
        for id in &doomed {
            let dir = self.dir(*id);
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(doomed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsmo_spec::kv::Op;
    use gsmo_spec::node::Command;
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, failure_persistence: None, ..Default::default() })]

        /// Arbitrary bytes: never a panic, always a named error.
        #[test]
        fn random_bytes_are_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096), with_magic: bool) {
            let mut bytes = bytes;
            if with_magic && bytes.len() >= 8 {
                bytes[..8].copy_from_slice(PART_MAGIC);
            }
            let err = decode_file::<PartFile>(Path::new("fuzz.gsmo"), PART_MAGIC, &bytes).unwrap_err();
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
            proptest::prop_assert!(decode_file::<PartFile>(Path::new("m.gsmo"), PART_MAGIC, &bad).is_err());
            proptest::prop_assert!(decode_file::<PartFile>(Path::new("m.gsmo"), PART_MAGIC, &good).is_ok());
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
}
