//! `[copies.NAME]`: second repositories (3-2-1) that `omk-backup copy` fills with this
//! host's good snapshots. Each is read with the same raw type and the same validation as
//! `[repository]` (URL, password source, cache folder and whatever else a repository
//! takes), plus its own `retention` (default: the main rules). The host and the restic
//! binary are the primary's: a copied snapshot keeps its host, and one restic copies.

use super::error::ConfigError;
use super::{Config, Job, Repository, Validator, raw};
use crate::domain::{Retention, validate_job_name};
use std::collections::BTreeMap;
use toml::Spanned;

/// The name `status`, metrics and the report give the primary repository.
pub const PRIMARY: &str = "main";

/// [`PRIMARY`], for callers outside `config`.
pub fn primary_name() -> &'static str {
    PRIMARY
}

/// One validated `[copies.NAME]`.
#[derive(Debug, Clone)]
pub struct Copy {
    pub name: String,
    /// The copy's repository; `host` is the primary's (snapshots keep their host).
    pub repository: Repository,
    /// The copy's own keep rules; `None`: the same rules as the primary.
    pub retention: Option<Retention>,
}

impl Config {
    /// The copy named `name`, or a usage error listing the copies.
    pub fn copy_named(&self, name: &str) -> Result<&Copy, ConfigError> {
        self.copies.get(name).ok_or_else(|| {
            let known = if self.copies.is_empty() {
                "this config has no [copies.NAME] section".to_string()
            } else {
                format!(
                    "the copies are: {}",
                    self.copies.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            ConfigError::new(&self.file, format!("no copy named `{name}`")).hint(known)
        })
    }

    /// The retention a copy applies to a job: the copy's own rules when it has them,
    /// else the primary's rules for that job.
    pub fn copy_retention(&self, copy: &Copy, job: &Job) -> Retention {
        match &copy.retention {
            Some(r) => r.clone(),
            None => self.retention_for(job),
        }
    }
}

impl Validator<'_> {
    /// `[repository] retention` is a copy's key only: the main rules live in `[retention]`.
    pub(super) fn primary_has_no_retention(
        &self,
        r: &Spanned<raw::RawRepository>,
    ) -> Result<(), ConfigError> {
        match &r.get_ref().retention {
            Some(ret) => Err(self
                .err(ret, "repository.retention is not a [repository] key")
                .hint(
                    "put the main keep rules in [retention]; `retention` belongs in [copies.NAME]",
                )),
            None => Ok(()),
        }
    }

    /// Every `[copies.NAME]`, its name checked like a job name, its table like
    /// `[repository]`; a copy may not be the primary or another copy.
    pub(super) fn copies(
        &self,
        raw: Option<BTreeMap<Spanned<String>, Spanned<raw::RawRepository>>>,
        primary: &Repository,
    ) -> Result<BTreeMap<String, Copy>, ConfigError> {
        let mut copies: BTreeMap<String, Copy> = BTreeMap::new();
        for (name, table) in raw.unwrap_or_default() {
            let n = name.get_ref();
            if let Err(why) = validate_job_name(n) {
                let why = why.replace("a job name", "a copy name");
                return Err(self.err(&name, format!("copy name `{n}`: {why}")));
            }
            if n == PRIMARY {
                return Err(self
                    .err(
                        &name,
                        format!("copy name `{PRIMARY}` is the primary repository's"),
                    )
                    .hint("give the copy another name, e.g. [copies.offsite]"));
            }
            self.copy_keys(n, table.get_ref())?;
            let retention = table
                .get_ref()
                .retention
                .as_ref()
                .map(|r| r.get_ref().clone());
            if let Some(r) = &table.get_ref().retention
                && r.get_ref().is_empty()
            {
                return Err(self
                    .err(r, format!("copies.{n}.retention has no keep rule"))
                    .hint(
                        "e.g. retention = { keep_daily = 30 }, or remove it to use [retention]",
                    ));
            }
            let url_span = table.get_ref().url.clone();
            let mut repository = self.repository(table)?;
            // restic copy keeps a snapshot's host: the copy holds the primary's host.
            repository.host = primary.host.clone();
            repository.restic = primary.restic.clone();
            repository.stall_timeout = primary.stall_timeout;
            let same = std::iter::once((PRIMARY, primary))
                .chain(copies.values().map(|c| (c.name.as_str(), &c.repository)))
                .find(|(_, r)| r.url.expose() == repository.url.expose());
            if let Some((other, _)) = same {
                return Err(self
                    .err(&url_span, format!("copies.{n}.url is the same repository as `{other}`"))
                    .hint("a copy is a second, separate repository (another disk, a NAS, a rest-server)"));
            }
            copies.insert(
                n.clone(),
                Copy {
                    name: n.clone(),
                    repository,
                    retention,
                },
            );
        }
        Ok(copies)
    }

    /// Keys of `[repository]` that a copy takes from the primary instead.
    fn copy_keys(&self, name: &str, t: &raw::RawRepository) -> Result<(), ConfigError> {
        let refuse = [
            (
                "host",
                t.host.as_ref(),
                "copied snapshots keep the primary's host ([repository] host)",
            ),
            (
                "restic",
                t.restic.as_ref(),
                "one restic binary copies: the one [repository] restic names",
            ),
            (
                "stall_timeout",
                t.stall_timeout.as_ref(),
                "the primary's [repository] stall_timeout applies",
            ),
        ];
        for (key, v, why) in refuse {
            if let Some(v) = v {
                return Err(self
                    .err(v, format!("copies.{name}.{key} cannot be set for a copy"))
                    .hint(format!("remove it: {why}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    fn config(dir: &Path, copies: &str) -> Result<crate::config::Config, String> {
        std::fs::write(dir.join("pw"), "x\n").unwrap();
        let text = format!(
            "[repository]\nurl = \"/srv/main\"\nhost = \"nas-01\"\npassword_file = \"pw\"\n\n[retention]\nkeep_last = 3\n\n{copies}"
        );
        let file = dir.join("c.toml");
        parse(&file, &text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_copy_takes_the_primary_host_and_its_own_retention() {
        let d = tempfile::tempdir().unwrap();
        let c = config(
            d.path(),
            "[copies.offsite]\nurl = \"rest:http://u:secret@nas:8000/r/\"\npassword_file = \"pw\"\nretention = { keep_daily = 30 }\n",
        )
        .unwrap();
        let copy = &c.copies["offsite"];
        assert_eq!(copy.repository.host, "nas-01");
        assert_eq!(copy.retention.as_ref().unwrap().keep_daily, Some(30));
        assert!(!copy.repository.url.shown().contains("secret"));
    }

    #[test]
    fn bad_copies_are_refused_with_their_line() {
        let d = tempfile::tempdir().unwrap();
        for (copies, want) in [
            (
                "[copies.main]\nurl = \"/x\"\npassword_file = \"pw\"\n",
                "c.toml:9:",
            ),
            (
                "[copies.\"a b\"]\nurl = \"/x\"\npassword_file = \"pw\"\n",
                "copy name",
            ),
            (
                "[copies.o]\nurl = \"/srv/main\"\npassword_file = \"pw\"\n",
                "same repository as `main`",
            ),
            ("[copies.o]\nurl = \"/x\"\n", "no password_file"),
            (
                "[copies.o]\nurl = \"/x\"\npassword_file = \"pw\"\nhost = \"h\"\n",
                "copies.o.host",
            ),
            (
                "[copies.o]\nurl = \"/x\"\npassword_file = \"pw\"\nretention = {}\n",
                "no keep rule",
            ),
            (
                "[copies.o]\nurl = \"/x\"\npassword_file = \"pw\"\nbogus = 1\n",
                "unknown field",
            ),
        ] {
            let e = config(d.path(), copies).unwrap_err();
            assert!(e.contains(want), "{copies}: {e}");
        }
    }

    #[test]
    fn retention_in_repository_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("pw"), "x\n").unwrap();
        let text = "[repository]\nurl = \"/r\"\nhost = \"h\"\npassword_file = \"pw\"\nretention = { keep_last = 1 }\n";
        let e = parse(&d.path().join("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml:5:") && e.contains("[retention]"), "{e}");
    }
}
