//! Pure domain vocabulary: jobs, runs, snapshot states and the restic tags that tie a
//! snapshot to its job and run. No I/O here, and no outside crate beyond serde/chrono.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a job backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Files,
    Postgres,
    Mariadb,
    Sqlite,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Files => "files",
            JobKind::Postgres => "postgres",
            JobKind::Mariadb => "mariadb",
            JobKind::Sqlite => "sqlite",
        }
    }

    /// Database kinds are dumped through `docker exec` and streamed into restic.
    pub fn is_database(self) -> bool {
        !matches!(self, JobKind::Files)
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "files" => Some(JobKind::Files),
            "postgres" => Some(JobKind::Postgres),
            "mariadb" => Some(JobKind::Mariadb),
            "sqlite" => Some(JobKind::Sqlite),
            _ => None,
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a container is quiesced around a file-level copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuiesceMode {
    Pause,
    Stop,
}

impl QuiesceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QuiesceMode::Pause => "pause",
            QuiesceMode::Stop => "stop",
        }
    }
}

/// The life of a run or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Success,
    Failed,
    Interrupted,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> RunStatus {
        match s {
            "running" => RunStatus::Running,
            "success" => RunStatus::Success,
            "interrupted" => RunStatus::Interrupted,
            "skipped" => RunStatus::Skipped,
            _ => RunStatus::Failed,
        }
    }
}

/// What the catalog knows about a snapshot's worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotState {
    /// Made by a run that succeeded: restorable, used by `restore latest`.
    Good,
    /// Found in the repository but its run never confirmed it (a crash between restic's
    /// success and the catalog write, for a dump whose completeness is unknown).
    Unverified,
    /// Made from a source that vanished or shrank past the job's `shrink_limit` (an
    /// emptied folder, an unmounted share, a truncated table): kept, because it may be
    /// the only copy of what is left, but never handed out by `restore latest` and never
    /// a reason for retention.
    Suspect,
    /// Removed from the repository by retention or because it was bad.
    Forgotten,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Good => "good",
            SnapshotState::Unverified => "unverified",
            SnapshotState::Suspect => "suspect",
            SnapshotState::Forgotten => "forgotten",
        }
    }

    pub fn parse(s: &str) -> SnapshotState {
        match s {
            "good" => SnapshotState::Good,
            "forgotten" => SnapshotState::Forgotten,
            "suspect" => SnapshotState::Suspect,
            _ => SnapshotState::Unverified,
        }
    }
}

/// Tag prefix naming a snapshot's job.
pub const TAG_JOB: &str = "omk:job=";
/// Tag prefix naming a snapshot's run.
pub const TAG_RUN: &str = "omk:run=";

pub fn job_tag(job: &str) -> String {
    format!("{TAG_JOB}{job}")
}

pub fn run_tag(run: &str) -> String {
    format!("{TAG_RUN}{run}")
}

/// The job and run named by a snapshot's tags, when it carries ours.
pub fn parse_tags(tags: &[String]) -> (Option<String>, Option<String>) {
    let mut job = None;
    let mut run = None;
    for t in tags {
        if let Some(j) = t.strip_prefix(TAG_JOB) {
            job = Some(j.to_string());
        } else if let Some(r) = t.strip_prefix(TAG_RUN) {
            run = Some(r.to_string());
        }
    }
    (job, run)
}

/// Job names become restic tags, container names and file names: keep them plain.
pub fn validate_job_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a job name must have 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err("a job name may only use letters, digits, '-', '_' and '.'".into());
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err("a job name must start with a letter, digit or '_'".into());
    }
    Ok(())
}

/// A run id: sortable by time, unique enough across catalogs (it is also a restic tag,
/// so it must survive the loss of the catalog): `YYYYMMDDTHHMMSSZ-xxxx`.
pub fn new_run_id(now: DateTime<Utc>, random: u16) -> String {
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%SZ"), random)
}

/// RFC 3339 in UTC with second precision, as the `--json` contract wants.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Milliseconds since the epoch to a UTC time (the catalog stores times as integers).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// What started a run (`runs.trigger`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A person or a script ran the command.
    #[default]
    Cli,
    /// The daemon ran a schedule line at its time.
    Daemon,
    /// The daemon or `run-due` ran a missed schedule line late, within its grace window.
    CatchUp,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Daemon => "daemon",
            Trigger::CatchUp => "catch-up",
        }
    }
}

/// Retention policy: restic's `--keep-*` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
}

impl Retention {
    /// restic refuses a forget without any keep rule (it would remove nothing, or all).
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_yearly.is_none()
            && self.keep_within.is_none()
    }

    /// Overlay a job's own rules on the global ones (a job's rule wins, field by field).
    pub fn overlay(&self, job: &Retention) -> Retention {
        Retention {
            keep_last: job.keep_last.or(self.keep_last),
            keep_hourly: job.keep_hourly.or(self.keep_hourly),
            keep_daily: job.keep_daily.or(self.keep_daily),
            keep_weekly: job.keep_weekly.or(self.keep_weekly),
            keep_monthly: job.keep_monthly.or(self.keep_monthly),
            keep_yearly: job.keep_yearly.or(self.keep_yearly),
            keep_within: job.keep_within.clone().or_else(|| self.keep_within.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names() {
        for ok in ["photos", "immich-db", "a_b.c", "_x", "9"] {
            assert!(validate_job_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a,b", "-x", ".x", "ä", &"x".repeat(65)] {
            assert!(validate_job_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_roundtrip() {
        let tags = vec![
            job_tag("db"),
            run_tag("20260101T000000Z-00ab"),
            "other".into(),
        ];
        let (j, r) = parse_tags(&tags);
        assert_eq!(j.as_deref(), Some("db"));
        assert_eq!(r.as_deref(), Some("20260101T000000Z-00ab"));
        assert_eq!(parse_tags(&["x".into()]), (None, None));
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id(DateTime::from_timestamp(1_700_000_000, 0).unwrap(), 0xffff);
        let b = new_run_id(DateTime::from_timestamp(1_700_000_001, 0).unwrap(), 0);
        assert!(a < b);
        assert_eq!(a, "20231114T221320Z-ffff");
    }

    #[test]
    fn retention_overlay_prefers_job() {
        let global = Retention {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            ..Default::default()
        };
        let job = Retention {
            keep_daily: Some(3),
            ..Default::default()
        };
        let r = global.overlay(&job);
        assert_eq!(r.keep_daily, Some(3));
        assert_eq!(r.keep_weekly, Some(4));
        assert!(!r.is_empty());
        assert!(Retention::default().is_empty());
    }
}
