//! The configuration file: where it is, what it says, and whether it makes sense.
//!
//! Reading goes in two steps: serde reads the TOML into `raw` types that keep spans,
//! then `validate` turns them into the typed `Config`, checking what serde cannot
//! (kinds, paths that exist, usable password files) and pointing at file:line:column.

mod bounds;
mod copies;
mod engines;
mod error;
mod job;
mod raw;
mod repository;
mod web;

pub use bounds::{DEFAULT_DOCKER_TIMEOUT, DEFAULT_MAX_RUNTIME};
pub use copies::{Copy, primary_name as copies_primary_name};
pub use engines::LOCAL_ENGINE;
pub use error::ConfigError;
pub use job::{DEFAULT_SHRINK_LIMIT, Job, JobOrigin, Probe, Quiesce};
pub use repository::{Compression, Transfer, machine_hostname, valid_host};
pub use web::{Cidr, WebConfig, parse_listen};

use crate::domain::{Retention, validate_job_name};
use crate::secret::read_password_file;
use raw::{RawConfig, RawJob};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The default config location when neither `--config` nor `$OMK_BACKUP_CONFIG` is set.
pub const DEFAULT_CONFIG: &str = "/etc/omk-backup/omk-backup.toml";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, and its folder (relative paths resolve against it).
    pub file: PathBuf,
    pub dir: PathBuf,
    pub catalog_path: PathBuf,
    pub docker_host: Option<String>,
    /// Discover jobs from container labels (`[docker] discover`, default true).
    pub docker_discover: bool,
    /// `[docker] label_path_roots`, canonical: where label-discovered paths may lie.
    pub label_path_roots: Vec<PathBuf>,
    pub repository: Repository,
    pub retention: Retention,
    /// Schedule file globs, already resolved against the config's folder.
    pub schedule_files: Option<Vec<String>>,
    /// `[schedule] grace`: how late a missed run is still caught up (else per-task defaults).
    pub schedule_grace: Option<std::time::Duration>,
    /// `[schedule] max_runtime`: a scheduled task running longer is stopped and fails
    /// (`None`: "0", no bound).
    pub schedule_max_runtime: Option<std::time::Duration>,
    /// `[docker] timeout`: the bound of one Engine API call (and of each silence in a
    /// streaming call).
    pub docker_timeout: std::time::Duration,
    /// `[retention] after_backup`: the daemon forgets right after a successful backup.
    pub retention_after_backup: bool,
    /// `[notify]`: where to report task outcomes (jobs may add their own).
    pub notify: Notify,
    /// `[metrics] textfile`: the Prometheus textfile written after each task.
    pub metrics_textfile: Option<PathBuf>,
    pub check: CheckPolicy,
    /// Where restore tests put their scratch folders (default: beside the catalog).
    pub restore_work_dir: Option<PathBuf>,
    /// Limits of database restore tests' scratch containers.
    pub scratch_limits: ScratchLimits,
    /// `[web]`: the dashboard.
    pub web: WebConfig,
    /// `[copies.NAME]`: the second repositories `copy` fills (by name).
    pub copies: BTreeMap<String, Copy>,
    /// `[engines.NAME] docker`: engines besides `local` (`[docker] host`), by name.
    pub engines: BTreeMap<String, String>,
    /// `[restore_test] docker`: scratch containers run there (the restore lab), not on
    /// the job's engine.
    pub restore_test_docker: Option<String>,
    pub jobs: BTreeMap<String, Job>,
}

/// `[restore_test] memory_mb / cpus / pids`: a scratch container's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScratchLimits {
    pub memory_mb: i64,
    pub cpus: f64,
    pub pids: i64,
}

impl Default for ScratchLimits {
    fn default() -> Self {
        ScratchLimits {
            memory_mb: 2048,
            cpus: 1.0,
            pids: 512,
        }
    }
}

/// Notification targets. URLs may hold tokens: they are never logged or sent in payloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    pub ping_url: Option<String>,
    pub webhook: Option<String>,
    pub webhook_token_file: Option<PathBuf>,
    pub topic: Option<String>,
    pub timeout: std::time::Duration,
    pub retries: u32,
}

impl Notify {
    pub fn is_empty(&self) -> bool {
        self.ping_url.is_none() && self.webhook.is_none()
    }
}

/// `[repository] stall_timeout` when not set.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Parse a duration such as `90s`, `30m`, `6h`, `2d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

/// `[check]`: every pack is read once per `period_days`, in `subsets` rotating parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckPolicy {
    pub period_days: u32,
    pub subsets: u32,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            period_days: 30,
            subsets: 30,
        }
    }
}

/// Where the restic repository is and how restic gets its password.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Credentials inside it are shown masked everywhere (`crate::redact`).
    pub url: crate::redact::RepoUrl,
    /// restic's `--host`: this instance's snapshots, retention and restores are scoped
    /// to it (a shared repository holds other hosts' snapshots too).
    pub host: String,
    /// A restic backup showing no progress this long is stopped and fails (`None`: never).
    pub stall_timeout: Option<std::time::Duration>,
    pub password: PasswordSource,
    pub restic: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// Bandwidth limits (KiB/s), compression and the TLS CA: `repository::Transfer`.
    pub transfer: Transfer,
    /// `[repository] maintenance`: `Some(true)` runs check/prune here, `Some(false)`
    /// never; `None` runs them unless another host claims them (docs/fleet.md).
    pub maintenance: Option<bool>,
}

impl Repository {
    /// A local repository path (no `backend:` prefix), which we may read directly.
    pub fn local_path(&self) -> Option<PathBuf> {
        local_repo_path(self.url.expose())
    }
}

/// How restic obtains the repository password. We never read it ourselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Command(String),
}

impl Config {
    /// The jobs named, or all jobs when none are; an unknown name is a usage error.
    pub fn select_jobs(&self, names: &[String]) -> Result<Vec<&Job>, ConfigError> {
        if names.is_empty() {
            return Ok(self.jobs.values().collect());
        }
        names
            .iter()
            .map(|n| {
                self.jobs.get(n).ok_or_else(|| {
                    ConfigError::new(&self.file, format!("no job named `{n}`"))
                        .hint(format!("the jobs are: {}", self.job_names()))
                })
            })
            .collect()
    }

    pub fn job_names(&self) -> String {
        if self.jobs.is_empty() {
            return "(none)".into();
        }
        self.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The retention for a job: the global rules with the job's own on top.
    pub fn retention_for(&self, job: &Job) -> Retention {
        match &job.retention {
            Some(r) => self.retention.overlay(r),
            None => self.retention.clone(),
        }
    }
}

/// Which config file to read: `--config`, else `$OMK_BACKUP_CONFIG`, else the default.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("OMK_BACKUP_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG),
    }
}

/// Read and validate a config file.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConfigError::new(file, "config file not found").hint(
            "pass --config FILE, set OMK_BACKUP_CONFIG, or create the file (README.md has an example)",
        ),
        _ => ConfigError::new(file, format!("cannot read the config file: {e}"))
            .hint("check the file's permissions"),
    })?;
    parse(file, &text)
}

/// Parse and validate config text that came from `file`.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        let hint = error::hint_for(&message);
        let mut err = match e.span() {
            Some(span) => ConfigError::at(file, text, span, message),
            None => ConfigError::new(file, message),
        };
        err.hint = hint;
        err
    })?;
    let abs_file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = abs_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Validator {
        file: &abs_file,
        text,
        dir: &dir,
    }
    .config(raw)
}

/// A local repository path: a URL without a restic backend prefix.
pub fn local_repo_path(url: &str) -> Option<PathBuf> {
    const BACKENDS: [&str; 9] = [
        "sftp:", "rest:", "s3:", "b2:", "azure:", "gs:", "swift:", "rclone:", "opendal:",
    ];
    if BACKENDS.iter().any(|b| url.starts_with(b)) {
        return None;
    }
    Some(PathBuf::from(url.strip_prefix("local:").unwrap_or(url)))
}

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    dir: &'a Path,
}

impl Validator<'_> {
    fn err<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, self.text, spanned.span(), message)
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let catalog_path = self.catalog_path(raw.catalog)?;
        let docker_discover = raw.docker.as_ref().and_then(|d| d.discover).unwrap_or(true);
        let label_path_roots = self.label_path_roots(raw.docker.as_ref())?;
        let docker_timeout = self.docker_timeout(raw.docker.as_ref())?;
        let docker_host = raw.docker.and_then(|d| d.host).map(|h| h.into_inner());
        let repository = match raw.repository {
            Some(r) => {
                self.primary_has_no_retention(&r)?;
                self.repository(r)?
            }
            None => {
                return Err(ConfigError::new(self.file, "missing the [repository] table").hint(
                    "add [repository] with url = \"...\" and password_file = \"...\" (or password_command)",
                ));
            }
        };
        let (retention, retention_after_backup) =
            raw.retention.map(|r| r.split()).unwrap_or_default();
        let (files, grace, max_runtime) = match raw.schedule {
            Some(s) => (s.files, s.grace, s.max_runtime),
            None => (None, None, None),
        };
        let schedule_max_runtime = self.max_runtime(max_runtime.as_ref())?;
        let schedule_files = files.map(|v| {
            v.iter()
                .map(|g| self.resolve(g.get_ref()).display().to_string())
                .collect()
        });
        let schedule_grace = match grace {
            Some(g) => Some(self.duration(&g, "schedule.grace")?),
            None => None,
        };
        let notify = match &raw.notify {
            Some(n) => self.notify(n, "notify")?,
            None => Notify::default(),
        };
        let metrics_textfile = self.metrics_textfile(raw.metrics)?;
        let check = self.check(raw.check)?;
        let scratch_limits = self.scratch_limits(raw.restore_test.as_ref())?;
        let restore_test_docker = match raw.restore_test.as_ref().and_then(|r| r.docker.as_ref()) {
            Some(d) => Some(self.docker_endpoint(d, "restore_test.docker")?),
            None => None,
        };
        let restore_work_dir = raw
            .restore_test
            .and_then(|r| r.work_dir)
            .map(|w| self.resolve(w.get_ref()));
        let web = self.web(raw.web)?;
        let copies = self.copies(raw.copies, &repository)?;
        let engines = self.engines(raw.engines)?;
        let jobs = self.jobs(raw.jobs, &engines)?;
        Ok(Config {
            file: self.file.to_path_buf(),
            dir: self.dir.to_path_buf(),
            catalog_path,
            docker_host,
            docker_discover,
            label_path_roots,
            repository,
            retention,
            schedule_files,
            schedule_grace,
            schedule_max_runtime,
            docker_timeout,
            retention_after_backup,
            notify,
            metrics_textfile,
            check,
            restore_work_dir,
            scratch_limits,
            web,
            copies,
            engines,
            restore_test_docker,
            jobs,
        })
    }

    /// `[catalog] path`, relative to the config's folder; `catalog.db` there if unset.
    fn catalog_path(&self, raw: Option<raw::RawCatalog>) -> Result<PathBuf, ConfigError> {
        match raw.and_then(|c| c.path) {
            Some(p) if p.get_ref().is_empty() => Err(self
                .err(&p, "catalog.path is empty")
                .hint("give a file name, e.g. \"catalog.db\"")),
            Some(p) => Ok(self.resolve(p.get_ref())),
            None => Ok(self.dir.join("catalog.db")),
        }
    }

    /// `[docker] label_path_roots`: absolute folders that exist, resolved once.
    fn label_path_roots(
        &self,
        docker: Option<&raw::RawDocker>,
    ) -> Result<Vec<PathBuf>, ConfigError> {
        let mut label_path_roots = Vec::new();
        for r in docker
            .and_then(|d| d.label_path_roots.as_ref())
            .into_iter()
            .flatten()
        {
            if !Path::new(r.get_ref()).is_absolute() {
                return Err(self
                    .err(
                        r,
                        format!(
                            "docker.label_path_roots: `{}` is not an absolute path",
                            r.get_ref()
                        ),
                    )
                    .hint("list the host folders labels may back up, e.g. [\"/srv/appdata\"]"));
            }
            // Resolved once (symlinks included): a label's path is compared against this.
            let canonical = std::fs::canonicalize(r.get_ref()).map_err(|e| {
                self.err(
                    r,
                    format!("docker.label_path_roots: `{}`: {e}", r.get_ref()),
                )
                .hint("the folder must exist on this host")
            })?;
            label_path_roots.push(canonical);
        }
        Ok(label_path_roots)
    }

    /// `[metrics] textfile`, relative to the config's folder.
    fn metrics_textfile(
        &self,
        raw: Option<raw::RawMetrics>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        Ok(match raw.and_then(|m| m.textfile) {
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self
                .err(&p, "metrics.textfile is empty")
                .hint("give a file path, e.g. \"/var/lib/node_exporter/omk-backup.prom\", or remove the key"));
            }
            Some(p) => Some(self.resolve(p.get_ref())),
            None => None,
        })
    }

    /// `[check]`: the period and subsets of `restic check --read-data-subset`.
    fn check(&self, raw: Option<raw::RawCheck>) -> Result<CheckPolicy, ConfigError> {
        let mut check = CheckPolicy::default();
        if let Some(c) = raw {
            if let Some(d) = c.period_days {
                if !(1..=3650).contains(d.get_ref()) {
                    return Err(self
                        .err(&d, "check.period_days must be between 1 and 3650")
                        .hint("the days within which every pack is read once, e.g. 30"));
                }
                check.period_days = *d.get_ref() as u32;
            }
            if let Some(n) = c.subsets {
                if !(1..=10_000).contains(n.get_ref()) {
                    return Err(self
                    .err(&n, "check.subsets must be between 1 and 10000")
                    .hint("how many checks it takes to read every pack once, e.g. 30 for daily checks over 30 days"));
                }
                check.subsets = *n.get_ref() as u32;
            }
        }
        Ok(check)
    }

    /// `[restore_test]` memory, CPU and process limits for scratch containers.
    fn scratch_limits(
        &self,
        raw: Option<&raw::RawRestoreTest>,
    ) -> Result<ScratchLimits, ConfigError> {
        let mut scratch_limits = ScratchLimits::default();
        if let Some(rt) = raw {
            if let Some(m) = &rt.memory_mb {
                if !(64..=1_048_576).contains(m.get_ref()) {
                    return Err(self
                    .err(m, "restore_test.memory_mb must be between 64 and 1048576")
                    .hint("the scratch container's memory in MiB; its database lives on tmpfs inside it, so give it the restored size plus the engine's needs"));
                }
                scratch_limits.memory_mb = *m.get_ref();
            }
            if let Some(c) = &rt.cpus {
                if !(*c.get_ref() > 0.0 && *c.get_ref() <= 1024.0) {
                    return Err(self
                        .err(c, "restore_test.cpus must be above 0 (e.g. 1 or 0.5)")
                        .hint("how many CPUs a scratch container may use"));
                }
                scratch_limits.cpus = *c.get_ref();
            }
            if let Some(p) = &rt.pids {
                if !(16..=65_536).contains(p.get_ref()) {
                    return Err(self
                        .err(p, "restore_test.pids must be between 16 and 65536")
                        .hint("the scratch container's process limit, e.g. 512"));
                }
                scratch_limits.pids = *p.get_ref();
            }
        }
        Ok(scratch_limits)
    }

    /// `[jobs.NAME]` tables, each name checked before its table.
    fn jobs(
        &self,
        raw: Option<BTreeMap<Spanned<String>, Spanned<RawJob>>>,
        engines: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Job>, ConfigError> {
        let mut jobs = BTreeMap::new();
        for (name, job) in raw.unwrap_or_default() {
            if let Err(why) = validate_job_name(name.get_ref()) {
                return Err(self.err(&name, format!("job name `{}`: {why}", name.get_ref())));
            }
            let engine = self.job_engine(name.get_ref(), job.get_ref().engine.as_ref(), engines)?;
            let mut job = self.job(name.get_ref(), job)?;
            job.engine = engine;
            jobs.insert(job.name.clone(), job);
        }
        Ok(jobs)
    }

    fn duration(&self, v: &Spanned<String>, key: &str) -> Result<std::time::Duration, ConfigError> {
        parse_duration(v.get_ref()).ok_or_else(|| {
            self.err(v, format!("{key}: `{}` is not a duration", v.get_ref()))
                .hint("write a number with a unit: 90s, 30m, 6h, 2d")
        })
    }

    fn notify(&self, n: &raw::RawNotify, key: &str) -> Result<Notify, ConfigError> {
        for (field, url) in [("ping_url", &n.ping_url), ("webhook", &n.webhook)] {
            if let Some(u) = url {
                let v = u.get_ref();
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(self
                        .err(
                            u,
                            format!("{key}.{field} is not an http:// or https:// URL"),
                        )
                        .hint("e.g. https://hc-ping.com/<uuid> or https://ntfy.sh/<topic>"));
                }
            }
        }
        let webhook_token_file = match &n.webhook_token_file {
            Some(f) => {
                let path = self.resolve(f.get_ref());
                read_password_file(&path).map_err(|e| {
                    self.err(f, format!("{key}.webhook_token_file: {e}"))
                        .hint("the file must be readable by this user and hold the token on its first line")
                })?;
                Some(path)
            }
            None => None,
        };
        let timeout = match &n.timeout {
            Some(t) => self.duration(t, &format!("{key}.timeout"))?,
            None => std::time::Duration::from_secs(10),
        };
        Ok(Notify {
            ping_url: n.ping_url.as_ref().map(|u| u.get_ref().clone()),
            webhook: n.webhook.as_ref().map(|u| u.get_ref().clone()),
            webhook_token_file,
            topic: n.topic.clone(),
            timeout,
            retries: n.retries.unwrap_or(2).min(10),
        })
    }
}

#[cfg(test)]
mod tests;
