//! The TOML document as serde reads it, with spans kept for the fields we validate.

use crate::domain::Retention;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub catalog: Option<RawCatalog>,
    pub docker: Option<RawDocker>,
    pub repository: Option<Spanned<RawRepository>>,
    pub retention: Option<RawRetention>,
    pub schedule: Option<RawSchedule>,
    pub notify: Option<RawNotify>,
    pub metrics: Option<RawMetrics>,
    pub check: Option<RawCheck>,
    pub restore_test: Option<RawRestoreTest>,
    pub web: Option<RawWeb>,
    /// `[copies.NAME]`: second repositories (3-2-1), each a `[repository]`-like table.
    pub copies: Option<BTreeMap<Spanned<String>, Spanned<RawRepository>>>,
    /// `[engines.NAME]`: more Docker engines (see `config/engines.rs`).
    pub engines: Option<BTreeMap<Spanned<String>, RawEngine>>,
    pub jobs: Option<BTreeMap<Spanned<String>, Spanned<RawJob>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    pub host: Option<Spanned<String>>,
    /// Make jobs from containers labelled `omk-backup.enable=true` (default true).
    pub discover: Option<bool>,
    /// Label-discovered `omk-backup.paths` must lie below one of these (default: none,
    /// i.e. labels cannot name host paths).
    pub label_path_roots: Option<Vec<Spanned<String>>>,
    /// The bound of one Engine API call, and of each silence in a streaming one.
    pub timeout: Option<Spanned<String>>,
}

/// `[engines.NAME]`: another Docker engine, through its own socket proxy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub docker: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepository {
    pub url: Spanned<String>,
    /// `[copies.NAME]` only: the copy's own keep rules (default: the main retention).
    pub retention: Option<Spanned<Retention>>,
    /// restic's `--host` for this instance's snapshots (default: the machine's hostname).
    pub host: Option<Spanned<String>>,
    /// A restic backup with no progress this long is stopped (default `30m`; `0` = never).
    pub stall_timeout: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub password_command: Option<Spanned<String>>,
    /// The restic binary to run; else `$OMK_BACKUP_RESTIC`, else `restic` on PATH.
    pub restic: Option<Spanned<String>>,
    /// restic's cache folder (useful on a read-only root filesystem).
    pub cache_dir: Option<Spanned<String>>,
    /// restic `--limit-upload` / `--limit-download` in KiB/s (0 = unlimited).
    pub limit_upload: Option<Spanned<i64>>,
    pub limit_download: Option<Spanned<i64>>,
    /// restic `--compression`: "auto", "max" or "off" (repository format 2).
    pub compression: Option<Spanned<String>>,
    /// restic `--cacert`: a PEM CA certificate for a `rest:https://` server.
    pub cacert: Option<Spanned<String>>,
    /// This instance runs `check` and `prune` on a shared repository (docs/fleet.md).
    pub maintenance: Option<Spanned<bool>>,
}

/// `[check]`: rotating `--read-data-subset` coverage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub period_days: Option<Spanned<i64>>,
    pub subsets: Option<Spanned<i64>>,
}

/// `[restore_test]`: where scratch restores go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestoreTest {
    pub work_dir: Option<Spanned<String>>,
    /// Database restore tests: the scratch container's memory limit (MiB; its tmpfs data
    /// counts against it), CPUs and pids.
    pub memory_mb: Option<Spanned<i64>>,
    pub cpus: Option<Spanned<f64>>,
    pub pids: Option<Spanned<i64>>,
    /// A separate engine for scratch containers (the restore lab).
    pub docker: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub files: Option<Vec<Spanned<String>>>,
    /// How late a missed run may still be caught up, e.g. "6h" (else per-task defaults).
    pub grace: Option<Spanned<String>>,
    /// Longest a daemon task may run before it is stopped, e.g. "12h" ("0": no bound).
    pub max_runtime: Option<Spanned<String>>,
}

/// `[retention]`: restic's keep rules, plus when the daemon applies them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
    /// The daemon applies retention to a job right after its successful backup.
    pub after_backup: Option<bool>,
}

impl RawRetention {
    pub fn split(self) -> (Retention, bool) {
        (
            Retention {
                keep_last: self.keep_last,
                keep_hourly: self.keep_hourly,
                keep_daily: self.keep_daily,
                keep_weekly: self.keep_weekly,
                keep_monthly: self.keep_monthly,
                keep_yearly: self.keep_yearly,
                keep_within: self.keep_within,
            },
            self.after_backup.unwrap_or(false),
        )
    }
}

/// `[notify]` (global) or a job's `notify = { ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// healthchecks-style base URL: `/start`, success (the URL itself), `/fail`.
    pub ping_url: Option<Spanned<String>>,
    /// Generic JSON POST (ntfy, Gotify and the like).
    pub webhook: Option<Spanned<String>>,
    /// A file holding a bearer token for the webhook (never in the config text).
    pub webhook_token_file: Option<Spanned<String>>,
    /// ntfy's topic when the webhook is ntfy's root URL (JSON publishing).
    pub topic: Option<String>,
    /// Per-attempt timeout, e.g. "10s".
    pub timeout: Option<Spanned<String>>,
    /// Attempts after the first (default 2).
    pub retries: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Prometheus node-exporter textfile to write after each task.
    pub textfile: Option<Spanned<String>>,
}

/// `[web]`: the dashboard (see `config/web.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    pub listen: Option<Spanned<String>>,
    pub actions: Option<bool>,
    pub actions_group: Option<Spanned<String>>,
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    pub password_file: Option<Spanned<String>>,
    pub rpo_target: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub kind: Spanned<String>,
    /// The Docker engine running the job's container (default `local`).
    pub engine: Option<Spanned<String>>,
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    pub exclude: Option<Vec<String>>,
    pub quiesce: Option<Spanned<RawQuiesce>>,
    pub container: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub database: Option<Spanned<String>>,
    pub retention: Option<Retention>,
    pub notify: Option<Spanned<RawNotify>>,
    /// Database jobs: queries run against the restored copy in restore tests.
    pub probes: Option<Spanned<Vec<RawProbe>>>,
    /// Percent the job's files/bytes (dumps: bytes/rows) may fall against the last good
    /// snapshot before the backup is failed as suspect (default 50, 0..=100).
    pub shrink_limit: Option<Spanned<i64>>,
}

/// `probes = [{ sql = "...", expect = "...", database = "..." }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub sql: Spanned<String>,
    pub expect: String,
    pub database: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuiesce {
    pub container: Spanned<String>,
    pub mode: Spanned<String>,
}
