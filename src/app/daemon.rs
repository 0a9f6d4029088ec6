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
//! and never fail it. A task past `[schedule] max_runtime` is stopped and recorded
//! failed (`task`), and the daemon goes on with the next one.

use super::reporter::Reporter;
use super::session::Session;
use super::task::{TaskResult, execute};
use super::{Globals, now, now_ms};
use crate::config::Config;
use crate::domain::{Trigger, from_millis, rfc3339};
use crate::exit::Outcome;
use crate::schedule::plan::{Due, Event, Planner, default_grace};
use crate::schedule::{Schedule, TaskKind};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Clone, Serialize)]
pub struct RunDueReport {
    pub tasks: Vec<TaskResult>,
    /// Set when a signal stopped the run.
    pub interrupted: Option<String>,
}

impl RunDueReport {
    /// The worst task outcome; a run stopped by a signal did not finish: failed.
    pub fn outcome(&self) -> Outcome {
        let o = self
            .tasks
            .iter()
            .fold(Outcome::Ok, |o, t| o.worst(t.outcome));
        if self.interrupted.is_some() {
            o.worst(Outcome::Failed)
        } else {
            o
        }
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
    let ctx = Session::open_undiscovered(g)?;
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

/// The next stop signal's name. The running task's run is then dropped: it is
/// recorded interrupted by this signal (see `recorder`).
async fn stop(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    super::recorder::stopping_because(sig);
    sig
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
    super::startup::recover_now(g, reporter).await;
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
    daemon_with(g, reporter, None).await
}

/// The next "run this now" request of a front end (pending forever without one).
async fn next_request(c: &mut Option<super::control::Control>) -> Option<super::control::Request> {
    match c {
        Some(c) => c.requests.recv().await,
        None => std::future::pending().await,
    }
}

/// The daemon, optionally steered and watched through a [`super::control::Control`]
/// (the dashboard): its requests join the one queue, its watchers see the live state.
pub async fn daemon_with(
    g: &Globals,
    reporter: &dyn Reporter,
    mut control: Option<super::control::Control>,
) -> anyhow::Result<Outcome> {
    let (mut config, mut sched) = super::schedule::load(g)?;
    let mut signals = Signals::new()?;
    super::startup::recover_now(g, reporter).await;
    let start = now();
    let mut planner = Planner::new(&sched, start);
    let last = last_runs(g)?;
    for ev in planner.catch_up(start, |k| lookup(&last, k), |k| grace(&config, k)) {
        log_event("catch-up", &ev);
    }
    log_start(&sched, &planner);
    let mut current: Option<Running<'_>> = None;
    let mut running_config: Option<Config> = None;
    let mut started: Option<(DateTime<Utc>, Trigger)> = None;
    loop {
        if current.is_none()
            && let Some(due) = planner.start_next()
        {
            let cfg = config.clone();
            running_config = Some(cfg.clone());
            let g2 = g.clone();
            started = Some((now(), due.trigger));
            current = Some(Box::pin(
                async move { execute(&g2, &cfg, &due, reporter).await },
            ));
        }
        if let Some(c) = &control {
            c.publish(&planner, started.map(|s| s.0), started.map(|s| s.1));
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
                started = None;
                planner.finished();
                if planner.queued() == 0 {
                    tracing::info!("idle; next run {}", next_run(&planner));
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
            Some(req) = next_request(&mut control) => {
                super::control::enqueue(&mut planner, req, now());
            }
            _ = signals.hup.recv() => reload(g, &mut planner, &mut config, &mut sched),
        }
    }
}

fn log_start(sched: &Schedule, planner: &Planner) {
    let sources: Vec<String> = sched
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    tracing::info!(
        "daemon started (pid {}): {} schedule line(s) from {}; next run {}",
        std::process::id(),
        sched.entries.len(),
        sources.join(", "),
        next_run(planner)
    );
}

fn next_run(planner: &Planner) -> String {
    planner
        .next_wake()
        .map(rfc3339)
        .unwrap_or_else(|| "never".into())
}

/// SIGHUP: reload config and schedules; a bad reload keeps the old ones and says why.
fn reload(g: &Globals, planner: &mut Planner, config: &mut Config, sched: &mut Schedule) {
    match super::schedule::load(g) {
        Ok((c, s)) => {
            planner.replace(&s, now());
            tracing::info!(
                "SIGHUP: reloaded the config and {} schedule line(s); next run {}",
                s.entries.len(),
                next_run(planner)
            );
            *config = c;
            *sched = s;
        }
        Err(e) => tracing::error!(
            "SIGHUP: reload failed, keeping the previous config and {} schedule line(s): {e:#}",
            sched.entries.len()
        ),
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
