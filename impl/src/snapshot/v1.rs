//! Snapshot part format version 1, read for upgrade only: every value was a
//! string, so a version-1 store is `key -> (string or tombstone, stamp)`.
//! Everything else in a part (clocks, hold-back queue, channel contents)
//! decodes as today: write operations only gained variants, at the end.
//! [`super::format::decode_part`] is the one caller; summaries and manifests
//! did not change between versions 1 and 2.

use super::v2::{NodeStateV2, PartFileV2};
use gsmo_spec::clock::LamportClock;
use gsmo_spec::kv::{KvStore, Stamp, Write};
use gsmo_spec::multicast::{Mode, Multicast, Wire};
use gsmo_spec::snapshot::LocalSnapshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize)]
pub struct PartFileV1 {
    pub cluster_id: String,
    pub mode: Mode,
    pub recorded_unix_ms: u64,
    pub duration_ms: u64,
    pub part: LocalSnapshot<NodeStateV1, Wire<Write>>,
}

#[derive(Serialize, Deserialize)]
pub struct NodeStateV1 {
    pub kv: KvStoreV1,
    pub multicast: Multicast<Write>,
    pub lamport: LamportClock,
}

#[derive(Default, Serialize, Deserialize)]
pub struct KvStoreV1 {
    pub entries: BTreeMap<Vec<u8>, EntryV1>,
}

#[derive(Serialize, Deserialize)]
pub struct EntryV1 {
    /// `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    pub stamp: Stamp,
}

impl PartFileV1 {
    /// The same part in version 2's form (then [`PartFileV2::upgrade`]).
    pub fn upgrade(self) -> PartFileV2 {
        let p = self.part;
        let kv = KvStore::from_strings(
            p.state
                .kv
                .entries
                .into_iter()
                .map(|(k, e)| (k, e.value, e.stamp)),
        );
        PartFileV2 {
            cluster_id: self.cluster_id,
            mode: self.mode,
            recorded_unix_ms: self.recorded_unix_ms,
            duration_ms: self.duration_ms,
            part: LocalSnapshot {
                id: p.id,
                node: p.node,
                state: NodeStateV2 {
                    kv,
                    multicast: p.state.multicast,
                    lamport: p.state.lamport,
                },
                sent: p.sent,
                received: p.received,
                channels: p.channels,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::format::{encode_file_as, read_part, PART_MAGIC};
    use gsmo_spec::kv::Op;
    use gsmo_spec::node::Command;
    use gsmo_spec::sim::Cluster;

    /// Today's batch of one as the write versions 1 and 2 carried.
    fn one(_: gsmo_spec::multicast::MsgId, b: gsmo_spec::batch::Batch) -> Write {
        b.writes[0].clone()
    }

    #[test]
    fn a_version_1_part_reads_as_today_with_string_values() {
        let mut c = Cluster::new(2, Mode::Causal);
        let set = |k: &str, v: &str| {
            Command::Write(Op::Set {
                key: k.into(),
                value: v.into(),
            })
        };
        c.client(0, set("a", "1"));
        c.client(1, set("in-flight", "2"));
        let id = c.snapshot(0);
        c.quiesce().unwrap();
        let part = c.completed(id).unwrap().remove(0);
        let stamp = Stamp {
            lamport: 1,
            node: 0,
        };
        let mut old_kv = KvStoreV1::default();
        for (k, v) in [("a", Some("1")), ("dead", None)] {
            let value = v.map(|v| v.as_bytes().to_vec());
            old_kv
                .entries
                .insert(k.as_bytes().to_vec(), EntryV1 { value, stamp });
        }
        let old = PartFileV1 {
            cluster_id: "c".into(),
            mode: Mode::Causal,
            recorded_unix_ms: 7,
            duration_ms: 3,
            part: LocalSnapshot {
                id: part.id,
                node: part.node,
                state: NodeStateV1 {
                    kv: old_kv,
                    multicast: part.state.multicast.clone().map(one),
                    lamport: part.state.lamport,
                },
                sent: part.sent.clone(),
                received: part.received.clone(),
                channels: part
                    .channels
                    .iter()
                    .map(|c| c.iter().map(|(s, w)| (*s, w.clone().map(one))).collect())
                    .collect(),
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-0.gsmo");
        std::fs::write(&path, encode_file_as(PART_MAGIC, 1, &old)).unwrap();
        let read = read_part(&path).unwrap();
        assert_eq!(read.recorded_unix_ms, 7);
        assert_eq!(read.part.state.kv.get(b"a"), Some(&b"1"[..]));
        assert_eq!(read.part.state.kv.len(), 1, "the tombstone is not a key");
        assert_eq!(read.part.channels, part.channels);
        assert_eq!(read.part.state.multicast, part.state.multicast);
    }
}
