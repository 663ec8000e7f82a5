//! Snapshot part format version 2, read for upgrade only: every multicast
//! message carried one write, so a version-2 part's ordering state and channel
//! contents hold `Write`s where today's hold [`Batch`]es. Each becomes a batch
//! of one whose write keeps the message's number (in version 2 the two
//! numberings were one). [`super::format::decode_part`] is the one caller;
//! summaries and manifests did not change.

use super::format::PartFile;
use gsmo_spec::batch::Batch;
use gsmo_spec::clock::LamportClock;
use gsmo_spec::kv::{KvStore, Write};
use gsmo_spec::multicast::{Mode, MsgId, Multicast, Wire};
use gsmo_spec::node::NodeState;
use gsmo_spec::snapshot::LocalSnapshot;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFileV2 {
    pub cluster_id: String,
    pub mode: Mode,
    pub recorded_unix_ms: u64,
    pub duration_ms: u64,
    pub part: LocalSnapshot<NodeStateV2, Wire<Write>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStateV2 {
    pub kv: KvStore,
    pub multicast: Multicast<Write>,
    pub lamport: LamportClock,
}

/// A version-2 message's write as today's batch of one.
fn single(id: MsgId, w: Write) -> Batch {
    Batch {
        first: id.seq,
        writes: Arc::new(vec![w]),
    }
}

impl PartFileV2 {
    /// The same part in today's form.
    pub fn upgrade(self) -> PartFile {
        let p = self.part;
        let writes = p.state.multicast.sent();
        PartFile {
            cluster_id: self.cluster_id,
            mode: self.mode,
            recorded_unix_ms: self.recorded_unix_ms,
            duration_ms: self.duration_ms,
            part: LocalSnapshot {
                id: p.id,
                node: p.node,
                state: NodeState {
                    kv: p.state.kv,
                    multicast: p.state.multicast.map(single),
                    lamport: p.state.lamport,
                    writes,
                },
                sent: p.sent,
                received: p.received,
                channels: p
                    .channels
                    .into_iter()
                    .map(|c| c.into_iter().map(|(s, w)| (s, w.map(single))).collect())
                    .collect(),
            },
        }
    }
}
