//! `--trace FILE`: a node's record of every input it fed its spec `Node` and
//! every output it got back, for [`gsmo_spec::trace::check_cluster`]
//! (`gsmo trace check`). A diagnostic: it costs a write per step.
//!
//! Format: the 8-byte magic `GSMOTRAC`, a little-endian `u16` version, then
//! records, each a little-endian `u32` length and a bincode body: first the
//! [`Start`], then one [`Step`] per input. A node killed mid-write leaves a
//! truncated last record; the reader reports how many steps it recovered.

use gsmo_spec::node::{Input, Output};
use gsmo_spec::trace::{Start, Step, Trace};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"GSMOTRAC";
/// Bumped whenever a recorded step would replay differently or the start
/// record changes shape (3: the sequencer's messages travel through it; 4: a
/// new connection and a released ack hold send the ack owed at once; 5: the
/// limits carry `max_snapshots`), so an old trace is refused by name instead
/// of failing its replay.
const VERSION: u16 = 5;
/// A single step larger than this is a corrupt length, not a real record.
const MAX_RECORD: u32 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a gsmo trace (bad magic or version)")]
    NotATrace { path: PathBuf },
    #[error("{path}: record {index} is corrupt: {reason}")]
    Corrupt {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

/// Appends steps to a trace file.
pub struct TraceWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl TraceWriter {
    pub fn create(path: &Path, start: &Start) -> Result<Self, TraceError> {
        let io = |source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(io)?;
        let mut w = TraceWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
        };
        w.out.write_all(MAGIC).map_err(io)?;
        w.out.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        w.write_record(start)?;
        Ok(w)
    }

    /// Records one step (`input` is `None` only for the outputs of a restore).
    pub fn record(&mut self, input: Option<&Input>, outputs: &[Output]) -> Result<(), TraceError> {
        self.write_record(&Step {
            input: input.cloned(),
            outputs: outputs.to_vec(),
        })
    }

    pub fn flush(&mut self) -> Result<(), TraceError> {
        self.out.flush().map_err(|source| TraceError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn write_record<T: Serialize>(&mut self, value: &T) -> Result<(), TraceError> {
        let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .expect("in-memory encoding cannot fail");
        let io = |source| TraceError::Io {
            path: self.path.clone(),
            source,
        };
        self.out
            .write_all(&(body.len() as u32).to_le_bytes())
            .map_err(io)?;
        self.out.write_all(&body).map_err(|source| TraceError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads a trace; a truncated final record (a killed node) is dropped and
/// counted in the second value.
pub fn read_trace(path: &Path) -> Result<(Trace, usize), TraceError> {
    let io = |source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() < 10
        || &bytes[..8] != MAGIC
        || u16::from_le_bytes([bytes[8], bytes[9]]) != VERSION
    {
        return Err(TraceError::NotATrace {
            path: path.to_path_buf(),
        });
    }
    let mut rest = &bytes[10..];
    let mut records: Vec<&[u8]> = Vec::new();
    let mut truncated = 0;
    while !rest.is_empty() {
        if rest.len() < 4 {
            truncated += 1;
            break;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return Err(TraceError::Corrupt {
                path: path.to_path_buf(),
                index: records.len(),
                reason: format!("length {len}"),
            });
        }
        if rest.len() < 4 + len as usize {
            truncated += 1;
            break;
        }
        records.push(&rest[4..4 + len as usize]);
        rest = &rest[4 + len as usize..];
    }
    let corrupt = |index: usize, e: bincode::error::DecodeError| TraceError::Corrupt {
        path: path.to_path_buf(),
        index,
        reason: e.to_string(),
    };
    let config = bincode::config::standard().with_limit::<{ MAX_RECORD as usize }>();
    let (first, steps) = records.split_first().ok_or(TraceError::NotATrace {
        path: path.to_path_buf(),
    })?;
    let start: Start = bincode::serde::decode_from_slice(first, config)
        .map_err(|e| corrupt(0, e))?
        .0;
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, r)| {
            bincode::serde::decode_from_slice(r, config)
                .map(|(s, _)| s)
                .map_err(|e| corrupt(i + 1, e))
        })
        .collect::<Result<Vec<Step>, _>>()?;
    Ok((Trace { start, steps }, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsmo_spec::kv::Op;
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::node::{Command, Node};

    #[test]
    fn round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n0.trace");
        let start = Start::Fresh {
            node: 0,
            n: 1,
            mode: Mode::TotalSequencer,
            limits: gsmo_spec::node::Limits::default(),
        };
        let mut node = Node::new(0, 1, Mode::TotalSequencer);
        let mut w = TraceWriter::create(&path, &start).unwrap();
        for i in 0..3u64 {
            let input = Input::Client {
                req: i,
                cmd: Command::Write(Op::IncrBy {
                    key: b"c".to_vec(),
                    delta: 1,
                }),
            };
            let out = node.handle(input.clone()).unwrap();
            w.record(Some(&input), &out).unwrap();
        }
        w.flush().unwrap();
        // Flushed, not yet dropped: every step is on disk already.
        let (trace, truncated) = read_trace(&path).unwrap();
        drop(w);
        assert_eq!((trace.steps.len(), truncated), (3, 0));
        assert!(gsmo_spec::trace::check_cluster(&[trace], Mode::TotalSequencer, true).is_ok());

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let (trace, truncated) = read_trace(&path).unwrap();
        assert_eq!((trace.steps.len(), truncated), (2, 1));

        std::fs::write(&path, b"GSMOTRAC\x09\x00").unwrap();
        assert!(matches!(
            read_trace(&path),
            Err(TraceError::NotATrace { .. })
        ));
    }

    /// A good trace of three steps, its bytes.
    fn three_steps(path: &Path) -> Vec<u8> {
        let start = Start::Fresh {
            node: 0,
            n: 1,
            mode: Mode::Fifo,
            limits: gsmo_spec::node::Limits::default(),
        };
        let mut w = TraceWriter::create(path, &start).unwrap();
        for _ in 0..3 {
            w.record(Some(&Input::Tick { now: 1 }), &[]).unwrap();
        }
        w.flush().unwrap();
        std::fs::read(path).unwrap()
    }

    /// Whatever is wrong with a file is told apart: not a trace (short, a
    /// foreign magic or version, records or none), a length no record has,
    /// a record that does not decode (with its index), or a node killed
    /// mid-record (1-3 bytes of a length, or a body cut short: dropped and
    /// counted).
    #[test]
    fn every_kind_of_bad_file_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n0.trace");
        let good = three_steps(&path);
        let read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read_trace(&path)
        };
        let not_a_trace =
            |r: Result<(Trace, usize), TraceError>| matches!(r, Err(TraceError::NotATrace { .. }));
        assert!(not_a_trace(read(b"GSMO")), "shorter than a header");
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(
            not_a_trace(read(&magic)),
            "a foreign magic, records after it"
        );
        let mut version = good.clone();
        version[8] = version[8].wrapping_add(1);
        assert!(
            not_a_trace(read(&version)),
            "another version, records after it"
        );
        for cut in 1..=3 {
            let mut tail = good.clone();
            tail.extend_from_slice(&[0xff; 3][..cut]);
            let (trace, truncated) = read(&tail).unwrap();
            assert_eq!(
                (trace.steps.len(), truncated),
                (3, 1),
                "{cut} bytes of a length"
            );
        }
        // The largest record there may be, cut short: a killed node's.
        let mut largest = good.clone();
        largest.extend_from_slice(&MAX_RECORD.to_le_bytes());
        let (trace, truncated) = read(&largest).unwrap();
        assert_eq!((trace.steps.len(), truncated), (3, 1));
        let mut huge = good.clone();
        huge.extend_from_slice(&(MAX_RECORD + 1).to_le_bytes());
        match read(&huge) {
            Err(TraceError::Corrupt { index, reason, .. }) => {
                assert_eq!(index, 4);
                assert!(reason.contains(&(MAX_RECORD + 1).to_string()), "{reason}");
            }
            other => panic!("a record of {} bytes: {other:?}", MAX_RECORD + 1),
        }
        let mut garbage = good.clone();
        garbage.extend_from_slice(&2u32.to_le_bytes());
        garbage.extend_from_slice(&[0xff, 0xff]);
        assert!(matches!(
            read(&garbage),
            Err(TraceError::Corrupt { index: 4, .. })
        ));
        assert!(read(&good).is_ok());
    }
}
