//! Golden files of every snapshot format version (`tests/data/v<N>/`),
//! decoded field by field and re-encoded to the very same bytes. A change to
//! a spec type that would change what is on disk fails here, not on an
//! operator's old snapshots; it needs a new format version and a reader for
//! the old one (see `gsmo_node::snapshot::format`).
//!
//! - `v1/`: a strings-only store. Read through `snapshot::v1` and upgraded;
//!   its payloads re-encode byte for byte through the version-1 types, and the
//!   upgraded part re-encodes as version 2.
//! - `v2/`: typed values (string, list, set, hash, sorted set), one write per
//!   multicast message. Read through `snapshot::v2` and upgraded; re-encodes
//!   byte for byte through the version-2 types.
//! - `v3/`: batches of writes per multicast message (here batches of one).
//!   Re-encodes byte for byte through today's types.
//!
//! Each is a 2-node total-isis run of the spec's simulator with a write in
//! flight at the cut. `GSMO_BLESS_GOLDEN=1 cargo test -p gsmo-node --test
//! format_v1` writes the current version's directory only if it is missing:
//! bless once when adding a version, never rewrite a released version's files.

use gsmo_node::snapshot::format::{
    decode_part, decode_payload, encode_file, encode_file_as, read_bytes, write_file,
    FORMAT_VERSION, HEADER_LEN, INFO_MAGIC, MANIFEST_MAGIC, PART_MAGIC,
};
use gsmo_node::snapshot::v1::PartFileV1;
use gsmo_node::snapshot::v2::PartFileV2;
use gsmo_node::snapshot::{Manifest, PartFile, PartSummary, SnapshotStore};
use gsmo_spec::clock::LamportClock;
use gsmo_spec::kv::{Data, KvStore, Op, Score};
use gsmo_spec::multicast::{isis, Mode, MsgId, Multicast, Wire};
use gsmo_spec::node::{Command, NodeState, Part};
use gsmo_spec::sim::Cluster;
use gsmo_spec::snapshot::{LocalSnapshot, SnapshotId};
use std::path::PathBuf;

const ID: SnapshotId = SnapshotId {
    initiator: 1,
    seq: 1,
};

fn golden_dir(version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/v{version}"))
}

fn set(key: &str, value: &str) -> Command {
    Command::Write(Op::Set {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    })
}

fn bytes(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// `(key, Data::render())` of every live key, as text.
fn rendered(kv: &KvStore) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(&v.render()).into_owned(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Writes the current version's golden files from the spec's simulator, only
/// into a directory that does not exist yet.
fn bless() {
    let dir = golden_dir(FORMAT_VERSION);
    assert!(
        !dir.exists(),
        "{}: a released version's golden files are never rewritten",
        dir.display()
    );
    let w = Command::Write;
    let mut c = Cluster::new(2, Mode::TotalIsis);
    c.client(0, set("alice", "100"));
    c.client(
        1,
        w(Op::Push {
            key: b"list".to_vec(),
            values: bytes(&["a", "b"]),
            left: false,
        }),
    );
    c.client(
        0,
        w(Op::SAdd {
            key: b"set".to_vec(),
            members: bytes(&["y", "x"]),
        }),
    );
    c.client(
        1,
        w(Op::HSet {
            key: b"hash".to_vec(),
            pairs: vec![(b"f".to_vec(), b"v".to_vec())],
        }),
    );
    c.client(
        0,
        w(Op::ZAdd {
            key: b"zset".to_vec(),
            pairs: vec![
                (Score::new(1.5).unwrap(), b"m".to_vec()),
                (Score::new(-2.0).unwrap(), b"n".to_vec()),
            ],
        }),
    );
    c.client(1, set("gone", "x"));
    c.quiesce().unwrap();
    c.client(
        1,
        w(Op::Del {
            keys: vec![b"gone".to_vec()],
        }),
    );
    c.quiesce().unwrap();
    c.client(
        0,
        w(Op::Push {
            key: b"list".to_vec(),
            values: bytes(&["in flight"]),
            left: true,
        }),
    );
    let id = c.snapshot(1);
    assert_eq!(id, ID);
    c.quiesce().unwrap();
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

/// The manifest and summary fields both versions' golden runs share.
fn check_manifest(manifest: &Manifest) {
    assert_eq!(manifest.id, ID);
    assert_eq!(manifest.cluster_id, "golden");
    assert_eq!(manifest.mode, Mode::TotalIsis);
    assert_eq!(manifest.nodes, 2);
    assert_eq!(manifest.created_unix_ms, 1_796_117_512_001);
    assert_eq!(manifest.cut_unix_ms(), 1_796_117_512_001);
    assert_eq!(manifest.parts.len(), 2);
    for (i, s) in manifest.parts.iter().enumerate() {
        assert_eq!((s.id, s.node), (ID, i));
        assert_eq!(s.cluster_id, "golden");
        assert_eq!(s.mode, Mode::TotalIsis);
        assert_eq!(s.file, format!("part-{i}.gsmo"));
        assert_eq!(s.recorded_unix_ms, 1_796_117_512_000 + i as u64);
        assert_eq!(s.duration_ms, 7 + i as u64);
    }
}

/// Per part: multicasts sent, hold-back depth, Lamport clock, channel sent and
/// received counts at the record, channel messages recorded.
type PartNumbers = (u64, usize, u64, Vec<u64>, Vec<u64>, usize);

/// The part fields both versions' golden runs share, and `numbers`.
fn check_part(i: usize, pf: &PartFile, delivered: &[u64], numbers: &PartNumbers) {
    assert_eq!(pf.cluster_id, "golden");
    assert_eq!(pf.mode, Mode::TotalIsis);
    assert_eq!(pf.recorded_unix_ms, 1_796_117_512_000 + i as u64);
    assert_eq!(pf.duration_ms, 7 + i as u64);
    let p = &pf.part;
    assert_eq!((p.id, p.node), (ID, i));
    assert_eq!(p.state.multicast.mode(), Mode::TotalIsis);
    assert_eq!(p.state.multicast.me(), i);
    assert_eq!(p.state.multicast.group_size(), 2);
    assert_eq!(p.state.multicast.delivered(), delivered);
    assert_eq!(
        &(
            p.state.multicast.sent(),
            p.state.multicast.holdback_depth(),
            p.state.lamport.0,
            p.sent.clone(),
            p.received.clone(),
            p.channel_messages(),
        ),
        numbers,
        "node {i}"
    );
}

/// The one message node 1 recorded in flight on channel 0 -> 1.
fn in_flight(parts: &[PartFile]) -> (u64, MsgId, u64, Op) {
    assert!(parts[0].part.channels.iter().all(Vec::is_empty));
    let recorded = &parts[1].part.channels[0];
    assert_eq!(recorded.len(), 1);
    let (seq, wire) = &recorded[0];
    let Wire::Isis(isis::Msg::Data { id, payload }) = wire else {
        panic!("expected ISIS data in flight, got {wire:?}");
    };
    let [write] = payload.writes.as_slice() else {
        panic!("expected a batch of one in flight, got {payload:?}");
    };
    assert_eq!(write.stamp.node, 0);
    (*seq, *id, write.stamp.lamport, write.op.clone())
}

#[test]
fn version_1_files_decode_field_by_field_and_reencode_identically() {
    let store = SnapshotStore::open(&golden_dir(1)).unwrap();
    let (manifest, parts) = store.load(ID).unwrap();

    check_manifest(&manifest);
    let s = &manifest.parts;
    assert_eq!(
        s.iter()
            .map(|s| (s.bytes, s.crc32, s.keys, s.state_bytes, s.channel_messages))
            .collect::<Vec<_>>(),
        [(130, 3256528174, 2, 13, 0), (125, 3598125892, 2, 13, 1)]
    );
    assert_eq!(s[0].delivered, vec![2, 2]);
    assert_eq!(s[1].delivered, vec![2, 2]);

    let numbers: [PartNumbers; 2] = [
        (3, 1, 4, vec![0, 7], vec![0, 6], 0),
        (2, 0, 3, vec![6, 0], vec![6, 0], 1),
    ];
    for (i, pf) in parts.iter().enumerate() {
        check_part(i, pf, &[2, 2], &numbers[i]);
        let kv = &pf.part.state.kv;
        assert_eq!(
            rendered(kv),
            pairs(&[("alice", "100"), ("bob", "50")]),
            "node {i}: the delete took `gone`, `carol` was in flight"
        );
        assert_eq!(kv.data(b"alice"), Some(&Data::Str(b"100"[..].into())));
        assert_eq!(kv.get(b"bob"), Some(&b"50"[..]));
        assert_eq!(kv.get(b"gone"), None, "node {i}: a tombstone is no key");
        assert_eq!(kv.len(), 2);
    }
    assert_eq!(
        in_flight(&parts),
        (
            7,
            MsgId { origin: 0, seq: 3 },
            4,
            Op::Set {
                key: b"carol".to_vec(),
                value: b"in flight".to_vec()
            }
        ),
        "the 7th message on channel 0 -> 1: node 0's write of `carol`"
    );

    // The version-1 types re-encode the very bytes on disk; summaries and
    // manifests kept their layout, so today's types do too under header 1.
    let dir = store.dir(ID);
    let manifest_bytes = read_bytes(&store.manifest_path(ID)).unwrap();
    assert_eq!(encode_file_as(MANIFEST_MAGIC, 1, &manifest), manifest_bytes);
    for (i, pf) in parts.iter().enumerate() {
        let path = dir.join(format!("part-{i}.gsmo"));
        let on_disk = read_bytes(&path).unwrap();
        assert_eq!(u16::from_le_bytes([on_disk[8], on_disk[9]]), 1);
        let old: PartFileV1 = decode_payload(&path, &on_disk[HEADER_LEN..]).unwrap();
        assert_eq!(encode_file_as(PART_MAGIC, 1, &old), on_disk, "part {i}");
        // The upgrade keeps every count a summary holds.
        assert_eq!(PartSummary::of(pf, &on_disk), manifest.parts[i], "part {i}");
        let info = read_bytes(&store.info_path(ID, i)).unwrap();
        assert_eq!(
            encode_file_as(INFO_MAGIC, 1, &manifest.parts[i]),
            info,
            "info {i}"
        );
        // Written again, an upgraded part is a current-version file of the same part.
        let again = encode_file(PART_MAGIC, pf);
        assert_eq!(u16::from_le_bytes([again[8], again[9]]), FORMAT_VERSION);
        assert_eq!(&decode_part(&path, &again).unwrap(), pf, "part {i}");
    }
}

/// What versions 2 and 3 (the typed store) hold alike: one run, the same
/// stores, counts and message in flight; only the bytes (and so the
/// summaries' sizes and CRCs) differ.
fn check_typed_golden(
    manifest: &Manifest,
    parts: &[PartFile],
    summary_numbers: &[(u64, u32, u64, u64, u64); 2],
) {
    check_manifest(manifest);
    let s = &manifest.parts;
    assert_eq!(
        s.iter()
            .map(|s| (s.bytes, s.crc32, s.keys, s.state_bytes, s.channel_messages))
            .collect::<Vec<_>>(),
        *summary_numbers
    );
    assert_eq!(s[0].delivered, GOLDEN_TYPED_DELIVERED);
    assert_eq!(s[1].delivered, GOLDEN_TYPED_DELIVERED);

    for (i, pf) in parts.iter().enumerate() {
        check_part(
            i,
            pf,
            &GOLDEN_TYPED_DELIVERED,
            &golden_typed_part_numbers()[i],
        );
        let kv = &pf.part.state.kv;
        assert_eq!(
            rendered(kv),
            pairs(&[
                ("alice", "100"),
                ("hash", "hash 1:f 1:v"),
                ("list", "list 1:a 1:b"),
                ("set", "set 1:x 1:y"),
                ("zset", "zset 1:n 2:-2 1:m 3:1.5"),
            ]),
            "node {i}: the delete took `gone`, the LPUSH was in flight"
        );
        assert_eq!(kv.get(b"alice"), Some(&b"100"[..]));
        assert_eq!(kv.get(b"list"), None, "a list is no string");
        assert_eq!(kv.get(b"gone"), None);
        assert!(matches!(kv.data(b"list"), Some(Data::List(l)) if l.len() == 2));
        assert!(matches!(kv.data(b"set"), Some(Data::Set(s)) if s.len() == 2));
        assert!(matches!(kv.data(b"hash"), Some(Data::Hash(h)) if h.len() == 1));
        assert!(matches!(kv.data(b"zset"), Some(Data::ZSet(_))));
        assert_eq!(kv.len(), 5);
    }
    let (seq, id, lamport, op) = in_flight(parts);
    assert_eq!((seq, id, lamport), GOLDEN_TYPED_IN_FLIGHT);
    assert_eq!(
        op,
        Op::Push {
            key: b"list".to_vec(),
            values: bytes(&["in flight"]),
            left: true,
        }
    );
}

#[test]
fn version_2_files_decode_field_by_field_and_upgrade() {
    let store = SnapshotStore::open(&golden_dir(2)).unwrap();
    let (manifest, parts) = store.load(ID).unwrap();

    check_typed_golden(&manifest, &parts, &GOLDEN_V2_SUMMARY_NUMBERS);

    // The version-2 types re-encode the very bytes on disk; the upgrade keeps
    // every count a summary holds and numbers each write as its message.
    let dir = store.dir(ID);
    let manifest_bytes = read_bytes(&store.manifest_path(ID)).unwrap();
    assert_eq!(encode_file_as(MANIFEST_MAGIC, 2, &manifest), manifest_bytes);
    for (i, pf) in parts.iter().enumerate() {
        let path = dir.join(format!("part-{i}.gsmo"));
        let bytes = read_bytes(&path).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 2);
        let old: PartFileV2 = decode_payload(&path, &bytes[HEADER_LEN..]).unwrap();
        assert_eq!(encode_file_as(PART_MAGIC, 2, &old), bytes, "part {i}");
        assert_eq!(PartSummary::of(pf, &bytes), manifest.parts[i], "part {i}");
        assert_eq!(pf.part.state.writes, pf.part.state.multicast.sent());
        let info = read_bytes(&store.info_path(ID, i)).unwrap();
        assert_eq!(
            encode_file_as(INFO_MAGIC, 2, &manifest.parts[i]),
            info,
            "info {i}"
        );
    }
}

#[test]
fn version_3_files_decode_field_by_field_and_reencode_identically() {
    if std::env::var_os("GSMO_BLESS_GOLDEN").is_some() {
        bless();
    }
    assert_eq!(FORMAT_VERSION, 3, "a new version needs its own golden test");
    let store = SnapshotStore::open(&golden_dir(3)).unwrap();
    let (manifest, parts) = store.load(ID).unwrap();

    check_typed_golden(&manifest, &parts, &GOLDEN_V3_SUMMARY_NUMBERS);

    // Re-encoding what was decoded gives the very bytes on disk.
    let dir = store.dir(ID);
    let manifest_bytes = read_bytes(&store.manifest_path(ID)).unwrap();
    assert_eq!(encode_file(MANIFEST_MAGIC, &manifest), manifest_bytes);
    for (i, pf) in parts.iter().enumerate() {
        let bytes = read_bytes(&dir.join(format!("part-{i}.gsmo"))).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 3);
        assert_eq!(encode_file(PART_MAGIC, pf), bytes, "part {i}");
        // The streamed encoder the nodes use writes the very same bytes, and
        // declares the size and payload CRC the golden summary holds.
        let mut streamed = std::io::Cursor::new(Vec::new());
        let written = write_file(&mut streamed, PART_MAGIC, pf).unwrap();
        assert_eq!(streamed.into_inner(), bytes, "streamed part {i}");
        assert_eq!(
            (written.bytes, written.payload_crc32),
            (manifest.parts[i].bytes, manifest.parts[i].crc32),
            "streamed part {i}'s summary"
        );
        let info = read_bytes(&store.info_path(ID, i)).unwrap();
        assert_eq!(
            encode_file(INFO_MAGIC, &manifest.parts[i]),
            info,
            "info {i}"
        );
    }
}

/// Per part: file bytes, CRC-32, keys, state bytes, channel messages.
const GOLDEN_V2_SUMMARY_NUMBERS: [(u64, u32, u64, u64, u64); 2] =
    [(209, 1135438953, 5, 47, 0), (204, 260597362, 5, 47, 1)];
/// Node 0's fourth write (the LPUSH) is in flight; node 1's four are delivered.
const GOLDEN_TYPED_DELIVERED: [u64; 2] = [3, 4];
/// The 11th message on channel 0 -> 1: node 0's fourth multicast, at Lamport 5.
const GOLDEN_TYPED_IN_FLIGHT: (u64, MsgId, u64) = (11, MsgId { origin: 0, seq: 4 }, 5);

/// Version 3 is the same run (batches of one): the same numbers, other bytes.
const GOLDEN_V3_SUMMARY_NUMBERS: [(u64, u32, u64, u64, u64); 2] =
    [(212, 3479071682, 5, 47, 0), (207, 3338837689, 5, 47, 1)];

fn golden_typed_part_numbers() -> [PartNumbers; 2] {
    [
        (4, 1, 5, vec![0, 11], vec![0, 11], 0),
        (4, 0, 4, vec![11, 0], vec![10, 0], 1),
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
        let part = |multicast: Multicast<_>, kv: KvStore| -> Vec<u8> {
            let part: Part = LocalSnapshot {
                id: ID,
                node: 0,
                state: NodeState {
                    kv,
                    multicast,
                    lamport: LamportClock(3),
                    writes: 0,
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
            part(Multicast::new(mode, 0, 2), KvStore::new()),
            part(
                Multicast::broken(mode, 0, 2),
                KvStore::new().debit_only_when_short()
            ),
            "{mode}: the broken variant's flag reached the part file"
        );
    }
}
