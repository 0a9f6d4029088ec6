//! The application: one function per command, wiring config, catalog, restic and lock.
//!
//! Layers, top to bottom (an import only points down; the test in `app/layers.rs`
//! keeps it so): `daemon` → `task`, `kit` → the commands (`backup`, `maintain`,
//! `verify`, `query`, `report`, `restore`, `schedule`) → `startup` (a session opened
//! with crash recovery) → `verify::database` → the shared helpers (`quiesce`,
//! `reconcile`, `dump`, verify's parts) → `recorder`, `health` → `session` →
//! `discover` → `reporter` and this module's clock and id helpers.
//!
//! Commands take a [`session::Session`] and return plain report values (rendered by `cli`) and
//! an [`Outcome`]; errors travel as `anyhow::Error` with context, and `exit::classify`
//! picks their exit code. Nothing here prints: progress goes through the [`reporter::Reporter`].

pub mod attest;
pub mod backup;
pub mod control;
pub mod copy;
pub mod daemon;
pub mod discover;
pub mod dump;
pub mod fleet;
pub mod health;
pub mod kit;
#[cfg(test)]
mod layers;
pub mod maintain;
pub mod proxy_rules;
pub mod query;
pub mod quiesce;
pub mod reconcile;
pub mod recorder;
pub mod report;
pub mod reporter;
pub mod restore;
pub mod restore_copy;
pub mod schedule;
pub mod session;
mod shrink;
pub mod startup;
pub mod task;
pub mod verify;
mod vouch;

use crate::exit::Outcome;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// Global options every command shares.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub config: Option<PathBuf>,
    /// Recorded as `runs.trigger` by the commands that start a run.
    pub trigger: crate::domain::Trigger,
    /// `--no-notify`: runs send no start/success/fail notifications.
    pub no_notify: bool,
}

/// The current time in the catalog's unit.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A fresh run id.
pub fn new_run_id() -> Result<String, crate::random::RandomError> {
    let b: [u8; 2] = crate::random::bytes()?;
    Ok(crate::domain::new_run_id(now(), u16::from_le_bytes(b)))
}

/// Outcome of a list of per-job results.
pub fn outcome_of<T>(items: &[T], failed: impl Fn(&T) -> bool) -> Outcome {
    Outcome::from_failures(items.iter().any(failed))
}

/// How a run whose work ended with `outcome` is recorded.
pub fn run_status(outcome: Outcome) -> crate::domain::RunStatus {
    if outcome == Outcome::Ok {
        crate::domain::RunStatus::Success
    } else {
        crate::domain::RunStatus::Failed
    }
}
