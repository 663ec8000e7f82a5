//! The manifest: what declares a snapshot complete, built from every node's
//! small [`PartSummary`] alone (as Flink's checkpoint coordinator completes a
//! checkpoint from its tasks' acknowledgements), never from the parts
//! themselves. A summary is what a node knows once its part is on its own
//! disk: size, checksum, counts and its piece of the cut. Today the summaries
//! are read from `part-<node>.info.gsmo` files beside the parts in a shared
//! data dir; they are serializable so they can as well travel over the peer
//! link to the initiator, which then writes the manifest into every node's dir.

use super::error::StoreError;
use super::format::{PartFile, Written, HEADER_LEN};
use gsmo_spec::multicast::Mode;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::NodeId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// What the spec's commit carries of one part (the wire form) from its full
/// summary, and back: every node rebuilds the manifest from these, so no data
/// dir needs another node's files.
impl PartSummary {
    pub fn to_wire(&self) -> gsmo_spec::snapshot::PartSummary {
        gsmo_spec::snapshot::PartSummary {
            node: self.node,
            bytes: self.bytes,
            crc32: self.crc32,
            keys: self.keys,
            state_bytes: self.state_bytes,
            channel_messages: self.channel_messages,
            recorded_unix_ms: self.recorded_unix_ms,
            duration_ms: self.duration_ms,
            delivered: self.delivered.clone(),
        }
    }

    pub fn from_wire(
        id: SnapshotId,
        cluster_id: &str,
        mode: Mode,
        w: &gsmo_spec::snapshot::PartSummary,
    ) -> Self {
        PartSummary {
            id,
            node: w.node,
            cluster_id: cluster_id.to_string(),
            mode,
            recorded_unix_ms: w.recorded_unix_ms,
            duration_ms: w.duration_ms,
            file: part_file_name(w.node),
            bytes: w.bytes,
            crc32: w.crc32,
            keys: w.keys,
            state_bytes: w.state_bytes,
            channel_messages: w.channel_messages,
            delivered: w.delivered.clone(),
        }
    }
}

/// One node's acknowledgement that its part is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    pub id: SnapshotId,
    pub node: NodeId,
    pub cluster_id: String,
    pub mode: Mode,
    /// Wall-clock time the node recorded its state (ms since the Unix epoch).
    pub recorded_unix_ms: u64,
    pub duration_ms: u64,
    /// The part's file name inside the snapshot's directory.
    pub file: String,
    /// Size of the whole part file and CRC-32 of its payload.
    pub bytes: u64,
    pub crc32: u32,
    pub keys: u64,
    pub state_bytes: u64,
    pub channel_messages: u64,
    /// The node's delivery vector at its record: its piece of the cut.
    pub delivered: Vec<u64>,
}

impl PartSummary {
    /// The summary of `file`, whose encoded image is `image`.
    pub fn of(file: &PartFile, image: &[u8]) -> Self {
        Self::of_written(
            file,
            Written {
                bytes: image.len() as u64,
                payload_crc32: crc32fast::hash(&image[HEADER_LEN..]),
            },
        )
    }

    /// The summary of `file`, streamed to disk as `written` describes.
    pub fn of_written(file: &PartFile, written: Written) -> Self {
        let part = &file.part;
        PartSummary {
            id: part.id,
            node: part.node,
            cluster_id: file.cluster_id.clone(),
            mode: file.mode,
            recorded_unix_ms: file.recorded_unix_ms,
            duration_ms: file.duration_ms,
            file: part_file_name(part.node),
            bytes: written.bytes,
            crc32: written.payload_crc32,
            keys: part.state.kv.len() as u64,
            state_bytes: part.state.kv.payload_bytes() as u64,
            channel_messages: part.channel_messages() as u64,
            delivered: part.state.multicast.delivered().to_vec(),
        }
    }
}

/// `part-<node>.gsmo`.
pub fn part_file_name(node: NodeId) -> String {
    format!("part-{node}.gsmo")
}

/// Declares a snapshot complete: every part present, each with its checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: SnapshotId,
    pub cluster_id: String,
    pub mode: Mode,
    pub nodes: usize,
    /// The latest record time among the parts (each by its own node's clock).
    pub created_unix_ms: u64,
    /// One per node, in node order.
    pub parts: Vec<PartSummary>,
}

impl Manifest {
    /// When the initiator recorded its state: "when the snapshot was cut".
    pub fn cut_unix_ms(&self) -> u64 {
        self.parts
            .get(self.id.initiator)
            .map_or(self.created_unix_ms, |p| p.recorded_unix_ms)
    }

    pub fn recency(&self) -> Recency {
        Recency::of(self.id, &self.parts)
    }

    /// Node `node`'s part, or why a manifest without it is invalid.
    pub fn part(&self, node: NodeId) -> Result<&PartSummary, StoreError> {
        self.parts.get(node).ok_or_else(|| StoreError::Invalid {
            id: self.id,
            reason: format!("the manifest has no part for node {node}"),
        })
    }
}

/// How new a snapshot is, from its cut and id, never from a wall clock (the
/// nodes' clocks differ, and a restore rewinds none of them).
///
/// A node's deliveries only grow, so a snapshot started after another one
/// finished holds at least as many deliveries at every node: the total number
/// of deliveries in the cut orders snapshots taken one after another, and the
/// initiator's sequence number breaks ties (no writes in between).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recency {
    pub deliveries: u64,
    pub id: SnapshotId,
}

impl Recency {
    pub fn of(id: SnapshotId, parts: &[PartSummary]) -> Self {
        Recency {
            deliveries: parts.iter().flat_map(|p| &p.delivered).sum(),
            id,
        }
    }
}

impl Ord for Recency {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deliveries, self.id.seq, self.id.initiator).cmp(&(
            other.deliveries,
            other.id.seq,
            other.id.initiator,
        ))
    }
}

impl PartialOrd for Recency {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The manifest of snapshot `id` of an `nodes`-node cluster from its parts'
/// summaries, in any order. Refuses a missing, duplicate or foreign part.
/// A function of the summaries alone, so every node that assembles it writes
/// the same bytes.
pub fn assemble(
    id: SnapshotId,
    nodes: usize,
    mut summaries: Vec<PartSummary>,
) -> Result<Manifest, StoreError> {
    let invalid = |reason: String| StoreError::Invalid { id, reason };
    if nodes == 0 {
        return Err(invalid("a snapshot of a 0-node cluster".into()));
    }
    summaries.sort_by_key(|s| s.node);
    if let Some(s) = summaries.iter().find(|s| s.id != id) {
        return Err(invalid(format!(
            "node {}'s summary is for snapshot {}",
            s.node, s.id
        )));
    }
    let present: Vec<NodeId> = summaries.iter().map(|s| s.node).collect();
    if present != (0..nodes).collect::<Vec<_>>() {
        return Err(invalid(format!(
            "expected one part from each of nodes 0..{nodes}, have parts from {present:?}"
        )));
    }
    let first = &summaries[0];
    if let Some(bad) = summaries
        .iter()
        .find(|p| p.cluster_id != first.cluster_id || p.mode != first.mode)
    {
        return Err(invalid(format!(
            "node {}'s part is from cluster `{}` in mode {}, node 0's from `{}` in mode {}",
            bad.node, bad.cluster_id, bad.mode, first.cluster_id, first.mode
        )));
    }
    Ok(Manifest {
        id,
        cluster_id: first.cluster_id.clone(),
        mode: first.mode,
        nodes,
        created_unix_ms: summaries
            .iter()
            .map(|p| p.recorded_unix_ms)
            .max()
            .unwrap_or(0),
        parts: summaries,
    })
}

/// `2026-12-01 05:31:52.123 UTC` for a time in ms since the Unix epoch.
pub fn utc(unix_ms: u64) -> String {
    let (secs, ms) = (unix_ms / 1000, unix_ms % 1000);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{ms:03} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        let cases = [
            (0, "1970-01-01 00:00:00.000 UTC"),
            (951_782_400_123, "2000-02-29 00:00:00.123 UTC"),
            (946_684_799_999, "1999-12-31 23:59:59.999 UTC"),
            (1_796_117_512_000, "2026-12-01 09:31:52.000 UTC"),
            (3_981_312_000_000, "2096-02-29 00:00:00.000 UTC"),
            // 2100 is not a leap year; 2400 is.
            (4_107_542_399_999, "2100-02-28 23:59:59.999 UTC"),
            (4_107_542_400_000, "2100-03-01 00:00:00.000 UTC"),
            (13_574_606_400_000, "2400-02-29 12:00:00.000 UTC"),
        ];
        for (ms, text) in cases {
            assert_eq!(utc(ms), text, "{ms}");
        }
    }

    fn summary(node: NodeId, recorded_unix_ms: u64) -> PartSummary {
        PartSummary {
            id: SnapshotId {
                initiator: 1,
                seq: 4,
            },
            node,
            cluster_id: "c".into(),
            mode: Mode::TotalIsis,
            recorded_unix_ms,
            duration_ms: 7,
            file: part_file_name(node),
            bytes: 100 + node as u64,
            crc32: 0xdead_beef,
            keys: 3,
            state_bytes: 40,
            channel_messages: 2,
            delivered: vec![5, 6, node as u64],
        }
    }

    /// The commit carries summaries in their wire form; every node rebuilds
    /// the same summaries from it.
    #[test]
    fn a_summary_survives_its_wire_form() {
        let s = summary(2, 1_000);
        assert_eq!(PartSummary::from_wire(s.id, "c", s.mode, &s.to_wire()), s);
    }

    /// The cut's time is the initiator's record, not the latest part's.
    #[test]
    fn a_manifest_is_cut_when_its_initiator_recorded() {
        let parts = vec![summary(1, 2_000), summary(0, 3_000), summary(2, 1_000)];
        let m = assemble(parts[0].id, 3, parts).unwrap();
        assert_eq!(m.created_unix_ms, 3_000);
        assert_eq!(m.cut_unix_ms(), 2_000, "node 1 initiated");
    }

    /// Parts of one snapshot id from two clusters (or modes) never make one
    /// manifest, even when the other field agrees.
    #[test]
    fn parts_of_another_cluster_or_mode_are_refused() {
        let id = summary(0, 0).id;
        let foreign = PartSummary {
            cluster_id: "other".into(),
            ..summary(1, 0)
        };
        let other_mode = PartSummary {
            mode: Mode::Fifo,
            ..summary(1, 0)
        };
        for odd in [foreign, other_mode] {
            let err = assemble(id, 2, vec![summary(0, 0), odd]).unwrap_err();
            assert!(
                err.to_string().contains("node 1's part is from cluster"),
                "{err}"
            );
        }
    }
}
