//! The snapshot file format: one header for every file, and the single place
//! that maps a format version to a decoder.
//!
//! ```text
//! offset  size  field
//! 0       8     magic: "GSMOPART" (part), "GSMOINFO" (part summary), "GSMOMANI" (manifest)
//! 8       2     format version, little-endian (written: FORMAT_VERSION)
//! 10      2     reserved, 0
//! 12      8     payload length in bytes, little-endian
//! 20      4     CRC-32 (IEEE), little-endian: from version 2 on, of bytes 8..12
//!               (version and reserved) then the payload; in version 1, of the payload
//! 24      ...   payload: bincode 2 (standard config, serde) of PartFile / PartSummary / Manifest
//! ```
//! Readers check magic, version, length and checksum before decoding and name
//! the file in every error. `tests/data/v<N>/` holds golden files of each
//! version, decoded field by field by `tests/format_v1.rs`, so a change to a
//! spec type that would change these bytes fails a test instead of old files.
//!
//! Versions: 1 stored a strings-only K/V store (read through [`super::v1`] and
//! upgraded); 2 stores typed values (strings, lists, sets, hashes, sorted
//! sets); 3 stores batches of writes where 2 stored one write per multicast
//! message (read through [`super::v2`] and upgraded). Only the part payload
//! changed: summaries and manifests have one layout under all, and are
//! written with the current version like parts.
//!
//! Changing the format: bump [`FORMAT_VERSION`], keep the old payload types in
//! a `v<N>` module, and add an arm to the `match` in [`decode_part`],
//! [`decode_summary`] and [`decode_manifest`] that decodes the old type and
//! converts it. Nothing else reads a payload.

use super::error::{io_err, StoreError};
use super::manifest::{Manifest, PartSummary};
use super::v1::PartFileV1;
use super::v2::PartFileV2;
use gsmo_spec::multicast::Mode;
use gsmo_spec::node::Part;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

pub const PART_MAGIC: &[u8; 8] = b"GSMOPART";
pub const MANIFEST_MAGIC: &[u8; 8] = b"GSMOMANI";
pub const INFO_MAGIC: &[u8; 8] = b"GSMOINFO";
/// The version this build writes.
pub const FORMAT_VERSION: u16 = 3;
pub const HEADER_LEN: usize = 24;
/// Largest file a reader will load (a 1 M-key snapshot part is ~100 MB); a
/// larger one is refused before any allocation.
pub const MAX_FILE_BYTES: u64 = 8 << 30;

/// One node's part, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    pub cluster_id: String,
    pub mode: Mode,
    /// Wall-clock time the local state was recorded (ms since the Unix epoch).
    pub recorded_unix_ms: u64,
    /// From recording the local state to the last incoming channel closing.
    pub duration_ms: u64,
    pub part: Part,
}

/// The whole file image of `value` under `magic`, in the current version.
pub fn encode_file<T: Serialize>(magic: &[u8; 8], value: &T) -> Vec<u8> {
    encode_file_as(magic, FORMAT_VERSION, value)
}

/// The file image of `value` under `magic` with header `version`: for tests
/// that rebuild an old version's file from its `v<N>` payload type.
pub fn encode_file_as<T: Serialize>(magic: &[u8; 8], version: u16, value: &T) -> Vec<u8> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("in-memory encoding cannot fail");
    let version_and_reserved = [version.to_le_bytes(), 0u16.to_le_bytes()].concat();
    let crc = checksum(version, &version_and_reserved, &payload);
    image(magic, version, &payload, crc)
}

/// The header (reserved field 0, checksum `crc`) followed by `payload`.
fn image(magic: &[u8; 8], version: u16, payload: &[u8], crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What [`write_file`] wrote: the whole file's size and the CRC-32 of its
/// payload alone (the one a [`PartSummary`] declares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    pub payload_crc32: u32,
}

/// Streams the file image of `value` under `magic` into `w`, byte for byte
/// what [`encode_file`] returns, without holding the payload in memory: the
/// header goes out with length and checksum zero, bincode encodes straight
/// into `w` while both CRCs are computed on the fly, and the header is patched
/// at the end. A 1 M-key part is ~100 MB; this keeps that second copy (and
/// the time to build it) out of the node.
pub fn write_file<W: Write + Seek, T: Serialize>(
    w: &mut W,
    magic: &[u8; 8],
    value: &T,
) -> io::Result<Written> {
    let start = w.stream_position()?;
    let mut head = [0u8; HEADER_LEN];
    head[..8].copy_from_slice(magic);
    head[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    w.write_all(&head)?;
    let mut header_crc = crc32fast::Hasher::new();
    if covers_version(FORMAT_VERSION) {
        header_crc.update(&head[8..12]);
    }
    // bincode writes field by field; the buffer hands the checksums and the
    // file large chunks.
    let mut out = io::BufWriter::with_capacity(
        256 << 10,
        Tee {
            inner: &mut *w,
            bytes: 0,
            header_crc,
            payload_crc: crc32fast::Hasher::new(),
        },
    );
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard()).map_err(
        |e| match e {
            // Keep the OS error (ENOSPC, EIO, ...) as it is: the abort reason names it.
            bincode::error::EncodeError::Io { inner, .. } => inner,
            other => io::Error::other(other.to_string()),
        },
    )?;
    let tee = out.into_inner().map_err(|e| e.into_error())?;
    let (len, crc, payload_crc32) = (
        tee.bytes,
        tee.header_crc.finalize(),
        tee.payload_crc.finalize(),
    );
    w.seek(SeekFrom::Start(start + 12))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&crc.to_le_bytes())?;
    w.seek(SeekFrom::Start(start + HEADER_LEN as u64 + len))?;
    Ok(Written {
        bytes: HEADER_LEN as u64 + len,
        payload_crc32,
    })
}

/// Counts and checksums the payload on its way to the file.
struct Tee<'a, W> {
    inner: &'a mut W,
    bytes: u64,
    header_crc: crc32fast::Hasher,
    payload_crc: crc32fast::Hasher,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.header_crc.update(&buf[..n]);
        self.payload_crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The header's checksum. Version 1 covered only the payload, so a flipped
/// version byte could send a newer payload to an older decoder; from version
/// 2 on the version field is covered too.
fn checksum(version: u16, version_and_reserved: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    if covers_version(version) {
        h.update(version_and_reserved);
    }
    h.update(payload);
    h.finalize()
}

fn covers_version(version: u16) -> bool {
    version >= 2
}

/// Checks a file image's header, version, length and checksum; returns the
/// version and the payload, which the `decode_*` functions dispatch on.
pub fn check_image<'a>(
    path: &Path,
    magic: &[u8; 8],
    bytes: &'a [u8],
) -> Result<(u16, &'a [u8]), StoreError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < 8 || &bytes[..8] != magic {
        return Err(StoreError::NotASnapshot { path: path_buf() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(StoreError::Truncated {
            path: path_buf(),
            expected: HEADER_LEN as u64,
            actual: bytes.len() as u64,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    // Checked before the checksum: how a version computes its checksum is
    // part of the version, so a future file is named as such, not as corrupt.
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(unsupported(path, version));
    }
    let reserved = u16::from_le_bytes([bytes[10], bytes[11]]);
    if reserved != 0 {
        return Err(StoreError::Reserved {
            path: path_buf(),
            found: reserved,
        });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(StoreError::Truncated {
            path: path_buf(),
            expected: len,
            actual: payload.len() as u64,
        });
    }
    let actual = checksum(version, &bytes[8..12], payload);
    if actual != crc {
        return Err(StoreError::Checksum {
            path: path_buf(),
            expected: crc,
            actual,
        });
    }
    Ok((version, payload))
}

/// Decodes one payload as `T`, refusing trailing bytes. Public so tests can
/// read an old version's payload as its `v<N>` type.
pub fn decode_payload<T: DeserializeOwned>(path: &Path, payload: &[u8]) -> Result<T, StoreError> {
    let path_buf = || path.to_path_buf();
    // The limit stops a crafted length field from claiming more than a file may hold.
    let config = bincode::config::standard().with_limit::<{ MAX_FILE_BYTES as usize }>();
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config).map_err(|e| StoreError::Decode {
            path: path_buf(),
            reason: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(StoreError::Decode {
            path: path_buf(),
            reason: format!("{} trailing bytes", payload.len() - used),
        });
    }
    Ok(value)
}

fn unsupported(path: &Path, found: u16) -> StoreError {
    StoreError::Version {
        path: path.to_path_buf(),
        found,
    }
}

/// Decodes a part file image (the whole file).
pub fn decode_part(path: &Path, bytes: &[u8]) -> Result<PartFile, StoreError> {
    match check_image(path, PART_MAGIC, bytes)? {
        (1, payload) => decode_payload(path, payload).map(|p: PartFileV1| p.upgrade().upgrade()),
        (2, payload) => decode_payload(path, payload).map(PartFileV2::upgrade),
        (3, payload) => decode_payload(path, payload),
        (v, _) => Err(unsupported(path, v)),
    }
}

/// Decodes a part summary file image (one layout in versions 1 to 3).
pub fn decode_summary(path: &Path, bytes: &[u8]) -> Result<PartSummary, StoreError> {
    match check_image(path, INFO_MAGIC, bytes)? {
        (1..=3, payload) => decode_payload(path, payload),
        (v, _) => Err(unsupported(path, v)),
    }
}

/// Decodes a manifest file image (one layout in versions 1 to 3).
pub fn decode_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, StoreError> {
    match check_image(path, MANIFEST_MAGIC, bytes)? {
        (1..=3, payload) => decode_payload(path, payload),
        (v, _) => Err(unsupported(path, v)),
    }
}

/// Reads a whole file, refusing one over [`MAX_FILE_BYTES`] before allocating.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, StoreError> {
    read_bytes_within(path, MAX_FILE_BYTES)
}

/// [`read_bytes`] under a `limit` of bytes (tests use a small one).
fn read_bytes_within(path: &Path, limit: u64) -> Result<Vec<u8>, StoreError> {
    let size = fs::metadata(path).map_err(io_err(path))?.len();
    if size > limit {
        return Err(StoreError::TooLarge {
            path: path.to_path_buf(),
            bytes: size,
        });
    }
    fs::read(path).map_err(io_err(path))
}

/// Reads and verifies one part file.
pub fn read_part(path: &Path) -> Result<PartFile, StoreError> {
    decode_part(path, &read_bytes(path)?)
}

/// Reads and verifies one part summary file.
pub fn read_summary(path: &Path) -> Result<PartSummary, StoreError> {
    decode_summary(path, &read_bytes(path)?)
}

/// Reads and verifies one manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest, StoreError> {
    decode_manifest(path, &read_bytes(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Version 1 files (still read and upgraded) checksum the payload alone;
    /// from version 2 on that checksum no longer passes. The checksum is
    /// computed here, not by `checksum`, so that a fault there is seen.
    #[test]
    fn version_1_checksums_the_payload_alone() {
        let payload = b"payload";
        let mut image = image(PART_MAGIC, 1, payload, crc32fast::hash(payload));
        let path = Path::new("part-0.gsmo");
        assert_eq!(
            check_image(path, PART_MAGIC, &image).unwrap(),
            (1, &payload[..])
        );
        image[8] = 2;
        assert!(matches!(
            check_image(path, PART_MAGIC, &image),
            Err(StoreError::Checksum { .. })
        ));
    }

    /// The length checks' edges: the magic alone is a truncated file, not a
    /// stranger's; a header with an empty payload is whole.
    #[test]
    fn a_bare_magic_is_truncated_and_an_empty_payload_is_whole() {
        let path = Path::new("part-0.gsmo");
        let err = check_image(path, PART_MAGIC, PART_MAGIC).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Truncated {
                    expected: 24,
                    actual: 8,
                    ..
                }
            ),
            "{err}"
        );
        let empty = encode_file(PART_MAGIC, &());
        assert_eq!(empty.len(), HEADER_LEN);
        assert_eq!(
            check_image(path, PART_MAGIC, &empty).unwrap(),
            (FORMAT_VERSION, &[][..])
        );
    }

    /// A streamed image is the in-memory one wherever the writer starts, and
    /// leaves the writer just after it, ready for what follows.
    #[test]
    fn a_streamed_image_ends_where_it_says() {
        let mut w = Cursor::new(b"lead".to_vec());
        w.set_position(4);
        let written = write_file(&mut w, INFO_MAGIC, &"a value").unwrap();
        let image = encode_file(INFO_MAGIC, &"a value");
        assert_eq!(written.bytes, image.len() as u64);
        assert_eq!(w.position(), 4 + written.bytes);
        assert_eq!(&w.get_ref()[4..], &image[..]);
        assert_eq!(written.payload_crc32, crc32fast::hash(&image[HEADER_LEN..]));
    }

    /// A file over the limit is refused from its size alone; one at the
    /// limit is read.
    #[test]
    fn a_file_over_the_limit_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-0.gsmo");
        fs::write(&path, [7; 11]).unwrap();
        let err = read_bytes_within(&path, 10).unwrap_err();
        assert!(
            matches!(err, StoreError::TooLarge { bytes: 11, .. }),
            "{err}"
        );
        assert_eq!(read_bytes_within(&path, 11).unwrap(), [7; 11]);
        assert_eq!(read_bytes(&path).unwrap(), [7; 11]);
    }
}
