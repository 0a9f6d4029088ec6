//! Raw repository files over the wire, for the encryption proof: the one module that
//! reads a remote repository's files itself (restic never lets us see them). One file
//! per backend: [`sftp`] through the same ssh configuration restic's sftp backend uses,
//! [`rest`] through the REST protocol's own file endpoints with the URL's credentials,
//! [`rclone`] through `rclone lsf`/`rclone cat`. [`choose`] picks one from the URL;
//! backends with no reader here (s3:, b2:, azure:, gs:, swift:) are named as such.
//!
//! Names are repository-relative (`config`, `keys/ID`, `data/ID` or `data/ab/ID`): the
//! caller only compares them and looks at the first component. No secret goes on argv.

pub mod rclone;
pub mod rest;
pub mod sftp;

use crate::redact::RepoUrl;
use std::path::Path;

/// What went wrong reading a remote repository (no credential inside).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct RemoteError {
    pub what: String,
    pub detail: String,
}

impl RemoteError {
    pub fn new(what: impl Into<String>, detail: impl std::fmt::Display) -> RemoteError {
        RemoteError {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// A reader of one remote repository's raw files.
#[derive(Debug)]
pub enum RawReader {
    Sftp(sftp::Sftp),
    Rest(rest::Rest),
    Rclone(rclone::Rclone),
}

/// Where a repository's raw files can be read from.
#[derive(Debug)]
pub enum Choice {
    /// A local path: the caller reads it directly.
    Local,
    Remote(RawReader),
    /// No reader for this backend (its name) here, or a URL we cannot take apart.
    Unreadable {
        backend: String,
        why: String,
    },
}

/// The raw-file reader for `url`; `cacert` is the repository's `--cacert` (REST).
pub fn choose(url: &RepoUrl, cacert: Option<&Path>) -> Choice {
    let raw = url.expose();
    let scheme = raw.split_once(':').map(|(s, _)| s).unwrap_or("");
    let built = match scheme {
        "sftp" => sftp::Sftp::parse(raw).map(RawReader::Sftp),
        "rest" => rest::Rest::parse(raw, cacert).map(RawReader::Rest),
        "rclone" => rclone::Rclone::parse(raw).map(RawReader::Rclone),
        "s3" | "b2" | "azure" | "gs" | "swift" => {
            return Choice::Unreadable {
                backend: scheme.into(),
                why: format!(
                    "omk-backup has no raw-file reader for {scheme}: repositories (restic talks to that service itself); reach it through rclone (`rclone:REMOTE:path`) to have the raw files checked"
                ),
            };
        }
        _ if crate::config::local_repo_path(raw).is_some() => return Choice::Local,
        other => {
            return Choice::Unreadable {
                backend: other.into(),
                why: format!("omk-backup has no raw-file reader for {other}: repositories"),
            };
        }
    };
    match built {
        Ok(r) => Choice::Remote(r),
        Err(e) => Choice::Unreadable {
            backend: scheme.into(),
            why: url.scrub(&e.to_string()),
        },
    }
}

impl RawReader {
    /// How the files are reached, for messages (no credential).
    pub fn describe(&self) -> String {
        match self {
            RawReader::Sftp(s) => s.describe(),
            RawReader::Rest(r) => r.describe(),
            RawReader::Rclone(r) => r.describe(),
        }
    }

    /// Every raw file of the repository (`config`, `keys/`, `index/`, `snapshots/`,
    /// `data/`; not `locks/`).
    pub async fn list(&self) -> Result<Vec<String>, RemoteError> {
        match self {
            RawReader::Sftp(s) => s.list().await,
            RawReader::Rest(r) => r.list().await,
            RawReader::Rclone(r) => r.list().await,
        }
    }

    /// The contents of these files (names from [`RawReader::list`]); `work` is a private
    /// folder for any temporary copies.
    pub async fn read(
        &self,
        names: &[String],
        work: &Path,
    ) -> Result<Vec<(String, Vec<u8>)>, RemoteError> {
        match self {
            RawReader::Sftp(s) => s.read(names, work).await,
            RawReader::Rest(r) => r.read(names).await,
            RawReader::Rclone(r) => r.read(names).await,
        }
    }
}

/// The repository folders whose files restic writes (locks are transient).
pub const TYPES: &[&str] = &["keys", "index", "snapshots", "data"];

/// The last lines of a tool's stderr, for an error message.
fn stderr_tail(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(b);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let n = lines.len();
    lines[n.saturating_sub(4)..].join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_url_gets_its_reader_and_cloud_backends_are_named_unreadable() {
        let pick = |u: &str| choose(&RepoUrl::new(u), None);
        assert!(matches!(pick("/srv/restic"), Choice::Local));
        assert!(matches!(
            pick("sftp:nas:/srv/r"),
            Choice::Remote(RawReader::Sftp(_))
        ));
        assert!(matches!(
            pick("rest:https://u:p@h:8000/r/"),
            Choice::Remote(RawReader::Rest(_))
        ));
        assert!(matches!(
            pick("rclone:b2:bucket/r"),
            Choice::Remote(RawReader::Rclone(_))
        ));
        for u in [
            "s3:s3.amazonaws.com/bucket",
            "b2:bucket:r",
            "azure:c:/",
            "gs:b:/",
            "swift:c:/",
        ] {
            match pick(u) {
                Choice::Unreadable { backend, why } => {
                    assert!(u.starts_with(&backend), "{u}: {backend}");
                    assert!(
                        why.contains("no raw-file reader") && why.contains("rclone"),
                        "{why}"
                    );
                }
                other => panic!("{u}: {other:?}"),
            }
        }
        // A broken URL is unreadable and its reason carries no credential.
        match pick("rest:https://u:s3cret@") {
            Choice::Remote(_) | Choice::Local => {}
            Choice::Unreadable { why, .. } => assert!(!why.contains("s3cret"), "{why}"),
        }
    }
}
