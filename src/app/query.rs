//! Read-only commands: `snapshots`, `status`, `config check`. They never take the run
//! lock and never start restic unless a crashed run must be reconciled first.

use super::health::{Coverage, coverage, flag_text};
use super::reporter::Reporter;
use super::session::Session;
use crate::catalog::SnapshotRow;
use crate::config::{Config, JobOrigin};
use crate::domain::{JobKind, RunStatus, SnapshotState, from_millis, rfc3339};
use serde::Serialize;

/// One line of `snapshots --json` (the first four fields are the stable contract).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotView {
    pub job: String,
    pub snapshot_id: String,
    pub time: String,
    pub bytes: Option<i64>,
    pub files: Option<i64>,
    pub state: SnapshotState,
    pub run_id: Option<String>,
    pub note: Option<String>,
}

impl From<SnapshotRow> for SnapshotView {
    fn from(s: SnapshotRow) -> Self {
        SnapshotView {
            job: s.job,
            snapshot_id: s.snapshot_id,
            time: rfc3339(from_millis(s.time)),
            bytes: s.bytes,
            files: s.files,
            state: s.state,
            run_id: s.run_id,
            note: s.note,
        }
    }
}

pub fn snapshots(ctx: &Session, job: Option<&str>) -> anyhow::Result<Vec<SnapshotView>> {
    if let Some(j) = job
        && !ctx.config.jobs.contains_key(j)
        && ctx.catalog.latest_good(j)?.is_none()
    {
        ctx.config.select_jobs(&[j.to_string()])?;
    }
    Ok(ctx
        .catalog
        .snapshots(job)?
        .into_iter()
        .map(SnapshotView::from)
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub jobs: Vec<JobStatus>,
    /// Set while the repository's most recent `check` failed (until one passes).
    pub repository_flag: Option<String>,
    /// How much of the data passing checks read within `[check] period_days`.
    pub check_coverage: Coverage,
    /// Label discovery's refusals and failure, as of this command (empty: fine).
    pub discovery_problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub kind: JobKind,
    /// The Docker engine running the job's container (`local` unless `[engines.*]`).
    pub engine: String,
    pub last_backup: Option<String>,
    pub last_verified_restore: Option<String>,
    pub rpo_seconds: Option<i64>,
    pub next_run: Option<String>,
    pub last_run_status: Option<RunStatus>,
    pub last_error: Option<String>,
    pub snapshots: i64,
    /// A problem of the job: its newest snapshot is `suspect` (the source shrank or
    /// vanished), with the catalog's reason; `null` otherwise.
    pub suspect: Option<String>,
    /// Per repository: `main` (the primary) first, then each `[copies.NAME]`.
    pub repositories: Vec<RepoStatus>,
}

/// A job in one repository: its newest good snapshot there, the last verified restore
/// from there, and (copies) how long a good snapshot has waited to be copied.
#[derive(Debug, Clone, Serialize)]
pub struct RepoStatus {
    pub repository: String,
    pub newest_snapshot: Option<String>,
    pub last_verified_restore: Option<String>,
    /// Copies only: 0 when the copy holds the newest good snapshot.
    pub copy_lag_seconds: Option<i64>,
}

/// The job's line per repository (`main` from the primary's figures).
fn repositories(
    ctx: &Session,
    job: &str,
    main: &JobStatus,
    now_ms: i64,
) -> anyhow::Result<Vec<RepoStatus>> {
    let (_, main_verified) = ctx.catalog.last_tests_in(job, None)?;
    let mut out = vec![RepoStatus {
        repository: crate::config::copies_primary_name().to_string(),
        newest_snapshot: main.last_backup.clone(),
        last_verified_restore: main_verified.map(|t| rfc3339(from_millis(t))),
        copy_lag_seconds: None,
    }];
    for name in ctx.config.copies.keys() {
        let st = ctx.catalog.copy_state(job, name, now_ms)?;
        out.push(RepoStatus {
            repository: name.clone(),
            newest_snapshot: st.newest.map(|(t, _)| rfc3339(from_millis(t))),
            last_verified_restore: st.last_verified.map(|t| rfc3339(from_millis(t))),
            copy_lag_seconds: Some(st.lag_ms / 1000),
        });
    }
    Ok(out)
}

pub fn status(ctx: &Session, reporter: &dyn Reporter) -> anyhow::Result<StatusReport> {
    let now = super::now();
    // A broken schedule file must not hide the status: say why next_run is empty.
    let sched = match crate::schedule::load(&ctx.config) {
        Ok(s) => Some(s),
        Err(e) => {
            reporter.note(&format!("next runs unknown: {e}"));
            None
        }
    };
    let mut jobs = Vec::new();
    for job in ctx.config.jobs.values() {
        let latest = ctx.catalog.latest_good(&job.name)?;
        let last_step = ctx.catalog.last_step(&job.name, "backup")?;
        let verified = ctx.catalog.last_success(&job.name, "restore-test")?;
        let mut st = JobStatus {
            job: job.name.clone(),
            kind: job.kind,
            engine: job.engine.clone(),
            last_backup: latest.as_ref().map(|s| rfc3339(from_millis(s.time))),
            last_verified_restore: verified.map(|t| rfc3339(from_millis(t))),
            rpo_seconds: latest
                .as_ref()
                .map(|s| (now.timestamp_millis() - s.time).max(0) / 1000),
            next_run: sched
                .as_ref()
                .and_then(|s| s.next_backup(&job.name, now))
                .map(rfc3339),
            last_run_status: last_step.as_ref().map(|s| s.status),
            last_error: last_step.and_then(|s| {
                if s.status == RunStatus::Success {
                    None
                } else {
                    s.error
                }
            }),
            snapshots: ctx.catalog.count_live(&job.name)?,
            suspect: newest_suspect(ctx, &job.name)?,
            repositories: Vec::new(),
        };
        st.repositories = repositories(ctx, &job.name, &st, now.timestamp_millis())?;
        jobs.push(st);
    }
    let repository_flag = ctx
        .catalog
        .repository_flag(ctx.config.repository.url.shown())?
        .map(|c| flag_text(&c));
    let check_coverage = coverage(
        &ctx.catalog,
        ctx.config.repository.url.shown(),
        ctx.config.check,
        super::now_ms(),
    )?;
    Ok(StatusReport {
        jobs,
        repository_flag,
        check_coverage,
        discovery_problems: ctx.discovery.errors(),
    })
}

/// `snapshot ID is suspect: NOTE` when the job's newest live snapshot is suspect.
fn newest_suspect(ctx: &Session, job: &str) -> anyhow::Result<Option<String>> {
    let live = ctx.catalog.snapshots(Some(job))?;
    Ok(live
        .last()
        .filter(|s| s.state == SnapshotState::Suspect)
        .map(|s| {
            format!(
                "snapshot {} is suspect: {}",
                &s.snapshot_id[..s.snapshot_id.len().min(8)],
                s.note.as_deref().unwrap_or("its source shrank")
            )
        }))
}

/// `config check`: the jobs a config defines, and where each came from.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    pub file: String,
    pub repository: String,
    pub catalog: String,
    pub jobs: Vec<ConfigJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigJob {
    pub job: String,
    pub kind: JobKind,
    pub engine: String,
    pub source: String,
    pub what: String,
}

/// Validate the config and list its jobs, including those discovered from container
/// labels when a Docker host is configured (a Docker failure is a warning here).
pub fn config_check(s: &Session) -> ConfigReport {
    describe(&s.config)
}

pub fn describe(config: &Config) -> ConfigReport {
    let jobs = config
        .jobs
        .values()
        .map(|j| ConfigJob {
            job: j.name.clone(),
            kind: j.kind,
            engine: j.engine.clone(),
            source: match &j.origin {
                JobOrigin::Config { line } => format!("{}:{line}", config.file.display()),
                JobOrigin::Label { container } => format!("labels of container {container}"),
            },
            what: match j.kind {
                JobKind::Files => {
                    let paths: Vec<String> =
                        j.paths.iter().map(|p| p.display().to_string()).collect();
                    let q = j
                        .quiesce
                        .as_ref()
                        .map(|q| format!(" ({} {} while copying)", q.mode.as_str(), q.container));
                    format!("{}{}", paths.join(", "), q.unwrap_or_default())
                }
                _ => format!(
                    "container {}{}",
                    j.container.as_deref().unwrap_or("?"),
                    j.database
                        .as_ref()
                        .map(|d| format!(", database {d}"))
                        .unwrap_or_default()
                ),
            },
        })
        .collect();
    ConfigReport {
        file: config.file.display().to_string(),
        repository: config.repository.url.shown().to_string(),
        catalog: config.catalog_path.display().to_string(),
        jobs,
    }
}
