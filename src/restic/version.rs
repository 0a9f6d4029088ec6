//! Which restic binary runs, and its version (read from `restic version`) to pick
//! features by release.

use crate::config::Repository;
use std::fmt;
use std::path::PathBuf;

/// Which restic binary to use: the config's, else `$OMK_BACKUP_RESTIC`, else `restic`.
pub(super) fn binary_for(repo: &Repository) -> PathBuf {
    if let Some(b) = &repo.restic {
        return b.clone();
    }
    match std::env::var_os("OMK_BACKUP_RESTIC") {
        Some(b) if !b.is_empty() => PathBuf::from(b),
        _ => PathBuf::from("restic"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parse `restic 0.14.0 compiled with go1.19.8 on linux/amd64`.
    pub fn parse(text: &str) -> Option<Version> {
        let word = text
            .split_whitespace()
            .skip_while(|w| *w != "restic")
            .nth(1)?;
        let word = word.trim_start_matches('v');
        let mut parts = word.split(['.', '-', '+']).map(|p| p.parse::<u32>());
        Some(Version::new(
            parts.next()?.ok()?,
            parts.next()?.ok()?,
            parts.next().and_then(Result::ok).unwrap_or(0),
        ))
    }

    /// restic 0.17 gave distinct exit codes to missing repository / locked / wrong password.
    pub fn has_typed_exit_codes(self) -> bool {
        self >= Version::new(0, 17, 0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_lines() {
        assert_eq!(
            Version::parse("restic 0.14.0 compiled with go1.19.8 on linux/amd64"),
            Some(Version::new(0, 14, 0))
        );
        assert_eq!(
            Version::parse("restic 0.18.0 compiled with go1.24.4 on linux/amd64\n"),
            Some(Version::new(0, 18, 0))
        );
        assert_eq!(
            Version::parse("restic 0.17.3-dev (compiled manually)"),
            Some(Version::new(0, 17, 3))
        );
        assert_eq!(Version::parse("nonsense"), None);
        assert!(Version::new(0, 18, 0).has_typed_exit_codes());
        assert!(!Version::new(0, 14, 0).has_typed_exit_codes());
    }
}
