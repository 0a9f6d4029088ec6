//! What the daemon shares with a front end that watches and steers it (the dashboard):
//! requests to queue a task now, and the live state (running task, its progress, the
//! queue, the next run of every schedule line) published on change only.
//!
//! The daemon owns the queue; a request only asks it to queue, so there is never a
//! second concurrent run.

use super::reporter::Reporter;
use crate::domain::{Trigger, rfc3339};
use crate::restic::BackupStatus;
use crate::schedule::plan::{Event, Planner};
use crate::schedule::{Entry, TaskKind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

/// "Run this now": a backup or restore test of one job.
#[derive(Debug)]
pub struct Request {
    pub kind: TaskKind,
    pub job: String,
    /// The queued task's text (`backup photos`), or why it was not queued.
    pub reply: oneshot::Sender<Result<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Live {
    pub running: Option<LiveTask>,
    pub progress: Option<LiveProgress>,
    pub queue: Vec<String>,
    pub next: Vec<NextRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveTask {
    pub task: String,
    pub trigger: Trigger,
    pub started: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveProgress {
    pub job: String,
    pub percent: u32,
    pub bytes_done: u64,
    pub total_bytes: u64,
    pub files_done: u64,
    pub total_files: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextRun {
    pub line: String,
    pub when: String,
    pub task: String,
    pub next: Option<String>,
}

/// The daemon's side: requests in, live state out.
pub struct Control {
    pub requests: mpsc::Receiver<Request>,
    pub live: watch::Sender<Live>,
}

/// The front end's side.
#[derive(Clone)]
pub struct Handle {
    pub requests: mpsc::Sender<Request>,
    pub live: watch::Receiver<Live>,
}

/// A connected pair.
pub fn channel() -> (Control, Handle) {
    let (rtx, rrx) = mpsc::channel(16);
    let (ltx, lrx) = watch::channel(Live::default());
    (
        Control {
            requests: rrx,
            live: ltx,
        },
        Handle {
            requests: rtx,
            live: lrx,
        },
    )
}

impl Control {
    /// Publish the planner's state; watchers wake only when something changed.
    pub fn publish(
        &self,
        planner: &Planner,
        started: Option<DateTime<Utc>>,
        trigger: Option<Trigger>,
    ) {
        let (running, queue) = planner.snapshot();
        let running = running.map(|t| LiveTask {
            task: t.to_string(),
            trigger: trigger.unwrap_or_default(),
            started: started.map(rfc3339).unwrap_or_default(),
        });
        let queue: Vec<String> = queue.iter().map(|d| d.entry.task.to_string()).collect();
        let next: Vec<NextRun> = planner
            .upcoming()
            .map(|(e, n)| NextRun {
                line: e.key(),
                when: e.when.clone(),
                task: e.task.to_string(),
                next: n.map(rfc3339),
            })
            .collect();
        self.live.send_if_modified(|l| {
            let progress = if running.is_some() {
                l.progress.take()
            } else {
                None
            };
            let new = Live {
                running: running.clone(),
                progress,
                queue: queue.clone(),
                next: next.clone(),
            };
            let changed = *l != new;
            *l = new;
            changed
        });
    }
}

/// Queue a request's task in the planner; the answer goes back to the asker.
pub fn enqueue(planner: &mut Planner, req: Request, now: DateTime<Utc>) {
    let line = format!("@daily {} {}", req.kind.as_str(), req.job);
    let entry: Result<Entry, String> =
        crate::schedule::parse(std::path::Path::new("web"), &line, chrono_tz::Tz::UTC)
            .map_err(|e| e.to_string())
            .and_then(|mut v| v.pop().ok_or_else(|| "no task".to_string()));
    let answer = entry.map(|e| match planner.enqueue(e, now, Trigger::Cli) {
        Event::Queued { task, .. } => {
            tracing::info!("dashboard: `{task}` queued");
            task.to_string()
        }
        Event::Coalesced { task, .. } => format!("{task} (already queued or running)"),
    });
    let _ = req.reply.send(answer);
}

/// A reporter that forwards to another and publishes backup progress to watchers.
pub struct LiveReporter<'a> {
    pub inner: &'a dyn Reporter,
    pub live: watch::Sender<Live>,
}

impl Reporter for LiveReporter<'_> {
    fn note(&self, msg: &str) {
        self.inner.note(msg)
    }

    fn backup_progress(&self, job: &str, s: &BackupStatus) {
        self.inner.backup_progress(job, s);
        let p = LiveProgress {
            job: job.to_string(),
            percent: (s.percent_done * 100.0).clamp(0.0, 100.0) as u32,
            bytes_done: s.bytes_done,
            total_bytes: s.total_bytes,
            files_done: s.files_done,
            total_files: s.total_files,
        };
        self.live.send_if_modified(|l| {
            let changed = l.progress.as_ref() != Some(&p);
            l.progress = Some(p);
            changed
        });
    }

    fn step_done(&self) {
        self.inner.step_done()
    }
}
