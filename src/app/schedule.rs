//! `omk-backup schedule list`: every schedule line with its next runs, in its own zone
//! and in UTC.

use super::Globals;
use super::session::load_config;
use crate::domain::rfc3339;
use crate::schedule::{self, Schedule};
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleReport {
    /// The files the lines came from (or the built-in default).
    pub sources: Vec<String>,
    pub lines: Vec<ScheduleLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleLine {
    pub file: String,
    pub line: usize,
    pub when: String,
    pub zone: String,
    pub task: String,
    pub kind: schedule::TaskKind,
    /// RFC 3339 in UTC (the stable contract).
    pub next_runs: Vec<String>,
    /// The same times in the line's zone, with their offset.
    pub next_runs_local: Vec<String>,
}

/// Load the config and its schedules.
pub fn load(g: &Globals) -> anyhow::Result<(crate::config::Config, Schedule)> {
    let config = load_config(g)?;
    let sched = schedule::load(&config)?;
    Ok((config, sched))
}

pub fn list(g: &Globals, count: usize) -> anyhow::Result<ScheduleReport> {
    let (_, sched) = load(g)?;
    Ok(describe(&sched, super::now(), count))
}

pub fn describe(sched: &Schedule, now: DateTime<Utc>, count: usize) -> ScheduleReport {
    let lines = sched
        .entries
        .iter()
        .map(|e| {
            let runs = e.spec.next_n(e.tz, now, count);
            ScheduleLine {
                file: e.file.display().to_string(),
                line: e.line,
                when: e.when.clone(),
                zone: e.tz.name().to_string(),
                task: e.task.to_string(),
                kind: e.task.kind,
                next_runs: runs.iter().map(|t| rfc3339(*t)).collect(),
                next_runs_local: runs
                    .iter()
                    .map(|t| {
                        t.with_timezone(&e.tz)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
                    })
                    .collect(),
            }
        })
        .collect();
    ScheduleReport {
        sources: sched
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        lines,
    }
}
