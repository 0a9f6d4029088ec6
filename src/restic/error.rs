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
    #[error(
        "the server of {url} refused the credentials in repository.url (HTTP {status}): check the user and password in the URL (they are not shown here)"
    )]
    AccessDenied { url: String, status: u16 },
    #[error(
        "the TLS certificate of the server of {url} is not trusted ({detail}): set [repository] cacert to the PEM file of the CA that signed it, or fix the cacert given"
    )]
    TlsUntrusted { url: String, detail: String },
    #[error(
        "cannot reach the sftp server of {url}: {detail}; check that the server is up and the host, port and Host entry ssh uses (~/.ssh/config)"
    )]
    Unreachable { url: String, detail: String },
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
    #[error("restic could not restore every file: {problems}")]
    RestoreIncomplete { problems: String },
    #[error("`restic {command}` answered something unexpected: {detail}")]
    Protocol { command: String, detail: String },
    #[error(
        "`restic {command}` stalled after {} without progress and was stopped: the source or the repository stopped answering (an unmounted share, a hung NFS server, a stalled network); nothing was recorded — fix it and run again, or raise [repository] stall_timeout",
        short_duration(*after)
    )]
    Stalled {
        command: String,
        after: std::time::Duration,
    },
    #[error("`restic {command}` was interrupted")]
    Interrupted { command: String },
}

/// `90s`, `30m`, `2h`: how the config writes it.
pub fn short_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

impl ResticError {
    /// Errors the user fixes in the setup or config (exit code 2), not run failures.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ResticError::NotInstalled { .. }
                | ResticError::Unsupported { .. }
                | ResticError::RepoMissing { .. }
                | ResticError::AccessDenied { .. }
                | ResticError::TlsUntrusted { .. }
                | ResticError::AlreadyExists { .. }
        )
    }

    /// Classify a finished command from its exit code and standard error.
    pub(crate) fn from_exit(
        command: &str,
        code: Option<i32>,
        stderr: &str,
        repo: &crate::redact::RepoUrl,
    ) -> ResticError {
        // restic may echo the location it was given, credentials included.
        let scrubbed = repo.scrub(stderr);
        let stderr = scrubbed.as_str();
        let url = repo.shown();
        let has = |s: &str| stderr.contains(s);
        if code == Some(12) || has("wrong password or no key found") {
            return ResticError::WrongPassword {
                url: url.to_string(),
            };
        }
        // A REST server's answer to bad basic-auth credentials; restic 0.14 and 0.18 report
        // it as "unable to open config file", which must not read as "no repository".
        for status in [401u16, 403] {
            if has(&format!("unexpected HTTP response ({status})")) {
                return ResticError::AccessDenied {
                    url: url.to_string(),
                    status,
                };
            }
        }
        // restic 0.18 sometimes loses ssh's own message ("read |0: file already closed").
        if has("ssh: connect to host ")
            || has("ssh: Could not resolve hostname")
            || has("unable to start the sftp session")
        {
            let detail = if has("ssh: ") {
                let line = first_line_with(stderr, "ssh: ");
                line.rsplit("ssh: ")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            } else {
                "ssh could not open an sftp session".to_string()
            };
            return ResticError::Unreachable {
                url: url.to_string(),
                detail,
            };
        }
        if has("x509: ") || has("tls: failed to verify certificate") {
            return ResticError::TlsUntrusted {
                url: url.to_string(),
                detail: first_line_with(stderr, "x509: ")
                    .rsplit("x509: ")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
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

/// Condense a failed `restic restore`'s stderr (0.14 retries a missing pack with
/// back-off and repeats it per blob) into what a person needs: which packs are missing,
/// which files could not be restored and why. `None` when it recognises nothing.
pub fn restore_problems(stderr: &str) -> Option<String> {
    let mut missing: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    // `Failed` keeps the tail joined by " | "; accept both forms.
    for line in stderr.lines().flat_map(|l| l.split(" | ")).map(str::trim) {
        if line.contains("no such file or directory")
            && let Some(i) = line.find("/data/")
        {
            let id: String = line[i + 6..]
                .chars()
                .skip(3)
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            if id.len() == 64 && !missing.iter().any(|m| m.starts_with(&id[..10])) {
                missing.push(format!("{} (data/{}/{})", &id[..10], &id[..2], id));
            }
        }
        let Some(rest) = line.strip_prefix("ignoring error for ") else {
            continue;
        };
        let Some((path, why)) = rest.split_once(": ") else {
            continue;
        };
        if why.starts_with("UtimesNano") || why.starts_with("lchown") {
            continue;
        }
        let why = if why.contains("ciphertext verification failed") {
            "damaged data (ciphertext verification failed)".to_string()
        } else if why.contains("no such file or directory") && why.contains("/data/") {
            "its pack is missing".to_string()
        } else {
            why.chars().take(160).collect()
        };
        let entry = format!("{path}: {why}");
        if !files.contains(&entry) {
            files.push(entry);
        }
    }
    if missing.is_empty() && files.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    if !missing.is_empty() {
        out.push(format!(
            "{} pack file(s) missing from the repository: {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    if !files.is_empty() {
        let more = files.len().saturating_sub(8);
        let mut list = files.into_iter().take(8).collect::<Vec<_>>().join("; ");
        if more > 0 {
            list.push_str(&format!("; and {more} more"));
        }
        out.push(format!("not restored: {list}"));
    }
    Some(out.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_problems_condense_014_and_018() {
        let s014 = "Load(<data/1831b4f029>, 500100, 0) returned error, retrying after 1.58s: open /r/data/18/1831b4f029643200f101502f8d82c415286af21c101da306a3014272c5bb3b29: no such file or directory\n\
Load(<data/1831b4f029>, 500100, 0) returned error, retrying after 2.3s: open /r/data/18/1831b4f029643200f101502f8d82c415286af21c101da306a3014272c5bb3b29: no such file or directory\n\
ignoring error for /d/big.bin: StreamPack: open /r/data/18/1831b4f029643200f101502f8d82c415286af21c101da306a3014272c5bb3b29: no such file or directory\n\
ignoring error for /d/big.bin: UtimesNano: no such file or directory\nFatal: There were 2 errors\n";
        let got = restore_problems(s014).unwrap();
        assert_eq!(
            got,
            "1 pack file(s) missing from the repository: 1831b4f029 (data/18/1831b4f029643200f101502f8d82c415286af21c101da306a3014272c5bb3b29); not restored: /d/big.bin: its pack is missing"
        );
        let s018 = "ignoring error for /d/big.bin: decrypting blob <data/fbdf4781> from 26e26fa4 failed: ciphertext verification failed\nignoring error for /d/big.bin: lchown /x: no such file or directory\nFatal: There were 2 errors\n";
        assert_eq!(
            restore_problems(s018).unwrap(),
            "not restored: /d/big.bin: damaged data (ciphertext verification failed)"
        );
        assert_eq!(restore_problems("Fatal: boom\n"), None);
    }

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
            (
                Some(1),
                "Fatal: unable to open config file: unexpected HTTP response (401): 401 Unauthorized\nIs there a repository at the following location?\nrest:http://omk:***@127.0.0.1:2380/x/\n",
                "AccessDenied",
            ),
            (
                Some(10),
                "Fatal: unable to open config file: unexpected HTTP response (401): 401 Unauthorized\n",
                "AccessDenied",
            ),
        ];
        for (code, stderr, want) in cases {
            let e =
                ResticError::from_exit("cmd", *code, stderr, &crate::redact::RepoUrl::new("/r"));
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
