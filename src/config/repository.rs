//! `[repository]`: the restic repository's URL, its password source, the host name
//! snapshots are made under, the stall timeout, and the restic binary and cache to use.

use super::error::ConfigError;
use super::{DEFAULT_STALL_TIMEOUT, PasswordSource, Repository, Validator, local_repo_path, raw};
use crate::secret::read_password_file;
use std::path::PathBuf;
use toml::Spanned;

impl Validator<'_> {
    pub(super) fn repository(
        &self,
        r: Spanned<raw::RawRepository>,
    ) -> Result<Repository, ConfigError> {
        let span_holder = &r;
        let r = r.get_ref();
        let url = r.url.get_ref().trim();
        if url.is_empty() {
            return Err(self
                .err(&r.url, "repository.url is empty")
                .hint("give a restic repository URL: a local path, sftp:, rest:, s3:, ..."));
        }
        let url = match local_repo_path(url) {
            Some(p) if p.is_relative() => self.dir.join(p).display().to_string(),
            _ => url.to_string(),
        };
        let password = match (&r.password_file, &r.password_command) {
            (Some(_), Some(c)) => {
                return Err(self
                    .err(c, "repository has both password_file and password_command")
                    .hint("keep one of them"));
            }
            (Some(f), None) => {
                let path = self.resolve(f.get_ref());
                read_password_file(&path).map_err(|e| {
                    self.err(f, format!("repository.password_file: {e}")).hint(
                        "the file must be readable by this user and hold the repository password on its first line",
                    )
                })?;
                PasswordSource::File(path)
            }
            (None, Some(c)) => {
                if c.get_ref().trim().is_empty() {
                    return Err(self.err(c, "repository.password_command is empty"));
                }
                PasswordSource::Command(c.get_ref().clone())
            }
            (None, None) => {
                return Err(self.err(span_holder, "repository has no password_file or password_command")
                    .hint("add password_file = \"/run/secrets/restic_password\" (secrets never go in the config text)"));
            }
        };
        let host = match &r.host {
            Some(h) => {
                let v = h.get_ref().trim();
                if let Err(why) = valid_host(v) {
                    return Err(self.err(h, format!("repository.host {v:?} {why}")).hint(
                        "use the machine's short name, e.g. host = \"nas-01\" (letters, digits, `.`, `_`, `-`)",
                    ));
                }
                v.to_string()
            }
            None => machine_hostname().map_err(|why| {
                self.err(span_holder, format!("repository.host is not set and {why}"))
                    .hint("set [repository] host = \"NAME\" (restic's --host for this machine's snapshots)")
            })?,
        };
        let stall_timeout = match &r.stall_timeout {
            None => Some(DEFAULT_STALL_TIMEOUT),
            Some(v) if v.get_ref().trim() == "0" => None,
            Some(v) => Some(self.duration(v, "repository.stall_timeout")?),
        };
        Ok(Repository {
            url: crate::redact::RepoUrl::new(url),
            host,
            stall_timeout,
            password,
            restic: r.restic.as_ref().map(|p| PathBuf::from(p.get_ref())),
            cache_dir: r.cache_dir.as_ref().map(|p| self.resolve(p.get_ref())),
            // Fleet: which instance maintains a shared repository (docs/fleet.md).
            maintenance: r.maintenance.as_ref().map(|m| *m.get_ref()),
        })
    }
}

/// A restic host name we can pass to `--host` and filter on: restic splits a filter at
/// commas, so only plain name characters.
pub fn valid_host(h: &str) -> Result<(), &'static str> {
    if h.is_empty() {
        return Err("is empty");
    }
    if h.len() > 253 {
        return Err("is longer than 253 characters");
    }
    if !h
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("holds characters other than letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// The kernel's host name — what restic itself records when `--host` is not given, so
/// snapshots made before `[repository] host` existed stay this host's.
pub fn machine_hostname() -> Result<String, String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(|e| {
        format!("the machine's host name cannot be read (/proc/sys/kernel/hostname: {e})")
    })?;
    let h = raw.trim().to_string();
    valid_host(&h).map_err(|why| format!("the machine's host name {h:?} {why}"))?;
    Ok(h)
}
