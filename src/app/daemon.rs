//! `omk-backup daemon` and `omk-backup run-due`: run schedule lines when due, in-process,
//! one at a time.
//!
//! The daemon sleeps until the next due time (`tokio::time::sleep_until`, capped at an
//! hour so a wall-clock jump is noticed), queues due lines FIFO (a line already queued
//! or running is not queued twice), catches up runs missed while it was down (within
//! the grace window, from the catalog's `runs`), and stops cleanly on SIGTERM/SIGINT:
//! the running task is dropped (its restic child is killed), its run is recorded
//! `interrupted`, the process exits. SIGHUP reloads config and schedules; a bad reload
//! keeps the old ones and logs why. Notifications and the metrics file follow each task
//! and never fail it.

use super::{Ctx, Globals, Reporter, now, now_ms};
use crate::config::Config;
use crate::domain::{RunStatus, Trigger, from_millis, rfc3339};
use crate::exit::{Outcome, classify};
use crate::schedule::plan::{Due, Event, Planner, default_grace};
use crate::schedule::{Schedule, TaskKind};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use tokio::signal::unix::{SignalKind, signal};

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

#[derive(Debug, Clone, Serialize)]
pub struct RunDueReport {
    pub tasks: Vec<TaskResult>,
    /// Set when a signal stopped the run.
    pub interrupted: Option<String>,
}

impl RunDueReport {
    pub fn outcome(&self) -> Outcome {
        self.tasks
            .iter()
            .fold(Outcome::Ok, |o, t| o.worst(t.outcome))
    }
}

/// The grace window for a task kind: `[schedule] grace`, else the kind's default.
pub fn grace(config: &Config, kind: TaskKind) -> Duration {
    config
        .schedule_grace
        .and_then(|d| Duration::from_std(d).ok())
        .unwrap_or_else(|| default_grace(kind))
}

/// When each command last ran, from the catalog.
fn last_runs(g: &Globals) -> anyhow::Result<Vec<(TaskKind, Option<DateTime<Utc>>)>> {
    let ctx = Ctx::open(g)?;
    let kinds = [
        TaskKind::Backup,
        TaskKind::Forget,
        TaskKind::Check,
        TaskKind::RestoreTest,
        TaskKind::Report,
    ];
    kinds
        .iter()
        .map(|k| {
            Ok((
                *k,
                ctx.catalog.last_run_started(k.as_str())?.map(from_millis),
            ))
        })
        .collect()
}

fn lookup(v: &[(TaskKind, Option<DateTime<Utc>>)], k: TaskKind) -> Option<DateTime<Utc>> {
    v.iter().find(|x| x.0 == k).and_then(|x| x.1)
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

/// After a signal stopped a task: close our open runs as interrupted.
fn record_interrupted(config: &Config, signal: &str) {
    let why = format!("interrupted: omk-backup was stopped by {signal} during the run");
    match crate::catalog::Catalog::open(&config.catalog_path)
        .and_then(|c| c.interrupt_own_runs(std::process::id(), &why, now_ms()))
    {
        Ok(ids) if !ids.is_empty() => tracing::warn!(
            "{signal}: run(s) {} recorded as interrupted",
            ids.join(", ")
        ),
        Ok(_) => {}
        Err(e) => tracing::error!("{signal}: cannot record the interrupted run: {e}"),
    }
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        let mk = |k: SignalKind| {
            signal(k).map_err(|e| anyhow::anyhow!("cannot install a signal handler: {e}"))
        };
        Ok(Signals {
            term: mk(SignalKind::terminate())?,
            int: mk(SignalKind::interrupt())?,
            hup: mk(SignalKind::hangup())?,
        })
    }
}

/// The next stop signal's name.
async fn stop(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// The lines due now (missed since their command last ran, within grace), once per task.
pub fn due_now(
    config: &Config,
    sched: &Schedule,
    last: &[(TaskKind, Option<DateTime<Utc>>)],
    at: DateTime<Utc>,
) -> Vec<Due> {
    let mut p = Planner::new(sched, at);
    p.catch_up(at, |k| lookup(last, k), |k| grace(config, k));
    let mut out = Vec::new();
    while let Some(mut d) = p.start_next() {
        // On time (this minute) is a scheduled run; later is a catch-up.
        if at - d.scheduled < Duration::seconds(60) {
            d.trigger = Trigger::Daemon;
        }
        out.push(d);
        p.finished();
    }
    out
}

/// `run-due`: run what is due, then exit (for a systemd timer or cron).
pub async fn run_due(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<RunDueReport> {
    let (config, sched) = super::schedule::load(g)?;
    let at = now();
    let due = due_now(&config, &sched, &last_runs(g)?, at);
    if due.is_empty() {
        tracing::info!("nothing is due");
    }
    let mut signals = Signals::new()?;
    let mut report = RunDueReport {
        tasks: Vec::new(),
        interrupted: None,
    };
    for d in &due {
        tokio::select! {
            r = execute(g, &config, d, reporter) => report.tasks.push(r),
            sig = stop(&mut signals.term, &mut signals.int) => {
                record_interrupted(&config, sig);
                report.interrupted = Some(sig.to_string());
                break;
            }
        }
    }
    Ok(report)
}

type Running<'a> = Pin<Box<dyn Future<Output = TaskResult> + 'a>>;

/// Longest single sleep: a suspended host or a clock step is noticed within this.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(3600);

/// `daemon`: run the schedules in the foreground until SIGTERM/SIGINT.
pub async fn daemon(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<Outcome> {
    let (mut config, mut sched) = super::schedule::load(g)?;
    let mut signals = Signals::new()?;
    let start = now();
    let mut planner = Planner::new(&sched, start);
    let last = last_runs(g)?;
    for ev in planner.catch_up(start, |k| lookup(&last, k), |k| grace(&config, k)) {
        log_event("catch-up", &ev);
    }
    tracing::info!(
        "daemon started (pid {}): {} schedule line(s) from {}; next run {}",
        std::process::id(),
        sched.entries.len(),
        sched
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        planner
            .next_wake()
            .map(rfc3339)
            .unwrap_or_else(|| "never".into())
    );
    let mut current: Option<Running<'_>> = None;
    let mut running_config: Option<Config> = None;
    loop {
        if current.is_none()
            && let Some(due) = planner.start_next()
        {
            let cfg = config.clone();
            running_config = Some(cfg.clone());
            let g2 = g.clone();
            current = Some(Box::pin(
                async move { execute(&g2, &cfg, &due, reporter).await },
            ));
        }
        let wake = planner.next_wake();
        let sleep_for = wake
            .map(|w| (w - now()).to_std().unwrap_or_default().min(MAX_SLEEP))
            .unwrap_or(MAX_SLEEP);
        let deadline = tokio::time::Instant::now() + sleep_for;
        tokio::select! {
            r = async { current.as_mut().expect("guarded").await }, if current.is_some() => {
                tracing::debug!("task result: {} {}", r.task, r.status.as_str());
                current = None;
                running_config = None;
                planner.finished();
                if planner.queued() == 0 {
                    tracing::info!("idle; next run {}", planner.next_wake().map(rfc3339).unwrap_or_else(|| "never".into()));
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                for ev in planner.tick(now()) {
                    log_event("due", &ev);
                }
            }
            sig = stop(&mut signals.term, &mut signals.int) => {
                let was_running = current.take().is_some();
                if was_running {
                    tracing::warn!("{sig}: stopping the running task");
                    record_interrupted(running_config.as_ref().unwrap_or(&config), sig);
                }
                tracing::info!("{sig}: daemon stopped");
                return Ok(Outcome::Ok);
            }
            _ = signals.hup.recv() => {
                match super::schedule::load(g) {
                    Ok((c, s)) => {
                        planner.replace(&s, now());
                        tracing::info!(
                            "SIGHUP: reloaded the config and {} schedule line(s); next run {}",
                            s.entries.len(),
                            planner.next_wake().map(rfc3339).unwrap_or_else(|| "never".into())
                        );
                        config = c;
                        sched = s;
                    }
                    Err(e) => tracing::error!(
                        "SIGHUP: reload failed, keeping the previous config and {} schedule line(s): {e:#}",
                        sched.entries.len()
                    ),
                }
            }
        }
    }
}

fn log_event(what: &str, ev: &Event) {
    match ev {
        Event::Queued { task, scheduled } => {
            tracing::info!(
                "{what}: `{task}` (scheduled {}) queued",
                rfc3339(*scheduled)
            )
        }
        Event::Coalesced { task, scheduled } => tracing::warn!(
            "{what}: `{task}` (scheduled {}) is already queued or running; not queued twice",
            rfc3339(*scheduled)
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_due_trigger_on_time_vs_late() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "x\n").unwrap();
        let config = crate::config::parse(
            &dir.path().join("c.toml"),
            "[repository]\nurl = \"r\"\npassword_file = \"pw\"\n",
        )
        .unwrap();
        let sched = Schedule {
            sources: vec![],
            entries: crate::schedule::parse(
                std::path::Path::new("t"),
                "0 * * * * backup\n30 2 * * * check\n",
                chrono_tz::Tz::UTC,
            )
            .unwrap(),
        };
        let at = DateTime::parse_from_rfc3339("2026-11-27T05:00:20Z")
            .unwrap()
            .with_timezone(&Utc);
        let due = due_now(&config, &sched, &[], at);
        let got: Vec<(String, &str)> = due
            .iter()
            .map(|d| (d.entry.task.to_string(), d.trigger.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("check".to_string(), "catch-up"),
                ("backup".to_string(), "daemon")
            ]
        );
    }
}
