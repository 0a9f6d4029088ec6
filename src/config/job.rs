//! `[jobs.NAME]`: one job's kind, what it backs up (paths or a database container),
//! its quiesce, password file, probes, shrink limit and notify overrides, each checked
//! against what its kind accepts.

use super::error::{self, ConfigError};
use super::raw::{RawJob, RawQuiesce};
use super::{Notify, Validator};
use crate::domain::{JobKind, QuiesceMode, Retention};
use crate::secret::read_password_file;
use std::path::PathBuf;
use toml::Spanned;

/// One backup job.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub kind: JobKind,
    /// The Docker engine running its container (`local` unless the job names another).
    pub engine: String,
    /// files jobs: what to back up (absolute).
    pub paths: Vec<PathBuf>,
    pub exclude: Vec<String>,
    pub quiesce: Option<Quiesce>,
    /// Database jobs: the container the dump runs in.
    pub container: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// postgres/mariadb: one database (else all); sqlite: the database file in the container.
    pub database: Option<String>,
    pub retention: Option<Retention>,
    /// The job's own notification targets (in addition to the global ones).
    pub notify: Option<Notify>,
    /// Where the job was defined, for `config check`.
    pub origin: JobOrigin,
    /// Database jobs: queries a restore test runs on the restored copy.
    pub probes: Vec<Probe>,
    /// `shrink_limit`: the percent files/bytes (dumps: bytes/rows) may fall against the
    /// last good snapshot before the backup fails as suspect ([`DEFAULT_SHRINK_LIMIT`]).
    pub shrink_limit: u8,
}

/// `shrink_limit` when the job does not set one: a drop of more than half fails.
pub const DEFAULT_SHRINK_LIMIT: u8 = 50;

/// A query whose output (trimmed) must equal `expect` in the restored database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub sql: String,
    pub expect: String,
    /// postgres/mariadb: the database to run it in (default: the job's, else `postgres`
    /// / none).
    pub database: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOrigin {
    /// Defined in the config file at this line.
    Config { line: usize },
    /// Discovered from a container's labels.
    Label { container: String },
}

/// Quiesce a container around a files job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiesce {
    pub container: String,
    pub mode: QuiesceMode,
}

impl Validator<'_> {
    pub(super) fn job(&self, name: &str, spanned: Spanned<RawJob>) -> Result<Job, ConfigError> {
        let line = error::line_col(self.text, spanned.span().start).0;
        let j = spanned.get_ref();
        let kind = JobKind::parse(j.kind.get_ref()).ok_or_else(|| {
            self.err(
                &j.kind,
                format!("jobs.{name}.kind: unknown kind `{}`", j.kind.get_ref()),
            )
            .hint("use one of: files, postgres, mariadb, sqlite")
        })?;
        let mut job = Job {
            name: name.to_string(),
            kind,
            engine: super::LOCAL_ENGINE.to_string(),
            paths: Vec::new(),
            exclude: j.exclude.clone().unwrap_or_default(),
            quiesce: None,
            container: j.container.as_ref().map(|c| c.get_ref().clone()),
            user: j.user.as_ref().map(|u| u.get_ref().clone()),
            password_file: None,
            database: j.database.as_ref().map(|d| d.get_ref().clone()),
            retention: j.retention.clone(),
            notify: match &j.notify {
                Some(n) => Some(self.notify(n.get_ref(), &format!("jobs.{name}.notify"))?),
                None => None,
            },
            origin: JobOrigin::Config { line },
            probes: Vec::new(),
            shrink_limit: self.shrink_limit(name, j)?,
        };
        job.probes = self.job_probes(name, kind, j)?;
        if let Some(pf) = &j.password_file {
            let path = self.resolve(pf.get_ref());
            read_password_file(&path).map_err(|e| {
                self.err(pf, format!("jobs.{name}.password_file: {e}"))
                    .hint("the file must be readable by this user and hold the password on its first line")
            })?;
            job.password_file = Some(path);
        }
        match kind {
            JobKind::Files => self.files_job(name, &spanned, &mut job)?,
            JobKind::Postgres | JobKind::Mariadb | JobKind::Sqlite => {
                self.database_job(name, &spanned, &job)?
            }
        }
        Ok(job)
    }

    /// `shrink_limit`: a percent, 0..=100 (0: any drop fails; 100: only a fall to zero).
    fn shrink_limit(&self, name: &str, j: &RawJob) -> Result<u8, ConfigError> {
        let Some(v) = &j.shrink_limit else {
            return Ok(super::DEFAULT_SHRINK_LIMIT);
        };
        u8::try_from(*v.get_ref())
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                self.err(
                    v,
                    format!(
                        "jobs.{name}.shrink_limit: {} is not a percent from 0 to 100",
                        v.get_ref()
                    ),
                )
                .hint("the backup fails when files or bytes fall by more than this percent against the last good snapshot (default 50)")
            })
    }

    /// `probes`: SQL run on a restored dump, so only for database jobs.
    fn job_probes(&self, name: &str, kind: JobKind, j: &RawJob) -> Result<Vec<Probe>, ConfigError> {
        let mut out = Vec::new();
        if let Some(probes) = &j.probes {
            if kind == JobKind::Files {
                return Err(self
                    .err(
                        probes,
                        format!("jobs.{name}.probes is not used by a files job"),
                    )
                    .hint("probes are SQL queries run on a restored database dump"));
            }
            for p in probes.get_ref() {
                if p.sql.get_ref().trim().is_empty() {
                    return Err(self.err(&p.sql, format!("jobs.{name}.probes: empty sql")));
                }
                out.push(Probe {
                    sql: p.sql.get_ref().clone(),
                    expect: p.expect.clone(),
                    database: p.database.clone(),
                });
            }
        }
        Ok(out)
    }

    /// A files job: no container fields, existing paths, an optional quiesce.
    fn files_job(
        &self,
        name: &str,
        spanned: &Spanned<RawJob>,
        job: &mut Job,
    ) -> Result<(), ConfigError> {
        let j = spanned.get_ref();
        for (field, present) in [
            ("container", &j.container),
            ("user", &j.user),
            ("database", &j.database),
        ] {
            if let Some(s) = present {
                return Err(self
                    .err(s, format!("jobs.{name}.{field} is not used by a files job"))
                    .hint("files jobs take paths (and optionally quiesce = { container, mode })"));
            }
        }
        let paths = j
            .paths
            .as_ref()
            .filter(|p| !p.get_ref().is_empty())
            .ok_or_else(|| {
                let e = match &j.paths {
                    Some(p) => self.err(p, format!("jobs.{name}.paths is empty")),
                    None => self.err(spanned, format!("jobs.{name} has no paths")),
                };
                e.hint("add paths = [\"/srv/data\"] with the folders to back up")
            })?;
        for p in paths.get_ref() {
            let path = self.resolve(p.get_ref());
            if !path.exists() {
                return Err(self
                    .err(
                        p,
                        format!("jobs.{name}.paths: {} does not exist", path.display()),
                    )
                    .hint("fix the path, or mount the volume before the backup runs"));
            }
            job.paths.push(path);
        }
        if let Some(q) = &j.quiesce {
            job.quiesce = Some(self.quiesce(name, q.get_ref())?);
        }
        Ok(())
    }

    /// A files job's `quiesce = { container, mode }`.
    fn quiesce(&self, name: &str, qr: &RawQuiesce) -> Result<Quiesce, ConfigError> {
        let mode = match qr.mode.get_ref().as_str() {
            "pause" => QuiesceMode::Pause,
            "stop" => QuiesceMode::Stop,
            other => {
                return Err(self
                    .err(
                        &qr.mode,
                        format!("jobs.{name}.quiesce.mode: unknown mode `{other}`"),
                    )
                    .hint("use \"pause\" or \"stop\""));
            }
        };
        if qr.container.get_ref().is_empty() {
            return Err(self.err(
                &qr.container,
                format!("jobs.{name}.quiesce.container is empty"),
            ));
        }
        Ok(Quiesce {
            container: qr.container.get_ref().clone(),
            mode,
        })
    }

    /// A database job: dumped live from its container, so no paths or quiesce.
    fn database_job(
        &self,
        name: &str,
        spanned: &Spanned<RawJob>,
        job: &Job,
    ) -> Result<(), ConfigError> {
        let j = spanned.get_ref();
        let kind = job.kind;
        if let Some(p) = &j.paths {
            return Err(self
                .err(p, format!("jobs.{name}.paths is not used by a {kind} job"))
                .hint("database jobs are dumped from their container; remove paths"));
        }
        if let Some(q) = &j.quiesce {
            return Err(self
                .err(
                    q,
                    format!("jobs.{name}.quiesce is not used by a {kind} job"),
                )
                .hint("database jobs are dumped live, without pausing; remove quiesce"));
        }
        if job.container.as_deref().is_none_or(str::is_empty) {
            return Err(self
                .err(spanned, format!("jobs.{name} has no container"))
                .hint(format!(
                    "add container = \"...\" naming the {kind} container"
                )));
        }
        if kind == JobKind::Sqlite && job.database.is_none() {
            return Err(self
                .err(spanned, format!("jobs.{name} has no database"))
                .hint(
                    "add database = \"/data/app.db\": the SQLite file's path inside the container",
                ));
        }
        Ok(())
    }
}
