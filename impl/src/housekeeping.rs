//! Snapshot housekeeping: the files behind the spec's snapshot decisions.
//!
//! The recorder in `gsmo_spec::snapshot` decides everything: when a part is
//! complete, when a snapshot commits, when and why it is aborted. This file
//! carries those outputs out on disk, off the event loop (encoding and fsync
//! of a big store take long):
//! * `SnapshotComplete(part)`: write the part, then feed `Stored` with its
//!   [`PartSummary`] (size, CRC-32, keys, channel messages) or the I/O error
//!   text; the spec aborts on a failed store.
//! * `SnapshotCommitted`: the initiator writes the manifest and runs retention.
//! * `SnapshotAborted` / `DropPart`: delete this node's part; an abort also
//!   writes the `ABORTED` record with the reason and the deciding node. A
//!   disk that refuses the record (full, read-only, out of descriptors) gets
//!   it again before this node's next snapshot file, so retention can then
//!   remove the aborted snapshot instead of leaving an unexplained directory.
//!
//! Plus the operator's side: `SNAPSHOT`, `--snapshot-every`, counters for INFO.

use crate::event::Input;
use crate::runtime::Runtime;
use crate::snapshot::{self, PartFile, SnapshotStore};
use gsmo_spec::node::{Input as SpecInput, Output, Part};
use gsmo_spec::snapshot::{AbortReason, PartSummary, SnapshotId};
use gsmo_spec::NodeId;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// Snapshot files and counters.
pub struct Snapshots {
    pub store: Option<SnapshotStore>,
    pub stats: SnapshotStats,
    /// Snapshots this node recorded and has not seen end: when it recorded each.
    active: HashMap<SnapshotId, Active>,
    next_periodic: Option<Instant>,
    last_recorded: Option<SnapshotId>,
    /// Aborts whose record the disk refused, retried off the loop (shared
    /// with the blocking tasks that write snapshot files).
    unrecorded: Arc<Mutex<VecDeque<UnrecordedAbort>>>,
    /// What the blocking task after each commit did to this node's dir.
    after_commit: Arc<AfterCommit>,
}

/// Counts kept by the blocking task that writes a committed snapshot's
/// manifest and runs retention (INFO): the commit is already counted, so a
/// disk that refuses either is otherwise visible only in the log.
#[derive(Debug, Default)]
pub struct AfterCommit {
    /// Manifests the disk refused: the snapshot is committed, but this dir
    /// does not hold it as complete.
    pub manifest_errors: AtomicU64,
    /// Retention runs that failed part-way (the log names the snapshot).
    pub retention_errors: AtomicU64,
    /// Old snapshots retention deleted.
    pub deleted: AtomicU64,
}

/// How many refused abort records a node remembers for a retry; past it the
/// oldest is forgotten (logged), so a disk that never recovers costs no
/// more memory. Each is a few dozen bytes.
pub const MAX_UNRECORDED_ABORTS: usize = 64;

/// An abort whose `ABORTED` record is not on this node's disk yet.
#[derive(Clone, Debug)]
struct UnrecordedAbort {
    id: SnapshotId,
    by: NodeId,
    reason: String,
}

/// Writes the pending abort records (and `new`, if any) through
/// [`SnapshotStore::mark_aborted`]; keeps those the disk still refuses, up to
/// [`MAX_UNRECORDED_ABORTS`]. Runs off the loop: it touches the disk. The lock
/// is never held across I/O, because INFO reads the queue on the event loop.
fn record_aborts(
    store: &SnapshotStore,
    pending: &Mutex<VecDeque<UnrecordedAbort>>,
    new: Option<UnrecordedAbort>,
) {
    let lock = || pending.lock().unwrap_or_else(|e| e.into_inner());
    let mut todo = std::mem::take(&mut *lock());
    todo.extend(new);
    let mut refused = VecDeque::new();
    for a in todo {
        match store.mark_aborted(a.id, a.by, &a.reason) {
            Ok(()) => debug!(snapshot = %a.id, "ABORTED record of {} written", a.id),
            Err(e) => {
                error!(snapshot = %a.id, "cannot mark snapshot {} aborted: {e} (retried before this node's next snapshot file)", a.id);
                refused.push_back(a);
            }
        }
    }
    let mut q = lock();
    refused.extend(q.drain(..)); // queued meanwhile by another task
    while refused.len() > MAX_UNRECORDED_ABORTS {
        if let Some(a) = refused.pop_front() {
            warn!(snapshot = %a.id, "giving up on the ABORTED record of {} (over {MAX_UNRECORDED_ABORTS} refused)", a.id);
        }
    }
    *q = refused;
}

#[derive(Clone, Debug, Default)]
pub struct SnapshotStats {
    pub started: u64,
    /// Starts here refused by the spec's bound (`Node::snapshot_refusal`).
    pub refused: u64,
    pub recorded: u64,
    /// Parts this node completed (all its incoming channels closed).
    pub completed: u64,
    pub stored: u64,
    pub store_errors: u64,
    /// Part writes handed to the disk that have not returned: one that
    /// stays up names a disk that hangs (an abort does not end the write).
    pub writes_pending: u64,
    pub committed: u64,
    pub aborted: u64,
    pub last_snapshot: Option<SnapshotId>,
    pub last_duration_ms: u64,
    pub last_state_bytes: u64,
    pub last_channel_messages: u64,
    pub last_status: String,
    /// How long the event loop stood still for the last record step (the spec
    /// step that captured the local state) and the longest such step, in µs:
    /// every client waits that long, so it must stay O(1) in the store's size.
    pub last_record_step_us: u64,
    pub max_record_step_us: u64,
}

#[derive(Clone, Copy, Debug)]
struct Active {
    since: Instant,
    /// Wall clock, for the part file.
    recorded_unix_ms: u64,
}

impl Snapshots {
    pub fn new(store: Option<SnapshotStore>) -> Self {
        Snapshots {
            store,
            stats: SnapshotStats::default(),
            active: HashMap::new(),
            next_periodic: None,
            last_recorded: None,
            unrecorded: Arc::default(),
            after_commit: Arc::default(),
        }
    }

    /// Abort records waiting for a disk that refused them (INFO).
    pub fn unrecorded_aborts(&self) -> usize {
        self.unrecorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// What the tasks after each commit did to this node's dir (INFO).
    pub fn after_commit(&self) -> &AfterCommit {
        &self.after_commit
    }

    /// Notes how long a spec step took if it recorded a snapshot's local state.
    pub(crate) fn note_step(&mut self, took: std::time::Duration, out: &[Output]) {
        if out
            .iter()
            .any(|o| matches!(o, Output::SnapshotRecorded { .. }))
        {
            let us = took.as_micros() as u64;
            self.stats.last_record_step_us = us;
            self.stats.max_record_step_us = self.stats.max_record_step_us.max(us);
        }
    }

    /// The highest snapshot sequence number `node` has on disk (0 if none).
    pub fn last_seq_on_disk(&self, node: NodeId) -> u64 {
        self.store.as_ref().map_or(0, |s| s.last_seq_of(node))
    }
}

impl Runtime {
    /// Starts a snapshot here, unless the spec refuses it (too many in
    /// progress here); the refusal is the client's error reply. This is the
    /// single place SNAPSHOT enters the protocol.
    pub fn start_snapshot(&mut self) -> Result<SnapshotId, String> {
        if let Some(why) = self.node.snapshot_refusal() {
            self.snapshots.stats.refused += 1;
            return Err(why);
        }
        self.snapshots.last_recorded = None;
        self.feed(SpecInput::StartSnapshot)
            .expect("starting a snapshot is always accepted");
        // The initiator records its state at once, so the output names the id.
        let id = self
            .snapshots
            .last_recorded
            .expect("the spec records the initiator's state on start");
        self.snapshots.stats.started += 1;
        info!(snapshot = %id, "starting snapshot");
        Ok(id)
    }

    /// At start: parts this node was writing when it died are removed and
    /// their snapshots marked aborted (see `SnapshotStore::sweep_interrupted`).
    pub(crate) fn sweep_interrupted_parts(&mut self) {
        let Some(store) = &self.snapshots.store else {
            return;
        };
        match store.sweep_interrupted(self.cfg.id) {
            Ok(swept) => {
                for id in swept {
                    warn!(snapshot = %id, "snapshot {id}: this node died while writing its part; removed the half-written file and marked it ABORTED");
                }
            }
            Err(e) => error!("cleaning up interrupted snapshot parts: {e}"),
        }
    }

    /// `--snapshot-every`, once the cluster has been up.
    pub(crate) fn periodic_snapshot(&mut self) {
        let (Some(every), true) = (self.cfg.snapshot_every, self.ready_announced) else {
            return;
        };
        if periodic_due(&mut self.snapshots.next_periodic, Instant::now(), every) {
            if let Err(why) = self.start_snapshot() {
                warn!("--snapshot-every: this one skipped: {why}");
            }
        }
    }

    pub(crate) fn on_recorded(&mut self, id: SnapshotId) {
        let s = &mut self.snapshots;
        s.stats.recorded += 1;
        s.last_recorded = Some(id);
        s.active.insert(
            id,
            Active {
                since: Instant::now(),
                recorded_unix_ms: unix_ms(),
            },
        );
        debug!(snapshot = %id, "recorded local state");
        if let Some(z) = &mut self.shiviz {
            z.local(format_args!("record snapshot {id}"));
        }
    }

    /// The single place a finished snapshot part leaves the protocol.
    pub(crate) fn on_part_complete(&mut self, part: Box<Part>) {
        let id = part.id;
        let me = self.cfg.id;
        let active = self.snapshots.active.get(&id).copied();
        let duration_ms = active.map_or(0, |a| a.since.elapsed().as_millis() as u64);
        let stats = &mut self.snapshots.stats;
        stats.completed += 1;
        stats.last_snapshot = Some(id);
        stats.last_duration_ms = duration_ms;
        // The state's byte count is O(keys): it comes back with the summary,
        // computed off the loop (see `on_stored`).
        stats.last_channel_messages = part.channel_messages() as u64;
        if let Some(s) = &mut self.shiviz {
            s.local(format_args!("complete snapshot {id}"));
        }
        info!(
            snapshot = %id,
            keys = part.state.kv.len(),
            in_flight = part.channel_messages(),
            duration_ms,
            "snapshot part complete"
        );
        let Some(store) = self.snapshots.store.clone() else {
            // Nothing to write: the part is "stored" as far as the protocol
            // goes. Its byte count walks every key (0.15-0.3 s at 1 M keys), so
            // it is taken off the loop as a write is, except under the
            // simulator, whose stores are small and where `spawn_blocking`
            // can hang the runtime.
            let summarise = move || PartSummary {
                node: me,
                keys: part.state.kv.len() as u64,
                state_bytes: part.state.kv.payload_bytes() as u64,
                channel_messages: part.channel_messages() as u64,
                delivered: part.state.multicast.delivered().to_vec(),
                duration_ms,
                ..PartSummary::default()
            };
            if crate::net::simulated() {
                let summary = summarise();
                self.snapshots.stats.last_state_bytes = summary.state_bytes;
                self.deferred.push_back(SpecInput::Stored {
                    id,
                    result: Ok(summary),
                });
            } else {
                let tx = self.loopback.clone();
                tokio::task::spawn_blocking(move || {
                    let result = Ok(summarise());
                    let _ = tx.blocking_send(Input::Stored { id, result });
                });
            }
            return;
        };
        let file = PartFile {
            cluster_id: self.cfg.cluster_id.clone(),
            mode: self.cfg.mode,
            recorded_unix_ms: active.map_or_else(unix_ms, |a| a.recorded_unix_ms),
            duration_ms,
            part: *part,
        };
        let tx = self.loopback.clone();
        let unrecorded = self.snapshots.unrecorded.clone();
        self.snapshots.stats.writes_pending += 1;
        tokio::task::spawn_blocking(move || {
            if !unrecorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                record_aborts(&store, &unrecorded, None);
            }
            let result = store
                .store_part(&file)
                .map(|s| s.to_wire())
                .map_err(|e| e.to_string());
            let _ = tx.blocking_send(Input::Stored { id, result });
        });
    }

    /// A part write finished (off the loop): the spec hears of it.
    pub(crate) fn on_stored(&mut self, id: SnapshotId, result: Result<PartSummary, String>) {
        if self.snapshots.store.is_some() {
            let pending = &mut self.snapshots.stats.writes_pending;
            *pending = pending.saturating_sub(1);
        }
        if !self.snapshots.active.contains_key(&id) {
            // Aborted while the write was under way: the spec drops the part,
            // and INFO keeps saying why the snapshot was aborted. A failure is
            // logged with its error (a disk that hung may now fail), but not
            // counted: the abort removes the temp file under a write in
            // progress, so its own cleanup may be what failed it.
            match &result {
                Ok(_) => {
                    info!(snapshot = %id, "part of aborted snapshot {id} written after the abort: dropping it")
                }
                Err(e) => {
                    warn!(snapshot = %id, "part of aborted snapshot {id} failed after the abort, dropping it: {e}")
                }
            }
            self.feed(SpecInput::Stored { id, result })
                .expect("a store outcome is always accepted");
            return;
        }
        let stats = &mut self.snapshots.stats;
        if self.snapshots.store.is_none() {
            // Only counted (`on_part_complete`): nothing was written.
            if let Ok(p) = &result {
                stats.last_state_bytes = p.state_bytes;
            }
            self.feed(SpecInput::Stored { id, result })
                .expect("a store outcome is always accepted");
            return;
        }
        match &result {
            Ok(p) => {
                stats.stored += 1;
                stats.last_state_bytes = p.state_bytes;
                stats.last_status = format!("{id} part stored");
                info!(snapshot = %id, "part of {id} stored ({} bytes, crc32 {:08x})", p.bytes, p.crc32);
            }
            Err(e) => {
                stats.store_errors += 1;
                stats.last_status = format!("{id} part not stored: {e}");
                error!(snapshot = %id, "snapshot {id} part NOT stored: {e}");
            }
        }
        self.feed(SpecInput::Stored { id, result })
            .expect("a store outcome is always accepted");
    }

    pub(crate) fn on_committed(&mut self, id: SnapshotId, parts: Vec<PartSummary>) {
        self.snapshots.active.remove(&id);
        let stats = &mut self.snapshots.stats;
        stats.committed += 1;
        stats.last_status = format!("{id} complete");
        info!(snapshot = %id, "snapshot {id} COMPLETE: all {} parts stored", parts.len());
        // Every node writes the manifest into its own data dir from the
        // summaries the commit carries, and runs retention there: nothing
        // needs a shared file system (with a shared one, the writers agree).
        let Some(store) = self.snapshots.store.clone() else {
            return;
        };
        let (cluster, mode) = (self.cfg.cluster_id.clone(), self.cfg.mode);
        let (n, keep) = (self.cfg.cluster_size(), self.cfg.snapshot_keep);
        let counts = self.snapshots.after_commit.clone();
        tokio::task::spawn_blocking(move || {
            let summaries = parts
                .iter()
                .map(|p| snapshot::PartSummary::from_wire(id, &cluster, mode, p))
                .collect();
            let written = snapshot::assemble(id, n, summaries)
                .and_then(|m| store.write_manifest(&m).map(|()| m));
            match written {
                Ok(m) => {
                    info!(snapshot = %id, "manifest of {id} written ({} parts)", m.parts.len());
                    match store.retain(keep) {
                        Ok(removed) => {
                            counts.deleted.fetch_add(removed.len() as u64, Relaxed);
                            for old in removed {
                                info!(snapshot = %old, "retention: deleted snapshot {old}");
                            }
                        }
                        Err(e) => {
                            counts.retention_errors.fetch_add(1, Relaxed);
                            warn!("retention after {id}: {e}");
                        }
                    }
                }
                Err(e) => {
                    counts.manifest_errors.fetch_add(1, Relaxed);
                    error!(snapshot = %id, "cannot write the manifest of {id}: {e}");
                }
            }
        });
    }

    pub(crate) fn on_aborted(&mut self, id: SnapshotId, by: NodeId, reason: AbortReason) {
        self.snapshots.active.remove(&id);
        let stats = &mut self.snapshots.stats;
        stats.aborted += 1;
        stats.last_status = format!("{id} aborted by n{by}: {reason}");
        warn!(snapshot = %id, "snapshot {id} ABORTED by n{by}: {reason}");
        if let Some(store) = self.snapshots.store.clone() {
            let abort = UnrecordedAbort {
                id,
                by,
                reason: reason.to_string(),
            };
            let unrecorded = self.snapshots.unrecorded.clone();
            // Writes ABORTED ("node <by>: <reason>") and removes the parts.
            tokio::task::spawn_blocking(move || record_aborts(&store, &unrecorded, Some(abort)));
        }
    }

    /// A part stored after its snapshot was aborted: delete it.
    pub(crate) fn on_drop_part(&mut self, id: SnapshotId) {
        let Some(store) = self.snapshots.store.clone() else {
            return;
        };
        let me = self.cfg.id;
        tokio::task::spawn_blocking(move || {
            for path in [store.part_path(id, me), store.info_path(id, me)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => debug!(snapshot = %id, "dropped {}", path.display()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => error!(snapshot = %id, "cannot drop {}: {e}", path.display()),
                }
            }
        });
    }
}

/// Whether a periodic snapshot is due at `now`; the first call only
/// schedules one. The next is `every` after the one that starts, never
/// sooner, however late a tick comes: at most one snapshot per period.
fn periodic_due(next: &mut Option<Instant>, now: Instant, every: std::time::Duration) -> bool {
    let due = *next.get_or_insert(now + every);
    if now < due {
        return false;
    }
    *next = Some(now + every);
    true
}

fn unix_ms() -> u64 {
    crate::net::unix_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Status;

    #[test]
    fn a_periodic_snapshot_is_due_once_a_period_from_when_the_last_started() {
        let every = std::time::Duration::from_millis(200);
        let ms = |n| std::time::Duration::from_millis(n);
        let t0 = Instant::now();
        let mut next = None;
        assert!(
            !periodic_due(&mut next, t0, every),
            "the first call schedules"
        );
        assert_eq!(next, Some(t0 + every));
        assert!(!periodic_due(&mut next, t0 + ms(199), every));
        assert!(periodic_due(&mut next, t0 + every, every), "due on the dot");
        assert_eq!(next, Some(t0 + every * 2));
        // A late tick: the next period counts from it, so no catch-up burst.
        assert!(periodic_due(&mut next, t0 + ms(1000), every));
        assert_eq!(next, Some(t0 + ms(1200)));
        assert!(!periodic_due(&mut next, t0 + ms(1100), every));
    }

    /// A disk that keeps refusing ABORTED records costs at most
    /// [`MAX_UNRECORDED_ABORTS`] of them, the oldest forgotten first; once it
    /// takes writes again, the next call writes every one still kept.
    #[test]
    fn refused_abort_records_are_kept_up_to_the_bound_and_written_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let root = store.root().to_path_buf();
        // The disk refuses: a file where the snapshots directory was.
        std::fs::remove_dir(&root).unwrap();
        std::fs::write(&root, b"not a directory").unwrap();
        let pending = Mutex::new(VecDeque::new());
        let id = |seq| SnapshotId { initiator: 1, seq };
        let over = 3;
        for seq in 1..=(MAX_UNRECORDED_ABORTS + over) as u64 {
            let reason = format!("timed out ({seq})");
            let new = UnrecordedAbort {
                id: id(seq),
                by: 2,
                reason,
            };
            record_aborts(&store, &pending, Some(new));
            let kept = seq.min(MAX_UNRECORDED_ABORTS as u64) as usize;
            assert_eq!(pending.lock().unwrap().len(), kept, "after abort {seq}");
        }
        let first = pending.lock().unwrap().front().unwrap().id;
        assert_eq!(first, id(over as u64 + 1), "the oldest go first");

        std::fs::remove_file(&root).unwrap();
        std::fs::create_dir(&root).unwrap();
        record_aborts(&store, &pending, None);
        assert!(pending.lock().unwrap().is_empty());
        for seq in 1..=(MAX_UNRECORDED_ABORTS + over) as u64 {
            let status = store.status(id(seq)).unwrap();
            if seq <= over as u64 {
                assert!(
                    !store.dir(id(seq)).exists(),
                    "{seq} was forgotten: {status}"
                );
            } else {
                let want = format!("node 2: timed out ({seq})");
                assert!(
                    matches!(&status, Status::Aborted(why) if why == &want),
                    "{seq}: {status}"
                );
            }
        }
    }
}
