//! One data dir, one cluster, one process per node id: checked when a node
//! starts, so a mistake is reported before any snapshot is taken rather than
//! discovered when two clusters have overwritten each other's files.
//!
//! ```text
//! DATA_DIR/CLUSTER          the cluster id that owns the dir (written by the first node to start)
//! DATA_DIR/node-<i>.lock    flock(2)ed by node i for as long as it runs; holds its pid
//! DATA_DIR/snapshots/...    see [`super::store`]
//! ```
//! A node of another cluster is refused naming `CLUSTER`; a second node with
//! the same id (a second cluster with the same cluster id, or a node started
//! twice) is refused naming the lock file; a dir that cannot be written is
//! refused naming the dir. The lock is advisory and per host: nodes on
//! different hosts give each node its own dir anyway.

use super::error::StoreError;
use super::store::SnapshotStore;
use gsmo_spec::NodeId;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A node's claim on its data dir; the lock is released when this is dropped
/// (or the process ends).
pub struct Claim {
    pub store: SnapshotStore,
    pub lock_path: PathBuf,
    _lock: Flock<File>,
}

fn refused(path: &Path, reason: String) -> StoreError {
    StoreError::DataDir {
        path: path.to_path_buf(),
        reason,
    }
}

/// Claims `data_dir` for node `node` of cluster `cluster_id`.
pub fn claim(data_dir: &Path, cluster_id: &str, node: NodeId) -> Result<Claim, StoreError> {
    fs::create_dir_all(data_dir)
        .map_err(|e| refused(data_dir, format!("cannot create the data dir: {e}")))?;
    probe_writable(data_dir, node)?;
    check_cluster(data_dir, cluster_id)?;
    let lock_path = data_dir.join(format!("node-{node}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| refused(&lock_path, format!("cannot open the lock file: {e}")))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, errno)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.lines().next().unwrap_or("another process").trim();
            if errno != nix::errno::Errno::EWOULDBLOCK {
                return Err(refused(&lock_path, format!("cannot lock: {errno}")));
            }
            return Err(refused(
                &lock_path,
                format!(
                    "locked by {holder}: a node {node} of cluster `{cluster_id}` \
                     already runs on this data dir (two clusters with one --data-dir, or a \
                     node started twice?); give each cluster its own --data-dir"
                ),
            ));
        }
    };
    let who = format!(
        "pid {} (node {node} of cluster `{cluster_id}`)\n",
        std::process::id()
    );
    let _ = lock.set_len(0);
    let _ = lock.rewind();
    lock.write_all(who.as_bytes())
        .and_then(|()| lock.sync_all())
        .map_err(|e| refused(&lock_path, format!("cannot write the lock file: {e}")))?;
    Ok(Claim {
        store: SnapshotStore::open(data_dir)?,
        lock_path,
        _lock: lock,
    })
}

/// Writes, syncs and removes a small file, so a read-only, full or
/// permission-denied dir is reported now, not at the first snapshot.
fn probe_writable(data_dir: &Path, node: NodeId) -> Result<(), StoreError> {
    let probe = data_dir.join(format!(".probe-n{node}-{}", std::process::id()));
    let result = File::create(&probe).and_then(|mut f| {
        f.write_all(b"gsmo write probe\n")
            .and_then(|()| f.sync_all())
    });
    let _ = fs::remove_file(&probe);
    result.map_err(|e| {
        refused(
            data_dir,
            format!("the data dir is not writable ({e}); no snapshot could be stored there"),
        )
    })
}

/// The first node to start records the cluster id; every later one must match it.
fn check_cluster(data_dir: &Path, cluster_id: &str) -> Result<(), StoreError> {
    let path = data_dir.join("CLUSTER");
    match fs::read_to_string(&path) {
        Ok(owner) => return owned_by(&path, owner.trim(), cluster_id),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(refused(&path, e.to_string())),
    }
    record_cluster(data_dir, cluster_id)
}

/// Writes `CLUSTER` whole or not at all: a temp file hard-linked into place
/// fails if another node got there first, and then its id is checked instead.
fn record_cluster(data_dir: &Path, cluster_id: &str) -> Result<(), StoreError> {
    let path = data_dir.join("CLUSTER");
    let tmp = data_dir.join(format!(".CLUSTER.tmp-{}", std::process::id()));
    let io = |e: std::io::Error| refused(&path, e.to_string());
    fs::write(&tmp, format!("{cluster_id}\n")).map_err(io)?;
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let owner = fs::read_to_string(&path).map_err(io)?;
            owned_by(&path, owner.trim(), cluster_id)
        }
        Err(e) => Err(io(e)),
    }
}

/// `CLUSTER` at `path` names `owner`: fine if that is `cluster_id`.
fn owned_by(path: &Path, owner: &str, cluster_id: &str) -> Result<(), StoreError> {
    if owner == cluster_id {
        return Ok(());
    }
    Err(refused(
        path,
        format!(
            "this data dir belongs to cluster `{owner}`, not `{cluster_id}`: one data dir \
             holds one cluster's snapshots (pass another --data-dir, or --cluster-id {owner})"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cluster_and_one_process_per_node_id() {
        let dir = tempfile::tempdir().unwrap();
        let a0 = claim(dir.path(), "a", 0).unwrap();
        let _a1 = claim(dir.path(), "a", 1).unwrap();
        // flock locks belong to the open file, so a second open in this
        // process conflicts just as another process would.
        let err = claim(dir.path(), "a", 0).err().unwrap().to_string();
        assert!(err.contains("node-0.lock"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        let err = claim(dir.path(), "b", 2).err().unwrap().to_string();
        assert!(err.contains("CLUSTER"), "{err}");
        assert!(err.contains("belongs to cluster `a`"), "{err}");
        drop(a0);
        claim(dir.path(), "a", 0).expect("released with its holder");
    }

    /// Two nodes starting at once both find no `CLUSTER`; the second to write
    /// it finds the first's, which is fine if the ids agree.
    #[test]
    fn the_second_node_to_record_the_cluster_checks_the_first_s() {
        let dir = tempfile::tempdir().unwrap();
        record_cluster(dir.path(), "a").unwrap();
        record_cluster(dir.path(), "a").expect("the same cluster");
        let err = record_cluster(dir.path(), "b").err().unwrap().to_string();
        assert!(err.contains("belongs to cluster `a`, not `b`"), "{err}");
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "only CLUSTER, no temp file");
    }
}
