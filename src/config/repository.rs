//! `[repository]`: the restic repository's URL, its password source, the host name
//! snapshots are made under, the stall timeout, the restic binary and cache to use, and
//! how data moves ([`Transfer`]: bandwidth limits, compression, the TLS CA). The copies
//! of `[copies.NAME]` are validated by the same [`Validator::repository`].

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
            transfer: self.transfer(r)?,
            // Fleet: which instance maintains a shared repository (docs/fleet.md).
            maintenance: r.maintenance.as_ref().map(|m| *m.get_ref()),
        })
    }

    fn transfer(&self, r: &raw::RawRepository) -> Result<Transfer, ConfigError> {
        let limit = |v: &Option<Spanned<i64>>, key: &str| match v {
            None => Ok(None),
            Some(n) if *n.get_ref() == 0 => Ok(None),
            Some(n) => u32::try_from(*n.get_ref()).map(Some).map_err(|_| {
                self.err(
                    n,
                    format!("repository.{key} = {} is not a rate in KiB/s", n.get_ref()),
                )
                .hint("give a whole number of KiB/s, e.g. 2048 for 2 MiB/s; 0 means unlimited")
            }),
        };
        let compression = match &r.compression {
            None => None,
            Some(c) => Some(Compression::parse(c.get_ref()).ok_or_else(|| {
                self.err(c, format!("repository.compression = {:?} is not a compression mode", c.get_ref()))
                    .hint("use \"auto\", \"max\" or \"off\" (restic's --compression; needs a version 2 repository)")
            })?),
        };
        let cacert = match &r.cacert {
            None => None,
            Some(c) => {
                let path = self.resolve(c.get_ref());
                let pem = std::fs::read(&path).map_err(|e| {
                    self.err(c, format!("repository.cacert {}: {e}", path.display()))
                        .hint("point it at the PEM file of the CA that signed the REST server's certificate")
                })?;
                if memchr::memmem::find(&pem, b"-----BEGIN CERTIFICATE-----").is_none() {
                    return Err(self
                        .err(
                            c,
                            format!(
                                "repository.cacert {} holds no PEM certificate",
                                path.display()
                            ),
                        )
                        .hint(
                            "give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)",
                        ));
                }
                Some(path)
            }
        };
        Ok(Transfer {
            limit_upload: limit(&r.limit_upload, "limit_upload")?,
            limit_download: limit(&r.limit_download, "limit_download")?,
            compression,
            cacert,
        })
    }
}

/// How restic moves data to and from one repository: passed to every restic call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transfer {
    /// restic `--limit-upload`, KiB/s (`None`: unlimited).
    pub limit_upload: Option<u32>,
    /// restic `--limit-download`, KiB/s (`None`: unlimited).
    pub limit_download: Option<u32>,
    /// restic `--compression` (`None`: restic's default, `auto`).
    pub compression: Option<Compression>,
    /// restic `--cacert`, and the CA the REST raw-file reader trusts.
    pub cacert: Option<PathBuf>,
}

/// restic's `--compression` modes (repository format version 2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Auto,
    Max,
    Off,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Compression> {
        match s.trim() {
            "auto" => Some(Compression::Auto),
            "max" => Some(Compression::Max),
            "off" => Some(Compression::Off),
            _ => None,
        }
    }

    /// The word restic takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Auto => "auto",
            Compression::Max => "max",
            Compression::Off => "off",
        }
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

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError, parse};
    use super::*;

    fn parse_in(dir: &std::path::Path, extra: &str) -> Result<Config, ConfigError> {
        std::fs::write(dir.join("pw"), "secret\n").unwrap();
        let text = format!("[repository]\nurl = \"repo\"\npassword_file = \"pw\"\n{extra}");
        parse(&dir.join("omk.toml"), &text)
    }

    #[test]
    fn transfer_settings_parse_and_zero_means_unlimited() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nx\n").unwrap();
        let c = parse_in(
            d.path(),
            "limit_upload = 2048\nlimit_download = 0\ncompression = \"max\"\ncacert = \"ca.pem\"\n",
        )
        .unwrap();
        let t = c.repository.transfer;
        assert_eq!(t.limit_upload, Some(2048));
        assert_eq!(t.limit_download, None);
        assert_eq!(t.compression, Some(Compression::Max));
        assert_eq!(t.cacert, Some(d.path().join("ca.pem")));
        let none = parse_in(d.path(), "").unwrap().repository.transfer;
        assert_eq!(none, Transfer::default());
    }

    #[test]
    fn bad_transfer_settings_name_their_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("notpem"), "hello\n").unwrap();
        for (extra, fragment, line) in [
            ("limit_upload = -1\n", "repository.limit_upload = -1", 4),
            (
                "limit_download = 5000000000\n",
                "repository.limit_download",
                4,
            ),
            ("compression = \"fast\"\n", "not a compression mode", 4),
            ("cacert = \"missing.pem\"\n", "repository.cacert", 4),
            ("cacert = \"notpem\"\n", "holds no PEM certificate", 4),
        ] {
            let e = parse_in(d.path(), extra).expect_err(extra);
            assert!(e.message.contains(fragment), "{extra}: {e}");
            assert_eq!(e.position.map(|p| p.0), Some(line), "{extra}: {e}");
            assert!(e.hint.is_some(), "{extra}: {e}");
        }
    }
}
