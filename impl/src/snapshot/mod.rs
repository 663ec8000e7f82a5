//! Chandy-Lamport snapshots on disk, all in this folder:
//!
//! | concept                                                    | module       |
//! |------------------------------------------------------------|--------------|
//! | file header, format version, the one version dispatch      | [`format`](mod@format) |
//! | errors, each naming its file                               | [`error`]    |
//! | part summaries, the manifest, which snapshot is newest     | [`manifest`] |
//! | version-1 part payloads, read and upgraded                | [`v1`]       |
//! | version-2 part payloads (one write a message), upgraded    | [`v2`]       |
//! | one data dir's snapshots: write, abort, list               | [`store`]    |
//! | which snapshot to restore (newest, by id), retention       | [`choose`]   |
//! | one cluster per data dir: `CLUSTER`, per-node lock, probe  | [`datadir`]  |
//! | `show`/`verify`: the spec's predicates over the parts      | [`verify`]   |
//! | `gsmo snapshot take/list/show/verify`                      | [`cli`]      |
//!
//! Durability is as good as the last complete snapshot: a node writes its
//! part when its recording finishes, and a snapshot counts only once its
//! manifest says every part is stored.

pub mod choose;
pub mod cli;
pub mod datadir;
pub mod error;
pub mod format;
pub mod manifest;
pub mod store;
pub mod v1;
pub mod v2;
pub mod verify;

pub use choose::Newest;
pub use error::StoreError;
pub use format::PartFile;
pub use manifest::{assemble, Manifest, PartSummary};
pub use store::{SnapshotStore, Status};
