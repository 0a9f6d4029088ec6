//! Reconciliation at start-up: a run that died (SIGKILL, power loss) is closed, and the
//! snapshots it made that the catalog never heard of are recorded — as `unverified`,
//! because nobody checked them: `restore latest` keeps using verified ones.
//!
//! A dead backup's dump processes still running in a job's container (a dump blocked
//! on a lock gets no broken pipe) are stopped first (`dump::leftover`).
//!
//! Only called with the run lock held, so any run still marked `running` is dead.

use super::dump::leftover;
use super::now_ms;
use super::reporter::Reporter;
use super::session::Session;
use crate::catalog::SnapshotRow;
use crate::domain::{SnapshotState, parse_tags, run_tag};
use crate::restic::Snapshot;

pub async fn after_crash(ctx: &Session, reporter: &dyn Reporter) -> anyhow::Result<()> {
    debug_assert!(ctx.holds_lock(), "reconcile needs the run lock");
    let dead = ctx.catalog.running_runs()?;
    if dead.is_empty() {
        return Ok(());
    }
    for run in dead {
        let why = format!(
            "interrupted: omk-backup (pid {}) ended before the run finished",
            run.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        );
        reporter.note(&format!(
            "run {} was interrupted; reconciling the catalog",
            run.id
        ));
        if run.command == "backup" {
            stop_leftover_dumps(ctx, &run.id, reporter).await;
            let restic = ctx.restic().await?;
            let found = restic.snapshots(&[run_tag(&run.id)]).await?;
            for s in found {
                if ctx.catalog.has_snapshot(&s.id)? {
                    continue;
                }
                let (job, _) = parse_tags(&s.tags);
                let Some(job) = job else { continue };
                let time = snapshot_time(&s).unwrap_or(run.started_at);
                let note =
                    "found after an interrupted run; restore-test or `restore <id>` to use it";
                ctx.catalog.insert_snapshot(&row_of(
                    &s,
                    &job,
                    Some(run.id.clone()),
                    time,
                    SnapshotState::Unverified,
                    note,
                ))?;
                reporter.note(&format!(
                    "{job}: recorded snapshot {} from the interrupted run as unverified",
                    &s.id[..8.min(s.id.len())]
                ));
            }
        }
        ctx.catalog.interrupt_run(&run.id, &why, now_ms())?;
    }
    Ok(())
}

/// Stop the dump processes the dead run `run_id` left in its database jobs' containers
/// (a dump blocked on a lock outlives us: it writes nothing, so no broken pipe ends it).
/// Best effort: a failure is said, never fatal.
async fn stop_leftover_dumps(ctx: &Session, run_id: &str, reporter: &dyn Reporter) {
    let mut containers: Vec<&str> = ctx
        .config
        .jobs
        .values()
        .filter(|j| j.kind.is_database())
        .filter_map(|j| j.container.as_deref())
        .collect();
    containers.sort();
    containers.dedup();
    if containers.is_empty() {
        return;
    }
    let docker = match ctx.docker().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("cannot look for dumps left by run {run_id}: {e:#}");
            return;
        }
    };
    for c in containers {
        match leftover::stop(&docker, c, run_id).await {
            Ok(pids) if pids.is_empty() => {}
            Ok(pids) => reporter.note(&format!(
                "stopped {} dump process(es) left by run {run_id} in container {c} (pid {})",
                pids.len(),
                pids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
}

/// When restic says a snapshot was taken (catalog milliseconds).
pub fn snapshot_time(s: &Snapshot) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&s.time)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The catalog row of a snapshot found in the repository (not made by this run).
pub fn row_of(
    s: &Snapshot,
    job: &str,
    run_id: Option<String>,
    time: i64,
    state: SnapshotState,
    note: &str,
) -> SnapshotRow {
    let summary = s.summary.as_ref();
    SnapshotRow {
        snapshot_id: s.id.clone(),
        job: job.to_string(),
        run_id,
        time,
        bytes: summary.map(|x| x.total_bytes_processed as i64),
        files: summary.map(|x| x.total_files_processed as i64),
        data_added: summary.map(|x| x.data_added as i64),
        duration_ms: None,
        state,
        note: Some(note.to_string()),
    }
}
