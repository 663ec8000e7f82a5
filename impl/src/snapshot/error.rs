//! Everything that can be wrong with snapshots on disk. Each error about a
//! file names the file, so an operator knows what to look at.

use super::format::{FORMAT_VERSION, MAX_FILE_BYTES};
use gsmo_spec::snapshot::SnapshotId;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a gsmo snapshot file (bad magic)")]
    NotASnapshot { path: PathBuf },
    #[error("{path}: format version {found} is not supported (this build reads versions 1 to {FORMAT_VERSION})")]
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
    /// A whole, checksummed file whose contents contradict where it lies
    /// (a renamed or copied directory, a part of another cluster).
    #[error("{path}: {reason}")]
    Misplaced { path: PathBuf, reason: String },
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
    /// `--restore latest` found a newer snapshot it cannot read: restoring an
    /// older one would silently lose the writes in between.
    #[error(
        "the newest snapshot {id} is damaged: {cause}; refusing to fall back to an older one \
         silently (restore an explicit id, or pass `latest-valid` to skip damaged snapshots)"
    )]
    NewestDamaged {
        id: SnapshotId,
        cause: Box<StoreError>,
    },
    /// The data dir cannot be used by this node (locked, another cluster's, read-only).
    #[error("{path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
