//! Typed restic failures, recognised from 0.17+'s exit codes and 0.14's texts alike.

/// What went wrong with a restic command. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ResticError {
    #[error(
        "restic not found (looked for `{binary}`): install it (`apt-get install restic`) or set repository.restic in the config or OMK_BACKUP_RESTIC"
    )]
    NotInstalled { binary: String },
    #[error("cannot start restic `{binary}`: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("restic {found} is not supported: omk-backup needs restic 0.14 or newer")]
    Unsupported { found: String },
    #[error(
        "there is no restic repository at {url}: check repository.url, or create one on purpose with `omk-backup backup --init`"
    )]
    RepoMissing { url: String },
    #[error("a restic repository already exists at {url}: nothing to initialise")]
    AlreadyExists { url: String },
    #[error(
        "the password does not open the repository at {url}: check repository.password_file / password_command"
    )]
    WrongPassword { url: String },
    #[error(
        "the repository at {url} is locked by another restic process ({detail}); if no backup is running, `restic unlock` removes a stale lock"
    )]
    Locked { url: String, detail: String },
    #[error("restic could not read some source files; the snapshot {} is incomplete: {detail}", snapshot_id.as_deref().unwrap_or("(none)"))]
    SourceUnreadable {
        snapshot_id: Option<String>,
        detail: String,
    },
    #[error("`restic {command}` failed{}: {stderr}", code.map(|c| format!(" with exit code {c}")).unwrap_or_default())]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("`restic {command}` answered something unexpected: {detail}")]
    Protocol { command: String, detail: String },
    #[error("`restic {command}` was interrupted")]
    Interrupted { command: String },
}

impl ResticError {
    /// Errors the user fixes in the setup or config (exit code 2), not run failures.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ResticError::NotInstalled { .. }
                | ResticError::Unsupported { .. }
                | ResticError::RepoMissing { .. }
                | ResticError::AlreadyExists { .. }
        )
    }

    /// Classify a finished command from its exit code and standard error.
    pub(crate) fn from_exit(
        command: &str,
        code: Option<i32>,
        stderr: &str,
        url: &str,
    ) -> ResticError {
        let has = |s: &str| stderr.contains(s);
        if code == Some(12) || has("wrong password or no key found") {
            return ResticError::WrongPassword {
                url: url.to_string(),
            };
        }
        if code == Some(10)
            || has("unable to open config file")
            || has("Is there a repository at the following location?")
            || has("repository does not exist")
        {
            return ResticError::RepoMissing {
                url: url.to_string(),
            };
        }
        if code == Some(11) || has("repository is already locked") || has("unable to create lock") {
            return ResticError::Locked {
                url: url.to_string(),
                detail: first_line_with(stderr, "lock"),
            };
        }
        if has("config file already exists")
            || has("repository master key and config already initialized")
        {
            return ResticError::AlreadyExists {
                url: url.to_string(),
            };
        }
        if code == Some(130) || has("signal interrupt received") {
            return ResticError::Interrupted {
                command: command.to_string(),
            };
        }
        ResticError::Failed {
            command: command.to_string(),
            code,
            stderr: tail(stderr, 12),
        }
    }
}

fn first_line_with(text: &str, needle: &str) -> String {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| text.lines().next().unwrap_or(""))
        .trim()
        .to_string()
}

/// The last `n` non-empty lines of a text, joined with " | " for a one-line message.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        "(no output)".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_014_texts_and_017_codes() {
        let cases: &[(Option<i32>, &str, &str)] = &[
            (
                Some(1),
                "Fatal: wrong password or no key found\n",
                "WrongPassword",
            ),
            (Some(12), "Fatal: something\n", "WrongPassword"),
            (
                Some(1),
                "Fatal: unable to open config file: stat /r/config: no such file or directory\nIs there a repository at the following location?\n/r\n",
                "RepoMissing",
            ),
            (Some(10), "", "RepoMissing"),
            (
                Some(1),
                "unable to create lock in backend: repository is already locked by PID 7 on h by root (UID 0, GID 0)\n",
                "Locked",
            ),
            (Some(11), "", "Locked"),
            (
                Some(1),
                "Fatal: create key in repository at /r failed: repository master key and config already initialized\n",
                "AlreadyExists",
            ),
            (Some(1), "boom\n", "Failed"),
        ];
        for (code, stderr, want) in cases {
            let e = ResticError::from_exit("cmd", *code, stderr, "/r");
            let got = format!("{e:?}");
            assert!(got.starts_with(want), "{stderr:?} -> {got}");
        }
    }

    #[test]
    fn usage_errors() {
        assert!(ResticError::RepoMissing { url: "x".into() }.is_usage());
        assert!(!ResticError::WrongPassword { url: "x".into() }.is_usage());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(tail("", 2), "(no output)");
    }
}
