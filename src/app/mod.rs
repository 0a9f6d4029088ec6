//! The application: one function per command, wiring config, catalog, restic and lock.
//!
//! Commands return plain report values (rendered by `cli`) and an [`Outcome`]; errors
//! travel as `anyhow::Error` with context, and `exit::classify` picks their exit code.
//! Nothing here prints: progress goes through the [`Reporter`] the caller passes in.

pub mod backup;
pub mod control;
pub mod daemon;
pub mod discover;
pub mod dump;
pub mod kit;
pub mod maintain;
pub mod query;
pub mod quiesce;
pub mod reconcile;
pub mod report;
pub mod restore;
pub mod schedule;
pub mod task;
pub mod verify;

use crate::catalog::Catalog;
use crate::config::{self, Config};
use crate::docker::Docker;
use crate::exit::Outcome;
use crate::lock::{self, RunLock};
use crate::restic::{BackupStatus, Restic};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// Where progress and human notes go while a command runs (the `cli` implements it).
pub trait Reporter: Send + Sync {
    /// A line for a person (stderr), e.g. "photos: backing up 2 paths".
    fn note(&self, msg: &str);
    /// A backup's progress from restic's status lines.
    fn backup_progress(&self, job: &str, status: &BackupStatus);
    /// The current long step ended (clear any progress bar).
    fn step_done(&self);
}

/// A reporter that says nothing (tests, `--json` scripts).
pub struct Silent;

impl Reporter for Silent {
    fn note(&self, _: &str) {}
    fn backup_progress(&self, _: &str, _: &BackupStatus) {}
    fn step_done(&self) {}
}

/// Global options every command shares.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub config: Option<PathBuf>,
    /// Recorded as `runs.trigger` by the commands that start a run.
    pub trigger: crate::domain::Trigger,
}

/// An opened configuration with its catalog, and the run lock when the command mutates.
pub struct Ctx {
    pub config: Config,
    pub catalog: Catalog,
    pub lock: Option<RunLock>,
    /// Containers a crashed run left quiesced, resumed when the lock was taken.
    pub recovered: Vec<quiesce::Recovered>,
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

/// Read the config only.
pub fn load_config(g: &Globals) -> anyhow::Result<Config> {
    let path = config::locate(g.config.as_deref());
    Ok(config::load(&path)?)
}

impl Ctx {
    /// Open config and catalog without the lock (read-only commands).
    pub fn open(g: &Globals) -> anyhow::Result<Ctx> {
        let config = load_config(g)?;
        let catalog = open_catalog(&config)?;
        Ok(Ctx {
            config,
            catalog,
            lock: None,
            recovered: Vec::new(),
        })
    }

    /// Open config and catalog and take the run lock (commands that change things).
    /// A run that a crash left behind is reconciled first.
    pub async fn open_locked(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<Ctx> {
        let config = load_config(g)?;
        ensure_catalog_dir(&config)?;
        let lock = lock::acquire(&config.catalog_path)?;
        let catalog = open_catalog(&config)?;
        let mut ctx = Ctx {
            config,
            catalog,
            lock: Some(lock),
            recovered: Vec::new(),
        };
        // Containers left paused/stopped by a crashed run come back first, before
        // anything that may fail (restic, the catalog). Docker being unreachable must
        // not block commands that do not need it: warn, and leave the journal open for
        // the next command or `omk-backup recover`.
        match quiesce::recover(&ctx, reporter).await {
            Ok(done) => ctx.recovered = done,
            Err(e) => reporter.note(&format!("warning: {e:#}")),
        }
        reconcile::after_crash(&mut ctx, reporter).await?;
        // Scratch containers of restore tests a killed run left behind. Only when the
        // config has database jobs (others may have no Docker at all); a failure here
        // must not block the command.
        if (ctx.config.docker_host.is_some()
            || ctx.config.jobs.values().any(|j| j.kind.is_database()))
            && let Err(e) = verify::database::remove_leftovers(&ctx, reporter).await
        {
            tracing::warn!("could not look for leftover scratch containers: {e:#}");
        }
        Ok(ctx)
    }

    /// Open without taking the run lock (a running backup does not block readers or a
    /// restore); but if a crashed run is pending and nobody holds the lock, take it
    /// briefly and reconcile first, so what we show is true. Label-discovered jobs are
    /// merged in.
    pub async fn open_reconciled(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<Ctx> {
        let mut ctx = Ctx::open(g)?;
        if !ctx.catalog.running_runs()?.is_empty() && lock::is_free(&ctx.config.catalog_path) {
            drop(ctx);
            ctx = Ctx::open_locked(g, reporter).await?;
            ctx.lock = None;
        }
        ctx.discover_jobs(reporter).await;
        Ok(ctx)
    }

    /// Add jobs from container labels (when a Docker host is configured). A Docker
    /// failure is a warning here: the jobs that need Docker fail on their own, clearly.
    pub async fn discover_jobs(&mut self, reporter: &dyn Reporter) {
        if let Err(e) = discover::merge(&mut self.config, reporter).await {
            reporter.note(&format!("warning: label discovery skipped: {e:#}"));
        }
    }

    /// Docker through the configured host (`[docker] host`, `$DOCKER_HOST`, the socket).
    pub async fn docker(&self) -> anyhow::Result<Docker> {
        Docker::connect(self.config.docker_host.as_deref())
            .await
            .with_context(|| {
                format!(
                    "connecting to Docker (set [docker] host in {} or $DOCKER_HOST)",
                    self.config.file.display()
                )
            })
    }

    /// restic bound to the repository; it may clear stale restic locks when we hold ours.
    pub async fn restic(&self) -> anyhow::Result<Restic> {
        Ok(Restic::detect(&self.config.repository, self.lock.is_some()).await?)
    }
}

fn ensure_catalog_dir(config: &Config) -> anyhow::Result<()> {
    if let Some(dir) = config.catalog_path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the catalog's folder {} (catalog.path in {})",
                dir.display(),
                config.file.display()
            )
        })?;
    }
    Ok(())
}

fn open_catalog(config: &Config) -> anyhow::Result<Catalog> {
    ensure_catalog_dir(config)?;
    Ok(Catalog::open(&config.catalog_path)?)
}

/// Outcome of a list of per-job results.
pub fn outcome_of<T>(items: &[T], failed: impl Fn(&T) -> bool) -> Outcome {
    Outcome::from_failures(items.iter().any(failed))
}
