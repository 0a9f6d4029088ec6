//! `omk-backup restore latest|ID --job J --target DIR`: put a job's data back.
//!
//! The snapshot comes from the catalog (the newest *good* one for `latest`); when the
//! catalog knows none — a fresh machine with only the repository — restic is asked by
//! tag. A non-empty target is refused unless `--overwrite`; a files job restores only its
//! own paths, under the target (so `/srv/photos` lands in `DIR/srv/photos`).

use super::{Ctx, Globals, Reporter};
use crate::catalog::SnapshotRow;
use crate::domain::{JobKind, SnapshotState, job_tag, parse_tags};
use crate::exit::usage;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub job: String,
    pub snapshot_id: String,
    pub target: String,
    pub restored: Vec<String>,
    pub duration_ms: i64,
}

pub struct RestoreArgs<'a> {
    pub snapshot: &'a str,
    pub job: Option<&'a str>,
    pub target: &'a Path,
    pub overwrite: bool,
}

pub async fn run(
    g: &Globals,
    a: RestoreArgs<'_>,
    reporter: &dyn Reporter,
) -> anyhow::Result<RestoreReport> {
    let mut ctx = Ctx::open_locked(g, reporter).await?;
    ctx.discover_jobs(reporter).await;
    check_target(a.target, a.overwrite)?;
    let restic = ctx.restic().await?;
    let (job_name, snap) = pick_snapshot(&ctx, &restic, a.snapshot, a.job).await?;
    let job = ctx.config.jobs.get(&job_name).ok_or_else(|| {
        usage(format!(
            "snapshot {} belongs to job `{job_name}`, which {} does not define; add the job back to the config to restore it",
            &snap[..8.min(snap.len())],
            ctx.config.file.display()
        ))
    })?;
    std::fs::create_dir_all(a.target)
        .with_context(|| format!("cannot create the restore target {}", a.target.display()))?;
    let started = super::now_ms();
    reporter.note(&format!(
        "{job_name}: restoring snapshot {} into {}",
        &snap[..8.min(snap.len())],
        a.target.display()
    ));
    let restored = match job.kind {
        JobKind::Files => {
            restic
                .restore(&snap, a.target, &job.paths)
                .await
                .with_context(|| format!("restoring {job_name}"))?;
            job.paths
                .iter()
                .map(|p| under(a.target, p).display().to_string())
                .collect()
        }
        _ => {
            let dump = ctx
                .catalog
                .dump(&snap)?
                .map(|d| d.filename)
                .unwrap_or_else(|| format!("/{job_name}"));
            restic
                .restore(&snap, a.target, &[])
                .await
                .with_context(|| format!("restoring {job_name}"))?;
            vec![under(a.target, Path::new(&dump)).display().to_string()]
        }
    };
    reporter.step_done();
    Ok(RestoreReport {
        job: job_name,
        snapshot_id: snap,
        target: a.target.display().to_string(),
        restored,
        duration_ms: super::now_ms() - started,
    })
}

fn under(target: &Path, p: &Path) -> PathBuf {
    target.join(p.strip_prefix("/").unwrap_or(p))
}

fn check_target(target: &Path, overwrite: bool) -> anyhow::Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() && !overwrite {
                return Err(usage(format!(
                    "the restore target {} is not empty; choose an empty folder, or pass --overwrite to restore over its files",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(usage(format!(
            "the restore target {} is a file, not a folder",
            target.display()
        ))),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the restore target {}: {e}",
            target.display()
        )),
    }
}

/// Resolve `latest` or an id (prefix) to (job, full snapshot id).
async fn pick_snapshot(
    ctx: &Ctx,
    restic: &crate::restic::Restic,
    which: &str,
    job: Option<&str>,
) -> anyhow::Result<(String, String)> {
    if which == "latest" {
        let job = match job {
            Some(j) => {
                ctx.config.select_jobs(&[j.to_string()])?;
                j.to_string()
            }
            None if ctx.config.jobs.len() == 1 => {
                ctx.config.jobs.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(usage(format!(
                    "`restore latest` needs --job when the config has several jobs ({})",
                    ctx.config.job_names()
                )));
            }
        };
        if let Some(s) = ctx.catalog.latest_good(&job)? {
            return Ok((job, s.snapshot_id));
        }
        // The catalog may be new or lost: ask the repository itself.
        let mut found = restic.snapshots(&[job_tag(&job)]).await?;
        found.sort_by(|a, b| a.time.cmp(&b.time));
        return match found.pop() {
            Some(s) => Ok((job, s.id)),
            None => Err(anyhow::anyhow!(
                "job `{job}` has no snapshot, neither in the catalog nor in the repository {}; run `omk-backup backup {job}` first",
                restic.url()
            )),
        };
    }
    let matches: Vec<SnapshotRow> = ctx.catalog.find_snapshot(which)?;
    match matches.as_slice() {
        [one] => {
            if one.state == SnapshotState::Forgotten {
                anyhow::bail!(
                    "snapshot {which} was forgotten ({}); pick another with `omk-backup snapshots`",
                    one.note.as_deref().unwrap_or("retention")
                );
            }
            if let Some(j) = job
                && j != one.job
            {
                return Err(usage(format!(
                    "snapshot {which} belongs to job `{}`, not `{j}`",
                    one.job
                )));
            }
            Ok((one.job.clone(), one.snapshot_id.clone()))
        }
        [] => {
            // Not in the catalog: maybe in the repository.
            let all = restic.snapshots(&[]).await?;
            let hits: Vec<_> = all
                .into_iter()
                .filter(|s| s.id.starts_with(which))
                .collect();
            match hits.as_slice() {
                [s] => match (parse_tags(&s.tags).0, job) {
                    (Some(j), _) => Ok((j, s.id.clone())),
                    (None, Some(j)) => Ok((j.to_string(), s.id.clone())),
                    (None, None) => Err(usage(format!(
                        "snapshot {which} carries no omk:job tag; pass --job"
                    ))),
                },
                [] => Err(usage(format!(
                    "no snapshot {which}; list them with `omk-backup snapshots`"
                ))),
                _ => Err(usage(format!(
                    "snapshot id {which} is ambiguous; give more characters"
                ))),
            }
        }
        _ => Err(usage(format!(
            "snapshot id {which} is ambiguous; give more characters"
        ))),
    }
}
