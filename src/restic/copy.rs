//! `restic copy` and `restic init --copy-chunker-params`: a second repository filled
//! from this one. The source goes in the child's environment like the repository
//! itself (`RESTIC_FROM_REPOSITORY`, `RESTIC_FROM_PASSWORD_FILE` /
//! `RESTIC_FROM_PASSWORD_COMMAND`, read by restic 0.14 and 0.18 alike), never on argv.
//! The copy's snapshots carry `original` (the source snapshot's id) on both versions:
//! that is how the catalog learns which snapshot of the copy is which.

use super::{Restic, ResticError, spawn_error};
use crate::config::{PasswordSource, Repository};
use std::collections::BTreeSet;
use tokio::process::Command;

impl Restic {
    /// The same restic binary and host, bound to another repository (a copy).
    pub fn for_repository(&self, repo: &Repository) -> Restic {
        Restic {
            binary: self.binary.clone(),
            url: repo.url.clone(),
            host: self.host.clone(),
            stall_timeout: self.stall_timeout,
            password: repo.password.clone(),
            cache_dir: repo.cache_dir.clone().or_else(|| self.cache_dir.clone()),
            transfer: repo.transfer.clone(),
            may_unlock: self.may_unlock,
            version: self.version,
            lock_wait: self.lock_wait,
        }
    }

    /// A command on this repository with `from` as restic's source repository.
    fn command_from(&self, from: &Restic, args: &[&str]) -> Command {
        let mut c = self.command(args);
        for var in [
            "RESTIC_FROM_PASSWORD",
            "RESTIC_FROM_PASSWORD_FILE",
            "RESTIC_FROM_PASSWORD_COMMAND",
            "RESTIC_FROM_REPOSITORY",
            "RESTIC_FROM_REPOSITORY_FILE",
            "RESTIC_FROM_KEY_HINT",
        ] {
            c.env_remove(var);
        }
        c.env("RESTIC_FROM_REPOSITORY", from.url.expose());
        match &from.password {
            PasswordSource::File(p) => c.env("RESTIC_FROM_PASSWORD_FILE", p),
            PasswordSource::Command(cmd) => c.env("RESTIC_FROM_PASSWORD_COMMAND", cmd),
        };
        c
    }

    /// Run a two-repository command; its stderr is scrubbed of both URLs.
    async fn run_from(&self, from: &Restic, args: &[&str]) -> Result<Vec<u8>, ResticError> {
        let out = self
            .command_from(from, args)
            .output()
            .await
            .map_err(|e| spawn_error(&self.binary, e))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = from.url.scrub(&String::from_utf8_lossy(&out.stderr));
        Err(ResticError::from_exit(
            &args.join(" "),
            out.status.code(),
            &stderr,
            &self.url,
        ))
    }

    /// Create this repository with `from`'s chunker parameters, so data copied from it
    /// deduplicates. Only ever on the user's explicit request (`copy --init`).
    pub async fn init_copy_of(&self, from: &Restic) -> Result<(), ResticError> {
        self.run_from(from, &["init", "--copy-chunker-params"])
            .await
            .map(|_| ())
    }

    /// The ids of a *local* repository's snapshots, read from its `snapshots/` folder
    /// (restic names each snapshot file by its id); `None` for any other backend, or a
    /// folder that cannot be read.
    pub fn local_snapshot_ids(&self) -> Option<BTreeSet<String>> {
        let dir = crate::config::local_repo_path(self.url.expose())?;
        let entries = std::fs::read_dir(dir.join("snapshots")).ok()?;
        let mut ids = BTreeSet::new();
        for e in entries {
            let name = e.ok()?.file_name().into_string().ok()?;
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                ids.insert(name);
            }
        }
        Some(ids)
    }

    /// Copy these snapshots of `from` into this repository. restic skips one already
    /// copied (it compares `original`), so a repeat copies nothing twice. A stale lock
    /// (a killed copy) is removed from both repositories and the copy retried once.
    /// Returns what restic said of each source snapshot ([`parse_copy_report`]).
    pub async fn copy_from(
        &self,
        from: &Restic,
        ids: &[String],
    ) -> Result<Vec<CopiedSnapshot>, ResticError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // `-v`: restic 0.18 reports a snapshot the copy already holds only when verbose.
        let mut args = vec!["copy", "-v"];
        args.extend(ids.iter().map(String::as_str));
        let out = match self.run_from(from, &args).await {
            Err(ResticError::Locked { .. }) if self.may_unlock => {
                self.unlock().await?;
                from.unlock().await?;
                self.run_from(from, &args).await?
            }
            other => other?,
        };
        Ok(parse_copy_report(&String::from_utf8_lossy(&out)))
    }
}

/// One source snapshot as `restic copy` reported it: the copy's id (new, or the one it
/// already had). Both are short ids (restic prints 8 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedSnapshot {
    pub source: String,
    pub copy: String,
}

/// What `restic copy -v` printed (0.14 and 0.18 alike, on stdout; 0.18 prints the
/// `skipping` line only with `-v`): `snapshot S of [paths] at TIME…` then `snapshot C saved` for a copy made,
/// or `skipping source snapshot S, was already copied to snapshot C`. Anything else
/// (progress, blank lines) is ignored; a `saved` line without a source line before it
/// is not paired. Callers check every id against the repository before trusting it.
pub fn parse_copy_report(out: &str) -> Vec<CopiedSnapshot> {
    let hex = |s: &str| (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut source: Option<&str> = None;
    let mut said = Vec::new();
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("skipping source snapshot ") {
            source = None;
            if let Some((s, c)) = rest.split_once(", was already copied to snapshot ")
                && hex(s)
                && hex(c)
            {
                said.push(CopiedSnapshot {
                    source: s.to_string(),
                    copy: c.to_string(),
                });
            }
        } else if let Some(rest) = line.strip_prefix("snapshot ") {
            if let Some(c) = rest.strip_suffix(" saved") {
                if let Some(s) = source.take()
                    && hex(c)
                {
                    said.push(CopiedSnapshot {
                        source: s.to_string(),
                        copy: c.to_string(),
                    });
                }
            } else if let Some((s, _)) = rest.split_once(" of [") {
                source = hex(s).then_some(s);
            }
        }
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(s: &str, c: &str) -> CopiedSnapshot {
        CopiedSnapshot {
            source: s.into(),
            copy: c.into(),
        }
    }

    #[test]
    fn the_copy_report_of_both_versions_pairs_sources_with_copies() {
        // restic 0.14.0, a copy made and one already there.
        let v014 = "\nsnapshot ac4773bb of [/data] at 2026-12-01 23:48:54.05 +0000 UTC)\n  copy started, this may take a while...\n[0:08] 100.00%  54 / 54 packs copied\n\nsnapshot 88df92aa saved\n\nsnapshot 11112222 of [/data] at 2026-12-01 23:49:00 +0000 UTC)\nskipping source snapshot 11112222, was already copied to snapshot 33334444\n";
        assert_eq!(
            parse_copy_report(v014),
            vec![pair("ac4773bb", "88df92aa"), pair("11112222", "33334444")]
        );
        // restic 0.18.0 adds "by user@host".
        let v018 = "\nsnapshot ac4773bb of [/data] at 2026-12-01 23:48:54 +0000 UTC by root@vm\n  copy started, this may take a while...\n[0:05] 100.00%  54 / 54 packs copied\n\nsnapshot f6bd84ab saved\n";
        assert_eq!(parse_copy_report(v018), vec![pair("ac4773bb", "f6bd84ab")]);
    }

    #[test]
    fn only_a_saved_line_after_a_source_line_is_paired() {
        // A saved line with no source before it, ids that are not hex. (A path with a
        // newline can still forge a pair: the caller checks each copy id against the
        // repository's own snapshot files before recording it.)
        let odd = "snapshot 88df92aa saved\nsnapshot zzzzzzzz of [/x] at t\nsnapshot 12345678 saved\nsnapshot abcdef01 of [/a\nsnapshot 99999999 saved\n";
        assert_eq!(parse_copy_report(odd), vec![pair("abcdef01", "99999999")]);
        assert!(parse_copy_report("").is_empty());
    }
}
