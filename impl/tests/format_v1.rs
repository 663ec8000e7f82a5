//! Golden files of snapshot format version 1 (`tests/data/v1/`): decoded
//! field by field, and re-encoded to the very same bytes. A change to a spec
//! type that would change what is on disk fails here, not on an operator's
//! old snapshots; it needs a new format version and a reader for this one
//! (see `gsmo_node::snapshot::format`).
//!
//! The files were written by `GSMO_BLESS_GOLDEN=1 cargo test -p gsmo-node
//! --test format_v1` from a 2-node total-isis run of the spec's simulator
//! (three writes, a delete, a write in flight at the cut). Bless only when
//! adding files for a new version; never rewrite a released version's files.

use gsmo_node::snapshot::format::{
    encode_file, read_bytes, FORMAT_VERSION, INFO_MAGIC, MANIFEST_MAGIC, PART_MAGIC,
};
use gsmo_node::snapshot::{PartFile, SnapshotStore};
use gsmo_spec::clock::LamportClock;
use gsmo_spec::kv::{KvStore, Op};
use gsmo_spec::multicast::{isis, Mode, MsgId, Multicast, Wire};
use gsmo_spec::node::{Command, NodeState, Part};
use gsmo_spec::sim::Cluster;
use gsmo_spec::snapshot::{LocalSnapshot, SnapshotId};
use std::path::PathBuf;

const ID: SnapshotId = SnapshotId {
    initiator: 1,
    seq: 1,
};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

fn set(key: &str, value: &str) -> Command {
    Command::Write(Op::Set {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    })
}

/// Writes the golden files from the spec's simulator.
fn bless() {
    assert_eq!(
        FORMAT_VERSION, 1,
        "bless a new version into its own directory"
    );
    let mut c = Cluster::new(2, Mode::TotalIsis);
    c.client(0, set("alice", "100"));
    c.client(1, set("bob", "50"));
    c.client(0, set("gone", "x"));
    c.quiesce().unwrap();
    c.client(
        1,
        Command::Write(Op::Del {
            keys: vec![b"gone".to_vec()],
        }),
    );
    c.quiesce().unwrap();
    c.client(0, set("carol", "in flight"));
    let id = c.snapshot(1);
    assert_eq!(id, ID);
    c.quiesce().unwrap();
    let dir = golden_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let store = SnapshotStore::open(&dir).unwrap();
    for part in c.completed(id).unwrap() {
        let node = part.node as u64;
        store
            .write_part(&PartFile {
                cluster_id: "golden".into(),
                mode: Mode::TotalIsis,
                recorded_unix_ms: 1_796_117_512_000 + node,
                duration_ms: 7 + node,
                part,
            })
            .unwrap();
    }
    store.try_assemble(id, 2).unwrap().unwrap();
}

#[test]
fn version_1_files_decode_field_by_field_and_reencode_identically() {
    if std::env::var_os("GSMO_BLESS_GOLDEN").is_some() {
        bless();
    }
    let store = SnapshotStore::open(&golden_dir()).unwrap();
    let (manifest, parts) = store.load(ID).unwrap();

    assert_eq!(manifest.id, ID);
    assert_eq!(manifest.cluster_id, "golden");
    assert_eq!(manifest.mode, Mode::TotalIsis);
    assert_eq!(manifest.nodes, 2);
    assert_eq!(manifest.created_unix_ms, 1_796_117_512_001);
    assert_eq!(manifest.cut_unix_ms(), 1_796_117_512_001);
    let s = &manifest.parts;
    assert_eq!(s.len(), 2);
    for (i, s) in s.iter().enumerate() {
        assert_eq!((s.id, s.node), (ID, i));
        assert_eq!(s.cluster_id, "golden");
        assert_eq!(s.mode, Mode::TotalIsis);
        assert_eq!(s.file, format!("part-{i}.gsmo"));
        assert_eq!(s.recorded_unix_ms, 1_796_117_512_000 + i as u64);
        assert_eq!(s.duration_ms, 7 + i as u64);
    }
    assert_eq!(
        s.iter()
            .map(|s| (s.bytes, s.crc32, s.keys, s.state_bytes, s.channel_messages))
            .collect::<Vec<_>>(),
        GOLDEN_SUMMARY_NUMBERS
    );
    assert_eq!(s[0].delivered, vec![2, 2]);
    assert_eq!(s[1].delivered, vec![2, 2]);

    for (i, pf) in parts.iter().enumerate() {
        assert_eq!(pf.cluster_id, "golden");
        assert_eq!(pf.mode, Mode::TotalIsis);
        assert_eq!(pf.recorded_unix_ms, 1_796_117_512_000 + i as u64);
        let p = &pf.part;
        assert_eq!((p.id, p.node), (ID, i));
        let kv: Vec<(String, String)> = p
            .state
            .kv
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            kv,
            [("alice", "100"), ("bob", "50")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .to_vec(),
            "node {i}: the delete took `gone`, `carol` was in flight"
        );
        assert_eq!(p.state.multicast.mode(), Mode::TotalIsis);
        assert_eq!(p.state.multicast.me(), i);
        assert_eq!(p.state.multicast.group_size(), 2);
        assert_eq!(p.state.multicast.delivered(), &[2, 2]);
        assert_eq!(
            (
                p.state.multicast.sent(),
                p.state.multicast.holdback_depth(),
                p.state.lamport.0,
                p.sent.clone(),
                p.received.clone(),
                p.channel_messages(),
            ),
            golden_part_numbers()[i].clone(),
            "node {i}"
        );
    }

    // Node 1 recorded node 0's write of `carol` in flight on channel 0 -> 1.
    let recorded = &parts[1].part.channels[0];
    assert_eq!(recorded.len(), 1);
    let (seq, wire) = &recorded[0];
    assert_eq!(*seq, 7, "the 7th message on channel 0 -> 1");
    let Wire::Isis(isis::Msg::Data { id, payload }) = wire else {
        panic!("expected ISIS data in flight, got {wire:?}");
    };
    assert_eq!(*id, MsgId { origin: 0, seq: 3 });
    assert_eq!((payload.stamp.lamport, payload.stamp.node), (4, 0));
    assert_eq!(
        payload.op,
        Op::Set {
            key: b"carol".to_vec(),
            value: b"in flight".to_vec()
        }
    );

    // Re-encoding what was decoded gives the very bytes on disk.
    let dir = store.dir(ID);
    let manifest_bytes = read_bytes(&store.manifest_path(ID)).unwrap();
    assert_eq!(encode_file(MANIFEST_MAGIC, &manifest), manifest_bytes);
    for (i, pf) in parts.iter().enumerate() {
        let bytes = read_bytes(&dir.join(format!("part-{i}.gsmo"))).unwrap();
        assert_eq!(encode_file(PART_MAGIC, pf), bytes, "part {i}");
        let info = read_bytes(&store.info_path(ID, i)).unwrap();
        assert_eq!(
            encode_file(INFO_MAGIC, &manifest.parts[i]),
            info,
            "info {i}"
        );
    }
}

/// Per part: file bytes, CRC-32, keys, state bytes, channel messages.
const GOLDEN_SUMMARY_NUMBERS: [(u64, u32, u64, u64, u64); 2] =
    [(130, 3256528174, 2, 13, 0), (125, 3598125892, 2, 13, 1)];

/// Per part: multicasts sent, hold-back depth, Lamport clock, channel sent and
/// received counts at the record, channel messages recorded.
#[allow(clippy::type_complexity)]
fn golden_part_numbers() -> [(u64, usize, u64, Vec<u64>, Vec<u64>, usize); 2] {
    [
        (3, 1, 4, vec![0, 7], vec![0, 6], 0),
        (2, 0, 3, vec![6, 0], vec![6, 0], 1),
    ]
}

/// The models' deliberately broken variants differ from the correct ones
/// only in flags (and ISIS's arrival numbers) that must never reach a file:
/// a part recorded by a broken replica encodes exactly like a correct one.
#[test]
fn broken_variant_flags_stay_out_of_files() {
    for mode in [
        Mode::Fifo,
        Mode::Causal,
        Mode::TotalSequencer,
        Mode::TotalIsis,
    ] {
        let part = |multicast: Multicast<_>| -> Vec<u8> {
            let part: Part = LocalSnapshot {
                id: ID,
                node: 0,
                state: NodeState {
                    kv: KvStore::default(),
                    multicast,
                    lamport: LamportClock(3),
                },
                sent: vec![0, 1],
                received: vec![0, 1],
                channels: vec![Vec::new(), Vec::new()],
            };
            encode_file(
                PART_MAGIC,
                &PartFile {
                    cluster_id: "c".into(),
                    mode,
                    recorded_unix_ms: 0,
                    duration_ms: 0,
                    part,
                },
            )
        };
        assert_eq!(
            part(Multicast::new(mode, 0, 2)),
            part(Multicast::broken(mode, 0, 2)),
            "{mode}: the broken variant's flag reached the part file"
        );
    }
}
