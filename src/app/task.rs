//! Running one scheduled task in-process: the command's own code with the schedule's
//! trigger, then notifications and the metrics file, neither of which can fail it.
//! A scheduled `report` is written to a file (see `scheduled_report`).

use super::{Globals, Reporter, now_ms};
use crate::config::Config;
use crate::domain::{RunStatus, Trigger, rfc3339};
use crate::exit::{Outcome, classify};
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
/// failure is a result (logged, notified, recorded by the command itself).
pub async fn execute(
    g: &Globals,
    config: &Config,
    due: &Due,
    reporter: &dyn Reporter,
) -> TaskResult {
    let started = now_ms();
    let g = Globals {
        config: g.config.clone(),
        trigger: due.trigger,
    };
    let task = &due.entry.task;
    tracing::info!(
        "running `{task}` ({}, scheduled {}, {})",
        due.entry.key(),
        rfc3339(due.scheduled),
        due.trigger.as_str()
    );
    crate::notify::send_all(
        config,
        None,
        crate::notify::Kind::Start,
        task.kind.as_str(),
        None,
    )
    .await;
    if task.kind == TaskKind::Backup {
        // A job's own ping URL hears /start too (healthchecks measures the duration).
        let names: Vec<&String> = if task.jobs.is_empty() {
            config.jobs.keys().collect()
        } else {
            task.jobs.iter().collect()
        };
        for j in names {
            crate::notify::send_all(
                config,
                Some(j),
                crate::notify::Kind::Start,
                task.kind.as_str(),
                None,
            )
            .await;
        }
    }
    let mut jobs = Vec::new();
    let res: anyhow::Result<Outcome> = match task.kind {
        TaskKind::Backup => match super::backup::run(&g, &task.jobs, false, reporter).await {
            Ok(rep) => {
                for j in &rep.jobs {
                    jobs.push(JobOutcome {
                        job: j.job.clone(),
                        status: j.status,
                        error: j.error.clone(),
                    });
                }
                let good: Vec<String> = rep
                    .jobs
                    .iter()
                    .filter(|j| j.status == RunStatus::Success)
                    .map(|j| j.job.clone())
                    .collect();
                let mut outcome = rep.outcome();
                if config.retention_after_backup && !good.is_empty() {
                    // Retention only for the jobs whose backup just succeeded.
                    match super::maintain::forget(&g, &good, false, reporter).await {
                        Ok(f) => outcome = outcome.worst(f.outcome()),
                        Err(e) => {
                            tracing::error!("retention after the backup failed: {e:#}");
                            outcome = outcome.worst(classify(&e));
                        }
                    }
                }
                Ok(outcome)
            }
            Err(e) => Err(e),
        },
        TaskKind::Forget => super::maintain::forget(&g, &task.jobs, task.prune, reporter)
            .await
            .map(|r| r.outcome()),
        TaskKind::Check => super::maintain::check(&g, task.read_data_subset.as_deref(), reporter)
            .await
            .map(|r| {
                if r.passed {
                    Outcome::Ok
                } else {
                    Outcome::Failed
                }
            }),
        TaskKind::RestoreTest => super::verify::run(&g, &task.jobs, reporter)
            .await
            .map(|r| r.outcome()),
        TaskKind::Report => scheduled_report(&g, config, task, reporter).await,
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
    finish(config, due, started, status, error, outcome, jobs).await
}

async fn finish(
    config: &Config,
    due: &Due,
    started: i64,
    status: RunStatus,
    error: Option<String>,
    outcome: Outcome,
    jobs: Vec<JobOutcome>,
) -> TaskResult {
    let task = &due.entry.task;
    let duration_ms = now_ms() - started;
    match &error {
        None => tracing::info!(
            "`{task}` finished: {} in {:.1}s",
            status.as_str(),
            duration_ms as f64 / 1000.0
        ),
        Some(e) => tracing::error!("`{task}` {}: {e}", status.as_str()),
    }
    let kind = match status {
        RunStatus::Success | RunStatus::Skipped => crate::notify::Kind::Success,
        _ => crate::notify::Kind::Fail,
    };
    crate::notify::send_all(config, None, kind, task.kind.as_str(), error.as_deref()).await;
    for j in &jobs {
        let k = if j.status == RunStatus::Success {
            crate::notify::Kind::Success
        } else {
            crate::notify::Kind::Fail
        };
        crate::notify::send_all(
            config,
            Some(&j.job),
            k,
            task.kind.as_str(),
            j.error.as_deref(),
        )
        .await;
    }
    write_metrics(config);
    TaskResult {
        task: task.to_string(),
        kind: task.kind,
        line: due.entry.key(),
        trigger: due.trigger,
        scheduled: rfc3339(due.scheduled),
        status,
        jobs,
        error,
        duration_ms,
        outcome,
    }
}

fn write_metrics(config: &Config) {
    if config.metrics_textfile.is_none() {
        return;
    }
    let res = crate::catalog::Catalog::open(&config.catalog_path)
        .map_err(anyhow::Error::from)
        .and_then(|c| crate::metrics::update(config, &c, now_ms()));
    if let Err(e) = res {
        tracing::warn!("metrics not written: {e:#}");
    }
}

/// A scheduled report is written to a file: `--output` (relative to the config's
/// folder), else `reports/omk-backup-YYYY-MM.<format>` beside the catalog.
async fn scheduled_report(
    g: &Globals,
    config: &Config,
    task: &crate::schedule::Task,
    reporter: &dyn Reporter,
) -> anyhow::Result<Outcome> {
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
    let r = super::report::run(g, &month, &format, Some(&output), reporter).await?;
    reporter.note(&format!(
        "report {} written to {}",
        r.month,
        output.display()
    ));
    Ok(Outcome::Ok)
}
