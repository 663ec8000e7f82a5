//! Shared secrets: the cluster secret peers authenticate with and the client
//! password (`requirepass`).
//!
//! A secret comes from a file or an environment variable, never from a
//! command-line value, which `ps` shows every local user. It is never printed
//! (`Debug` is redacted) and is compared in constant time: both sides are
//! hashed first, so neither the content nor the length leaks through timing.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// The environment variable `gsmo node` reads the cluster secret from when
/// `--cluster-secret-file` is not given; `gsmo cluster` passes it to its nodes.
pub const CLUSTER_SECRET_ENV: &str = "GSMO_CLUSTER_SECRET";

/// A secret's bytes, redacted in every printout.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("cannot read the {what} file {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the {what} in {source_name} is empty")]
    Empty {
        what: &'static str,
        source_name: String,
    },
}

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The file's contents without trailing line breaks (so `echo x > file` works).
    pub fn from_file(what: &'static str, path: &Path) -> Result<Self, SecretError> {
        let bytes = std::fs::read(path).map_err(|e| SecretError::File {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::non_empty(what, path.display().to_string(), bytes)
    }

    /// `Ok(None)` when `var` is unset.
    pub fn from_env(what: &'static str, var: &str) -> Result<Option<Self>, SecretError> {
        match std::env::var_os(var) {
            None => Ok(None),
            Some(v) => {
                let bytes = std::os::unix::ffi::OsStringExt::into_vec(v);
                Self::non_empty(what, format!("${var}"), bytes).map(Some)
            }
        }
    }

    fn non_empty(
        what: &'static str,
        from: String,
        mut bytes: Vec<u8>,
    ) -> Result<Self, SecretError> {
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(SecretError::Empty {
                what,
                source_name: from,
            });
        }
        Ok(Secret(bytes))
    }

    /// 32 bytes from the operating system's CSPRNG, hex-encoded (printable, so it survives env vars).
    pub fn generate() -> Self {
        let raw: [u8; 32] = random_bytes();
        Secret(
            raw.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        )
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison with what a client or peer presented.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let (a, b) = (Sha256::digest(&self.0), Sha256::digest(candidate));
        a.ct_eq(&b).into()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Bytes from the operating system's CSPRNG (nonces, generated secrets).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    crate::net::random_bytes()
}

/// The cluster secret: `--cluster-secret-file` if given, else `$GSMO_CLUSTER_SECRET`, else none.
pub fn cluster_secret(file: Option<&Path>) -> Result<Option<Secret>, SecretError> {
    const WHAT: &str = "cluster secret";
    match file {
        Some(path) => Secret::from_file(WHAT, path).map(Some),
        None => Secret::from_env(WHAT, CLUSTER_SECRET_ENV),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_lose_their_line_break_and_empty_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "hunter2\r\n").unwrap();
        let s = Secret::from_file("password", &f).unwrap();
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter2\n"));
        assert!(!s.matches(b"hunter"));
        assert!(!format!("{s:?}").contains("hunter"));
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(
            Secret::from_file("password", &f),
            Err(SecretError::Empty { .. })
        ));
        assert!(matches!(
            Secret::from_file("password", &dir.path().join("missing")),
            Err(SecretError::File { .. })
        ));
    }

    #[test]
    fn generated_secrets_differ() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
        assert_eq!(Secret::new("k"), Secret::new("k"));
    }

    #[test]
    fn a_secret_file_is_the_cluster_secret() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cluster.key");
        std::fs::write(&f, "k\n").unwrap();
        let s = cluster_secret(Some(&f))
            .unwrap()
            .expect("the file's secret");
        assert!(s.matches(b"k"));
        assert!(matches!(
            cluster_secret(Some(&dir.path().join("missing"))),
            Err(SecretError::File { .. })
        ));
    }

    #[test]
    fn the_environment_gives_a_secret_only_when_set_and_not_empty() {
        // A variable of this test's own, so no other test sees it change.
        const VAR: &str = "GSMO_TEST_SECRET_FROM_ENV";
        std::env::remove_var(VAR);
        assert_eq!(Secret::from_env("cluster secret", VAR), Ok(None));
        std::env::set_var(VAR, "hunter2\n");
        let s = Secret::from_env("cluster secret", VAR).unwrap().unwrap();
        assert!(s.matches(b"hunter2"));
        std::env::set_var(VAR, "\r\n");
        assert!(matches!(
            Secret::from_env("cluster secret", VAR),
            Err(SecretError::Empty { .. })
        ));
        std::env::remove_var(VAR);
    }
}
