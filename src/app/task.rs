//! Running one scheduled task in-process: the command's own code with the schedule's
//! trigger, in one [`Session`] (a backup and its retention share the lock: no gap).
//! Each recorded run reports itself (notifications, metrics; see `recorder`); a task
//! that records no run (a scheduled `report`, or one that failed before its run
//! started) is reported here. A scheduled `report` is written to a file. A task is
//! bounded by `[schedule] max_runtime`: past it, it is cancelled and recorded failed.

use super::reporter::Reporter;
use super::session::Session;
use super::{Globals, now_ms};
use crate::config::Config;
use crate::domain::{RunStatus, Trigger, rfc3339};
use crate::exit::{Outcome, classify};
use crate::notify::Kind;
use crate::schedule::TaskKind;
use crate::schedule::plan::Due;
use serde::Serialize;

/// How one task ended.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub task: String,
    pub kind: TaskKind,
    pub line: String,
    pub trigger: Trigger,
    pub scheduled: String,
    pub status: RunStatus,
    /// Per job, for backup tasks: (job, status, error).
    pub jobs: Vec<JobOutcome>,
    pub error: Option<String>,
    pub duration_ms: i64,
    #[serde(skip)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    pub job: String,
    pub status: RunStatus,
    pub error: Option<String>,
}

/// Run one due task in-process and report how it went. Never returns an error: a
/// failure is a result (logged, notified, recorded by the command itself). `config` is
/// the scheduler's, used only to report a task that could not open its session.
pub async fn execute(
    g: &Globals,
    config: &Config,
    due: &Due,
    reporter: &dyn Reporter,
) -> TaskResult {
    let started = now_ms();
    let g = Globals {
        trigger: due.trigger,
        ..g.clone()
    };
    let task = &due.entry.task;
    tracing::info!(
        "running `{task}` ({}, scheduled {}, {})",
        due.entry.key(),
        rfc3339(due.scheduled),
        due.trigger.as_str()
    );
    let records_runs = task.kind != TaskKind::Report;
    if !records_runs && !g.no_notify {
        crate::notify::send_all(config, None, Kind::Start, task.kind.as_str(), None).await;
    }
    let mut jobs = Vec::new();
    let mut reported = false;
    let work = async {
        match open(&g, task.kind, reporter).await {
            Ok(s) => {
                let res = run_task(&s, task, &mut jobs, reporter).await;
                reported = s.runs_started() > 0;
                res
            }
            Err(e) => Err(e),
        }
    };
    let res = match config.schedule_max_runtime {
        Some(limit) => bounded(config, limit, work).await,
        None => work.await,
    };
    let (status, error, outcome) = match res {
        Ok(Outcome::Ok) => (RunStatus::Success, None, Outcome::Ok),
        Ok(o) => {
            let err = jobs
                .iter()
                .find_map(|j| j.error.as_ref().map(|e| format!("{}: {e}", j.job)))
                .unwrap_or_else(|| format!("`{task}` reported a failure"));
            (RunStatus::Failed, Some(err), o)
        }
        Err(e) => (RunStatus::Failed, Some(format!("{e:#}")), classify(&e)),
    };
    if !reported && !g.no_notify {
        let kind = if status == RunStatus::Success {
            Kind::Success
        } else {
            Kind::Fail
        };
        let what = task.kind.as_str();
        crate::notify::send_all(config, None, kind, what, error.as_deref()).await;
    }
    log_end(task, status, error.as_deref(), now_ms() - started);
    TaskResult {
        task: task.to_string(),
        kind: task.kind,
        line: due.entry.key(),
        trigger: due.trigger,
        scheduled: rfc3339(due.scheduled),
        status,
        jobs,
        error,
        duration_ms: now_ms() - started,
        outcome,
    }
}

/// A task stopped by `[schedule] max_runtime`.
#[derive(Debug)]
pub struct Overran(pub std::time::Duration);

impl std::fmt::Display for Overran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exceeded max_runtime {} and was stopped (containers resumed, scratch removed, nothing recorded good); find what hangs or raise [schedule] max_runtime",
            crate::restic::short_duration(self.0)
        )
    }
}

impl std::error::Error for Overran {}

/// Run `work` for at most `limit`. Past it, the task is cancelled the way SIGTERM
/// cancels one (dropped: restic killed, quiesced containers resumed and scratch
/// containers removed by their guards) but its runs are recorded **failed**, not
/// interrupted: nobody asked for the stop, so it must alert like any failure.
async fn bounded(
    config: &Config,
    limit: std::time::Duration,
    work: impl std::future::Future<Output = anyhow::Result<Outcome>>,
) -> anyhow::Result<Outcome> {
    let mut work = Box::pin(work);
    tokio::select! {
        r = &mut work => return r,
        _ = tokio::time::sleep(limit) => {}
    }
    let why = format!("failed: {}", Overran(limit));
    // Close the steps with the reason while the runs are still open, then drop the task
    // (its recorders close what is left), then record the runs failed.
    let catalog = crate::catalog::Catalog::open(&config.catalog_path);
    let ids = match &catalog {
        Ok(c) => c
            .interrupt_own_runs(std::process::id(), &why, now_ms())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    drop(work);
    if let Ok(c) = &catalog {
        for id in &ids {
            if let Err(e) = c.finish_run(id, RunStatus::Failed, Some(&why), now_ms()) {
                tracing::error!("cannot record run {id} as failed: {e}");
            }
        }
    }
    tracing::error!("{why} (run(s) {})", ids.join(", "));
    Err(anyhow::Error::new(Overran(limit)))
}

/// The session a task kind needs: a scheduled report only reads.
async fn open(g: &Globals, kind: TaskKind, reporter: &dyn Reporter) -> anyhow::Result<Session> {
    match kind {
        TaskKind::Report => Session::open(g, reporter).await,
        _ => super::startup::locked(g, reporter).await,
    }
}

async fn run_task(
    s: &Session,
    task: &crate::schedule::Task,
    jobs: &mut Vec<JobOutcome>,
    reporter: &dyn Reporter,
) -> anyhow::Result<Outcome> {
    match task.kind {
        TaskKind::Backup => backup_then_retention(s, &task.jobs, jobs, reporter).await,
        TaskKind::Forget => super::maintain::forget(s, &task.jobs, task.prune, reporter)
            .await
            .map(|r| r.outcome()),
        TaskKind::Check => super::maintain::check(s, task.read_data_subset.as_deref(), reporter)
            .await
            .map(|r| Outcome::from_failures(!r.passed)),
        TaskKind::RestoreTest => super::verify::run(s, &task.jobs, reporter)
            .await
            .map(|r| r.outcome()),
        TaskKind::Report => scheduled_report(s, task, reporter).await,
        TaskKind::Copy => super::copy::run(s, task.to.as_deref(), &task.jobs, false, reporter)
            .await
            .map(|r| r.outcome()),
    }
}

/// A backup, then (with `[retention] after_backup`) retention for the jobs whose backup
/// just succeeded, in the same session and under the same lock.
async fn backup_then_retention(
    s: &Session,
    names: &[String],
    jobs: &mut Vec<JobOutcome>,
    reporter: &dyn Reporter,
) -> anyhow::Result<Outcome> {
    let rep = super::backup::run(s, names, false, &[], reporter).await?;
    jobs.extend(rep.jobs.iter().map(|j| JobOutcome {
        job: j.job.clone(),
        status: j.status,
        error: j.error.clone(),
    }));
    let good: Vec<String> = rep
        .jobs
        .iter()
        .filter(|j| j.status == RunStatus::Success)
        .map(|j| j.job.clone())
        .collect();
    let mut outcome = rep.outcome();
    if s.config.retention_after_backup && !good.is_empty() {
        match super::maintain::forget(s, &good, false, reporter).await {
            Ok(f) => outcome = outcome.worst(f.outcome()),
            Err(e) => {
                tracing::error!("retention after the backup failed: {e:#}");
                outcome = outcome.worst(classify(&e));
            }
        }
    }
    Ok(outcome)
}

fn log_end(task: &crate::schedule::Task, status: RunStatus, error: Option<&str>, ms: i64) {
    match error {
        None => tracing::info!(
            "`{task}` finished: {} in {:.1}s",
            status.as_str(),
            ms as f64 / 1000.0
        ),
        Some(e) => tracing::error!("`{task}` {}: {e}", status.as_str()),
    }
}

/// A scheduled report is written to a file: `--output` (relative to the config's
/// folder), else `reports/omk-backup-YYYY-MM.<format>` beside the catalog.
async fn scheduled_report(
    s: &Session,
    task: &crate::schedule::Task,
    reporter: &dyn Reporter,
) -> anyhow::Result<Outcome> {
    let config = &s.config;
    let format = task.format.clone().unwrap_or_else(|| "html".into());
    let month = task.month.clone().unwrap_or_else(|| "previous".into());
    let output = match &task.output {
        Some(o) => config.dir.join(o),
        None => {
            let label = super::report::month_label(&month, super::now())?;
            let dir = config
                .catalog_path
                .parent()
                .unwrap_or(&config.dir)
                .join("reports");
            std::fs::create_dir_all(&dir).map_err(|e| {
                anyhow::anyhow!("cannot create the reports folder {}: {e}", dir.display())
            })?;
            dir.join(format!("omk-backup-{label}.{format}"))
        }
    };
    let r = super::report::run(s, &month, &format, Some(&output), reporter).await?;
    reporter.note(&format!(
        "report {} written to {}",
        r.month,
        output.display()
    ));
    Ok(Outcome::Ok)
}
