//! What the pages and the API show, gathered through the app's query functions and the
//! catalog's read methods (no SQL here): the overview rows with their health and
//! problems, and a job's page (runs with steps, restore tests with checks, snapshots,
//! history points).

use super::State;
use crate::app::query::{JobStatus, StatusReport};
use crate::app::reporter::Silent;
use crate::app::session::Session;
use crate::catalog::{HistoryPoint, JobStepRow, SnapshotRow};
use crate::domain::{RunStatus, SnapshotState, from_millis, rfc3339};
use serde::Serialize;
use std::sync::Arc;

/// Runs, tests and snapshots a job page shows at most.
const STEPS_SHOWN: i64 = 120;
const TESTS_SHOWN: i64 = 20;
const SNAPSHOTS_SHOWN: usize = 200;
const HISTORY_POINTS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Bad,
    Warn,
    Good,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Bad => "bad",
            Health::Warn => "warn",
            Health::Good => "good",
        }
    }
}

/// One job on the overview.
#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    #[serde(flatten)]
    pub status: JobStatus,
    pub last_rto_ms: Option<i64>,
    pub health: Health,
    pub problems: Vec<String>,
}

/// The overview: every job (problems first) and the repository's health.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub jobs: Vec<JobRow>,
    pub rpo_target_seconds: u64,
    pub repository_flag: Option<String>,
    pub check_coverage: crate::app::health::Coverage,
    /// When the newest encryption proof ran, and whether it passed.
    pub encryption_proof: Option<(String, bool)>,
    pub encryption_proof_age_seconds: Option<i64>,
}

/// Run `f` on a blocking thread: the app's futures and the catalog are not `Send`, the
/// server's handlers must be, and a catalog read must not stall the server's workers.
pub async fn off_thread<T: Send + 'static>(
    st: &Arc<State>,
    f: impl FnOnce(&State) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || f(&st))
        .await
        .map_err(|e| anyhow::anyhow!("the dashboard's worker failed: {e}"))?
}

/// Config and catalog, without the run lock: the one place the web layer opens them
/// (when `app` changes how commands open their state, only this changes).
pub fn open(st: &State) -> anyhow::Result<Session> {
    Session::open_undiscovered(&st.g)
}

/// The same, with label-discovered jobs merged (status, metrics).
pub fn open_discovered(st: &State) -> anyhow::Result<Session> {
    tokio::runtime::Handle::current().block_on(Session::open(&st.g, &Silent))
}

/// `status --json`, exactly (call it off the server's threads).
pub fn status(st: &State) -> anyhow::Result<StatusReport> {
    crate::app::query::status(&open_discovered(st)?, &Silent)
}

fn judge(s: &JobStatus, rpo_target: u64) -> (Health, Vec<String>) {
    let mut p = Vec::new();
    let mut h = Health::Good;
    match s.last_run_status {
        Some(RunStatus::Failed) | Some(RunStatus::Interrupted) => {
            h = Health::Bad;
            p.push(format!(
                "last backup {}: {}",
                s.last_run_status.map(|x| x.as_str()).unwrap_or("?"),
                s.last_error.as_deref().unwrap_or("no detail")
            ));
        }
        _ => {}
    }
    match s.rpo_seconds {
        None => {
            h = Health::Bad;
            p.push("no good backup yet".into());
        }
        Some(r) if r as u64 > rpo_target => {
            h = Health::Bad;
            p.push(format!(
                "RPO {} is over the target {}",
                crate::report::duration(r as f64),
                crate::report::duration(rpo_target as f64)
            ));
        }
        _ => {}
    }
    if s.last_verified_restore.is_none() {
        h = h.min(Health::Warn);
        p.push("never restore-tested".into());
    }
    (h, p)
}

pub fn overview(st: &State) -> anyhow::Result<Overview> {
    let s = status(st)?;
    let ctx = open(st)?;
    let target = st.web.rpo_target.as_secs();
    let mut jobs = Vec::with_capacity(s.jobs.len());
    for j in s.jobs {
        let (health, problems) = judge(&j, target);
        jobs.push(JobRow {
            last_rto_ms: ctx.catalog.last_rto(&j.job)?,
            status: j,
            health,
            problems,
        });
    }
    jobs.sort_by(|a, b| (a.health, &a.status.job).cmp(&(b.health, &b.status.job)));
    let enc = ctx
        .catalog
        .last_encryption_check(ctx.config.repository.url.shown())?;
    let now = crate::app::now_ms();
    Ok(Overview {
        jobs,
        rpo_target_seconds: target,
        repository_flag: s.repository_flag,
        check_coverage: s.check_coverage,
        encryption_proof_age_seconds: enc.as_ref().map(|e| (now - e.at).max(0) / 1000),
        encryption_proof: enc.map(|e| (rfc3339(from_millis(e.at)), e.passed)),
    })
}

/// A run of the job with its steps (for this job), newest first.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: String,
    pub command: String,
    pub trigger: String,
    pub started: String,
    pub steps: Vec<StepView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub kind: String,
    pub status: RunStatus,
    pub started: String,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestView {
    pub run_id: String,
    pub started: String,
    pub snapshot_id: Option<String>,
    pub passed: bool,
    pub rto_ms: Option<i64>,
    pub rpo_seconds: Option<i64>,
    pub files_hashed: Option<i64>,
    pub bytes_hashed: Option<i64>,
    pub checks: Vec<CheckView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotView {
    pub snapshot_id: String,
    pub time: String,
    pub bytes: Option<i64>,
    pub files: Option<i64>,
    pub state: SnapshotState,
    /// The exact command that restores it.
    pub restore_command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobPage {
    pub row: JobRow,
    pub rpo_target_seconds: u64,
    pub runs: Vec<RunView>,
    pub restore_tests: Vec<TestView>,
    pub snapshots: Vec<SnapshotView>,
    /// (ms, bytes, duration ms) of the newest backups, oldest first.
    pub history: Vec<(i64, Option<i64>, Option<i64>)>,
    /// (ms, RTO ms) of the recent verified restores, oldest first.
    pub rto_history: Vec<(i64, i64)>,
}

fn group_runs(steps: Vec<JobStepRow>) -> Vec<RunView> {
    let mut runs: Vec<RunView> = Vec::new();
    for s in steps {
        let step = StepView {
            kind: s.kind,
            status: s.status,
            started: rfc3339(from_millis(s.started_at)),
            duration_ms: s.finished_at.map(|f| f - s.started_at),
            error: s.error,
        };
        match runs.last_mut() {
            Some(r) if r.id == s.run_id => r.steps.push(step),
            _ => runs.push(RunView {
                id: s.run_id,
                command: s.command,
                trigger: s.trigger,
                started: step.started.clone(),
                steps: vec![step],
            }),
        }
    }
    for r in &mut runs {
        r.steps.reverse();
    }
    runs
}

fn checks(list: &[crate::catalog::Check]) -> Vec<CheckView> {
    list.iter()
        .map(|c| CheckView {
            name: c.name.clone(),
            passed: c.passed,
            detail: c.detail.clone(),
        })
        .collect()
}

fn snapshot_view(s: SnapshotRow, job: &str, config_file: &str) -> SnapshotView {
    SnapshotView {
        restore_command: format!(
            "omk-backup --config {} restore {} --job {job} --target /path/to/an/empty/folder",
            shell_word(config_file),
            s.snapshot_id
        ),
        snapshot_id: s.snapshot_id,
        time: rfc3339(from_millis(s.time)),
        bytes: s.bytes,
        files: s.files,
        state: s.state,
    }
}

/// Quote a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A job's page, or `None` when no such job is configured or discovered.
pub fn job_page(st: &State, job: &str) -> anyhow::Result<Option<JobPage>> {
    let s = status(st)?;
    let Some(js) = s.jobs.into_iter().find(|j| j.job == job) else {
        return Ok(None);
    };
    let ctx = open(st)?;
    let cat = &ctx.catalog;
    let target = st.web.rpo_target.as_secs();
    let (health, problems) = judge(&js, target);
    let tests = cat.recent_restore_tests(job, TESTS_SHOWN)?;
    let mut rto_history: Vec<(i64, i64)> = tests
        .iter()
        .filter(|t| t.passed)
        .filter_map(|t| t.rto_ms.map(|r| (t.started_at, r)))
        .collect();
    rto_history.reverse();
    let history = cat
        .backup_history(job, HISTORY_POINTS)?
        .into_iter()
        .map(
            |HistoryPoint {
                 time,
                 bytes,
                 duration_ms,
             }| (time, bytes, duration_ms),
        )
        .collect();
    let config_file = ctx.config.file.display().to_string();
    let mut snaps = cat.snapshots(Some(job))?;
    snaps.reverse();
    snaps.truncate(SNAPSHOTS_SHOWN);
    Ok(Some(JobPage {
        row: JobRow {
            last_rto_ms: cat.last_rto(job)?,
            status: js,
            health,
            problems,
        },
        rpo_target_seconds: target,
        runs: group_runs(cat.job_steps(job, STEPS_SHOWN)?),
        restore_tests: tests
            .into_iter()
            .map(|t| TestView {
                checks: checks(&t.checks),
                run_id: t.run_id,
                started: rfc3339(from_millis(t.started_at)),
                snapshot_id: t.snapshot_id,
                passed: t.passed,
                rto_ms: t.rto_ms,
                rpo_seconds: t.rpo_seconds,
                files_hashed: t.files_hashed,
                bytes_hashed: t.bytes_hashed,
            })
            .collect(),
        snapshots: snaps
            .into_iter()
            .map(|s| snapshot_view(s, job, &config_file))
            .collect(),
        history,
        rto_history,
    }))
}
