//! Secrets: read from files, held without ever being printed.
//!
//! A `Secret`'s `Debug` and `Display` are redacted so a stray `{:?}` cannot leak it into
//! logs. The repository password is never read by us at all: restic reads it from
//! `RESTIC_PASSWORD_FILE` / `RESTIC_PASSWORD_COMMAND`; we only check the file is usable.

use std::fmt;
use std::path::Path;

/// A secret value (a database password). Redacted in every formatting.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value read from a file, a command or a prompt.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    /// The value does not linger in freed memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a password file cannot be used; the message never includes the content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFileError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path} is empty")]
    Empty { path: String },
}

/// Read a password file: the first line, without its line ending (as restic does).
pub fn read_password_file(path: &Path) -> Result<Secret, SecretFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| SecretFileError::Unreadable {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(Secret(first.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_everywhere() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn reads_first_line_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\r\nignored\n").unwrap();
        assert_eq!(read_password_file(&p).unwrap().expose(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            read_password_file(&p),
            Err(SecretFileError::Empty { .. })
        ));
        let missing = read_password_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("not found"), "{missing}");
    }
}
