//! Which snapshot a data dir offers: the newest complete one for
//! `--restore latest` (by cut and id, never by wall clock; a damaged newer one
//! refused by name or skipped and reported), an explicit id checked part by
//! part, and retention (keep the newest complete ones, drop aborted ones).

use super::error::{io_err, StoreError};
use super::manifest::{Manifest, Recency};
use super::store::{SnapshotStore, Status};
use crate::config::RestoreFrom;
use gsmo_spec::snapshot::SnapshotId;
use std::fs;

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

impl SnapshotStore {
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
        Err(StoreError::NoneComplete(self.root().to_path_buf()))
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

    /// Keeps the newest `keep` complete snapshots (by cut and id) and deletes
    /// older complete and aborted ones ([`Self::retention`], then
    /// [`Self::delete`]). In-progress and damaged snapshots are left alone (an
    /// operator should see them).
    pub fn retain(&self, keep: usize) -> Result<Vec<SnapshotId>, StoreError> {
        let doomed = self.retention(keep)?;
        self.delete(&doomed)?;
        Ok(doomed)
    }

    /// What [`Self::retain`] deletes: the complete snapshots older than the
    /// newest `keep`, oldest first, then the aborted ones.
    pub fn retention(&self, keep: usize) -> Result<Vec<SnapshotId>, StoreError> {
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
        Ok(complete
            .into_iter()
            .take(excess)
            .map(|r| r.id)
            .chain(aborted)
            .collect())
    }

    /// Deletes snapshots `ids`. One already gone is no error: nodes sharing a
    /// data dir each run retention, and another may have got there first.
    pub fn delete(&self, ids: &[SnapshotId]) -> Result<(), StoreError> {
        for id in ids {
            let dir = self.dir(*id);
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other.map_err(io_err(&dir))?,
            }
        }
        Ok(())
    }
}
