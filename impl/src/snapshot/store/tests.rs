use super::super::format::read_part;
use super::*;
use crate::config::RestoreFrom;
use crate::snapshot::choose::Newest;
use gsmo_spec::kv::Op;
use gsmo_spec::multicast::Mode;
use gsmo_spec::node::Command;
use gsmo_spec::node::Part;
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

/// A part bigger than the write buffer, streamed to disk, is byte for
/// byte the in-memory image, and its summary declares that image.
#[test]
fn a_streamed_part_is_the_in_memory_image() {
    let mut c = Cluster::new(1, Mode::TotalIsis);
    for i in 0..12_000 {
        c.client(
            0,
            Command::Write(Op::Set {
                key: format!("key:{i:08}").into_bytes(),
                value: vec![b'v'; 90],
            }),
        );
    }
    c.quiesce().unwrap();
    let id = c.snapshot(0);
    c.quiesce().unwrap();
    let part = c.completed(id).unwrap().remove(0);
    let pf = PartFile {
        cluster_id: "t".into(),
        mode: Mode::TotalIsis,
        recorded_unix_ms: 1,
        duration_ms: 0,
        part,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let summary = store.store_part(&pf).unwrap();
    let image = encode_file(PART_MAGIC, &pf);
    assert!(image.len() > 1 << 20, "many times the write buffer");
    assert_eq!(fs::read(store.part_path(id, 0)).unwrap(), image);
    assert_eq!(summary, PartSummary::of(&pf, &image));
}

/// A node killed while writing its part leaves a temp file (or a part
/// without its summary); at its restart both go and the snapshot is
/// marked aborted by that node. Whole parts and other snapshots stay.
#[test]
fn a_restarted_node_sweeps_its_interrupted_part() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    complete_after(&store, sid(0, 1), 2, 2, 1);
    let (torn, half, whole) = (sid(0, 2), sid(0, 3), sid(1, 4));
    for id in [torn, half, whole] {
        fs::create_dir_all(store.dir(id)).unwrap();
    }
    let tmp = store.dir(torn).join(".part-1.gsmo.tmp-4242");
    fs::write(&tmp, b"GSMOPART half").unwrap();
    fs::write(store.part_path(torn, 0), b"node 0's part").unwrap();
    fs::write(store.part_path(half, 1), b"no summary yet").unwrap();
    fs::write(store.part_path(whole, 1), b"whole").unwrap();
    fs::write(store.info_path(whole, 1), b"summary").unwrap();
    assert_eq!(store.sweep_interrupted(1).unwrap(), vec![torn, half]);
    for id in [torn, half] {
        let status = store.status(id).unwrap();
        assert!(
            matches!(&status, Status::Aborted(why) if why.starts_with("node 1: interrupted")),
            "{status}"
        );
        assert_eq!(store.parts_present(id), Vec::<NodeId>::new());
    }
    assert!(!tmp.exists());
    assert_eq!(
        store.status(whole).unwrap(),
        Status::Incomplete { parts: vec![1] }
    );
    assert!(matches!(
        store.status(sid(0, 1)).unwrap(),
        Status::Complete(_)
    ));
    assert!(store.sweep_interrupted(1).unwrap().is_empty());
}

/// Writes every part of a 2-node snapshot, as each node would, without
/// assembling it; returns the snapshot's id.
fn write_parts_of_two(store: &SnapshotStore) -> SnapshotId {
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
    id
}

#[test]
fn a_part_damaged_before_assembly_blocks_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let id = write_parts_of_two(&store);
    let path = store.part_path(id, 0);
    flip_last_byte(&path);
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

/// The case proptest once found: a v2 file whose version byte reads 1
/// would reach the v1 decoder if the checksum did not cover the version.
#[test]
fn a_downgraded_version_field_is_corrupt() {
    let mut bad = valid_part_file();
    bad[8] = 1;
    let err = decode_part(Path::new("m.gsmo"), &bad).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

proptest::proptest! {
    #![proptest_config(gsmo_spec::testing::proptest_config(300))]

    /// Arbitrary bytes: never a panic, always a named error.
    #[test]
    fn random_bytes_are_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096), with_magic: bool) {
        let mut bytes = bytes;
        if with_magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(PART_MAGIC);
        }
        let err = decode_part(Path::new("fuzz.gsmo"), &bytes).unwrap_err();
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
        proptest::prop_assert!(decode_part(Path::new("m.gsmo"), &bad).is_err());
        proptest::prop_assert!(decode_part(Path::new("m.gsmo"), &good).is_ok());
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

/// Two nodes sharing one data dir both run retention: the one that comes
/// second finds the snapshots it planned to delete gone, which is no error.
#[test]
fn retention_behind_another_node_sharing_the_dir_is_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let [first, second] = [0, 1].map(|_| SnapshotStore::open(dir.path()).unwrap());
    for seq in 1..=3 {
        complete_after(&first, sid(0, seq), 1, 1, seq);
    }
    let planned = second.retention(1).unwrap();
    assert_eq!(planned, vec![sid(0, 1), sid(0, 2)]);
    assert_eq!(first.retain(1).unwrap(), planned);
    second.delete(&planned).unwrap();
    assert_eq!(second.list().unwrap(), vec![sid(0, 3)]);
}

/// `latest` over several data dirs (`gsmo snapshot show/verify`, restore
/// with `--data-dir` repeated) is the newest in any of them, whichever dir
/// is named first.
#[test]
fn latest_over_several_dirs_is_the_newest_in_any() {
    let dirs = [0, 1].map(|_| tempfile::tempdir().unwrap());
    let older = SnapshotStore::open(dirs[0].path()).unwrap();
    let newer = SnapshotStore::open(dirs[1].path()).unwrap();
    complete_after(&older, sid(0, 1), 1, 1, 1);
    complete_after(&newer, sid(0, 2), 1, 2, 2);
    let paths = dirs.each_ref().map(|d| d.path().to_path_buf());
    for order in [[0, 1], [1, 0]] {
        let named = order.map(|i| paths[i].clone());
        let both = crate::snapshot::cli::DataDirs::open(&named).unwrap();
        assert_eq!(both.resolve(RestoreFrom::Latest).unwrap(), sid(0, 2));
    }
}

/// Stores, as snapshot `id`, a `n`-node snapshot taken after `writes`
/// writes, recorded at wall-clock time `at`; completes it.
pub(crate) fn complete_after(
    store: &SnapshotStore,
    id: SnapshotId,
    n: usize,
    writes: usize,
    at: u64,
) {
    let mut c = Cluster::new(n, Mode::TotalSequencer);
    for w in 0..writes {
        c.client(
            w % n,
            Command::Write(Op::Set {
                key: format!("k{w}").into_bytes(),
                value: b"v".to_vec(),
            }),
        );
    }
    c.quiesce().unwrap();
    let sim_id = c.snapshot(0);
    c.quiesce().unwrap();
    for mut part in c.completed(sim_id).unwrap() {
        part.id = id;
        store
            .write_part(&PartFile {
                cluster_id: "t".into(),
                mode: Mode::TotalSequencer,
                recorded_unix_ms: at,
                duration_ms: 0,
                part,
            })
            .unwrap();
    }
    store.try_assemble(id, n).unwrap().unwrap();
}

/// Damages a file the way a bad sector would: its last byte flipped.
fn flip_last_byte(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(path, bytes).unwrap();
}

fn sid(initiator: NodeId, seq: u64) -> SnapshotId {
    SnapshotId { initiator, seq }
}

#[test]
fn newest_is_chosen_by_cut_and_id_not_by_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    // Node 0 took many snapshots early; node 2 took one later, with more
    // writes in its cut, but its clock runs an hour behind.
    complete_after(&store, sid(0, 7), 3, 2, 10_000_000);
    complete_after(&store, sid(2, 1), 3, 5, 10_000_000 - 3_600_000);
    complete_after(&store, sid(1, 3), 3, 1, 20_000_000);
    assert_eq!(store.latest_complete().unwrap(), sid(2, 1));
    // Equal cuts (no writes in between): the later sequence number.
    complete_after(&store, sid(2, 2), 3, 5, 0);
    assert_eq!(store.latest_complete().unwrap(), sid(2, 2));
    // Retention keeps the newest by the same order.
    assert_eq!(store.retain(2).unwrap(), vec![sid(1, 3), sid(0, 7)]);
}

#[test]
fn a_damaged_newest_snapshot_is_refused_by_name_never_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    complete_after(&store, sid(0, 1), 2, 2, 1);
    complete_after(&store, sid(0, 2), 2, 4, 2);
    let manifest = store.manifest_path(sid(0, 2));
    flip_last_byte(&manifest);

    let err = store.newest(Newest::Complete).unwrap_err();
    assert!(matches!(err, StoreError::NewestDamaged { id, .. } if id == sid(0, 2)));
    let text = err.to_string();
    assert!(text.contains(&manifest.display().to_string()), "{text}");
    assert!(text.contains("latest-valid"), "{text}");

    let chosen = store.newest(Newest::Valid).unwrap();
    assert_eq!(chosen.manifest.id, sid(0, 1));
    assert_eq!(chosen.skipped.len(), 1);
    assert_eq!(chosen.skipped[0].0, sid(0, 2));

    // Damage without summaries to rank it by: still assumed newest.
    fs::remove_file(store.info_path(sid(0, 2), 0)).unwrap();
    assert!(store.newest(Newest::Complete).is_err());
    // A whole manifest over a damaged part is refused the same way.
    fs::remove_dir_all(store.dir(sid(0, 2))).unwrap();
    complete_after(&store, sid(1, 1), 2, 6, 3);
    let part = store.part_path(sid(1, 1), 1);
    let mut bytes = fs::read(&part).unwrap();
    bytes[30] ^= 1;
    fs::write(&part, &bytes).unwrap();
    let err = store.restore_point(RestoreFrom::Latest).unwrap_err();
    assert!(
        err.to_string().contains(&part.display().to_string()),
        "{err}"
    );
    let chosen = store.restore_point(RestoreFrom::LatestValid).unwrap();
    assert_eq!(chosen.manifest.id, sid(0, 1));
}

/// A snapshot whose manifest is damaged is ranked by its parts' summaries
/// when every part is there, so an older one does not block a newer complete
/// one. With a part missing, half a cut tells nothing of its age: it ranks newest.
#[test]
fn a_damaged_snapshot_is_ranked_by_its_summaries_only_when_every_part_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let damage_manifest = |id| flip_last_byte(&store.manifest_path(id));
    complete_after(&store, sid(0, 2), 2, 6, 2);
    complete_after(&store, sid(0, 3), 2, 2, 3);
    damage_manifest(sid(0, 3));
    let chosen = store.newest(Newest::Complete).unwrap();
    assert_eq!(
        chosen.manifest.id,
        sid(0, 2),
        "the older damaged one is passed over"
    );
    assert!(chosen.skipped.is_empty());

    // Five writes in its cut against six, but only one part of two left.
    complete_after(&store, sid(1, 1), 2, 5, 4);
    damage_manifest(sid(1, 1));
    fs::remove_file(store.part_path(sid(1, 1), 1)).unwrap();
    fs::remove_file(store.info_path(sid(1, 1), 1)).unwrap();
    let err = store.newest(Newest::Complete).unwrap_err();
    assert!(
        matches!(err, StoreError::NewestDamaged { id, .. } if id == sid(1, 1)),
        "{err}"
    );
}

#[test]
fn a_renamed_snapshot_dir_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    complete_after(&store, sid(0, 1), 2, 2, 1);
    fs::rename(store.dir(sid(0, 1)), store.dir(sid(0, 9))).unwrap();
    let err = store.load(sid(0, 9)).unwrap_err().to_string();
    assert!(
        err.contains(&store.manifest_path(sid(0, 9)).display().to_string())
            && err.contains("holds snapshot 0-1"),
        "{err}"
    );
    // A part moved into another snapshot's directory is refused too.
    complete_after(&store, sid(0, 2), 2, 2, 1);
    complete_after(&store, sid(0, 3), 2, 2, 1);
    let from = store.part_path(sid(0, 2), 1);
    let to = store.part_path(sid(0, 3), 1);
    fs::copy(&from, &to).unwrap();
    let m = store.manifest(sid(0, 3)).unwrap();
    let err = store.load_part(&m, 1).unwrap_err().to_string();
    assert!(err.contains(&to.display().to_string()), "{err}");
    // A snapshot copied into another cluster's data dir.
    fs::write(dir.path().join("CLUSTER"), "other\n").unwrap();
    let err = store.load(sid(0, 2)).unwrap_err().to_string();
    assert!(
        err.contains(&store.manifest_path(sid(0, 2)).display().to_string())
            && err.contains("cluster `other`"),
        "{err}"
    );
}

/// A node's temp file in a snapshot that completed (or aborted) already is
/// not an interrupted part: the sweep leaves the snapshot as it is.
#[test]
fn the_sweep_leaves_finished_snapshots_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let (done, aborted) = (sid(0, 1), sid(0, 2));
    complete_after(&store, done, 2, 2, 1);
    store.mark_aborted(aborted, 0, "timed out").unwrap();
    for id in [done, aborted] {
        fs::write(store.dir(id).join(".part-1.gsmo.tmp-77"), b"late").unwrap();
    }
    assert_eq!(
        store.sweep_interrupted(1).unwrap(),
        Vec::<SnapshotId>::new()
    );
    assert!(matches!(store.status(done).unwrap(), Status::Complete(_)));
    assert_eq!(
        store.status(aborted).unwrap(),
        Status::Aborted("node 0: timed out".into())
    );
}

/// A summary copied to another node's name is named as misplaced, never
/// taken for that node's.
#[test]
fn a_summary_under_another_nodes_name_is_misplaced() {
    let (_dir, store, id) = store_with_complete_snapshot(2);
    fs::copy(store.info_path(id, 0), store.info_path(id, 1)).unwrap();
    let err = store.summary(id, 1).unwrap_err();
    assert!(
        err.to_string().contains("summarises node 0's part"),
        "{err}"
    );
}

/// Every part whole, but an abort recorded meanwhile (its parts were
/// removed before the last one landed): no manifest.
#[test]
fn an_aborted_snapshot_is_never_assembled() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let id = write_parts_of_two(&store);
    fs::write(store.aborted_path(id), "node 1: timed out\n").unwrap();
    assert_eq!(store.try_assemble(id, 2).unwrap(), None);
    assert!(!store.manifest_path(id).exists());
}

/// A part file that is whole (its own header and checksum agree) but is not
/// the one the summary declares, lies under another node's name, or comes
/// from another cluster, is refused by name: each check stands alone.
#[test]
fn a_whole_part_that_is_not_the_declared_one_is_refused() {
    let (_dir, store, id) = store_with_complete_snapshot(2);
    let m = store.manifest(id).unwrap();
    let path = store.part_path(id, 0);
    let genuine = read_part(&path).unwrap();
    let declare = |image: &[u8]| {
        let mut m = m.clone();
        m.parts[0].bytes = image.len() as u64;
        m.parts[0].crc32 = crc32fast::hash(&image[HEADER_LEN..]);
        m
    };

    // Another recording of node 0's part: the same size, another checksum.
    let other = encode_file(
        PART_MAGIC,
        &PartFile {
            recorded_unix_ms: genuine.recorded_unix_ms + 1,
            ..genuine.clone()
        },
    );
    assert_eq!(other.len() as u64, m.parts[0].bytes);
    fs::write(&path, &other).unwrap();
    for err in [
        store.check_part(&m.parts[0]).unwrap_err(),
        store.load_part(&m, 0).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Checksum { .. }), "{err}");
    }

    // Node 1's part under node 0's name, declared as such.
    let node_1s = fs::read(store.part_path(id, 1)).unwrap();
    fs::write(&path, &node_1s).unwrap();
    let err = store.load_part(&declare(&node_1s), 0).unwrap_err();
    assert!(err.to_string().contains("holds node 1's part"), "{err}");

    // Node 0's part, of another cluster, declared as such.
    let foreign = encode_file(
        PART_MAGIC,
        &PartFile {
            cluster_id: "other".into(),
            ..genuine
        },
    );
    fs::write(&path, &foreign).unwrap();
    let err = store.load_part(&declare(&foreign), 0).unwrap_err();
    assert!(
        err.to_string().contains("a part of cluster `other`"),
        "{err}"
    );
}
