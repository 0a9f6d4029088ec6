//! `omk-backup restore latest|ID --job J --target DIR`: put a job's data back.
//!
//! The snapshot comes from the catalog (the newest *good* one for `latest`); when the
//! catalog knows none — a fresh machine with only the repository — restic is asked by
//! tag. A non-empty target is refused unless `--overwrite`; a files job restores only its
//! own paths, under the target (so `/srv/photos` lands in `DIR/srv/photos`).

use super::reporter::Reporter;
use super::session::Session;
use super::verify::deliver::{self, DROP_DIR, short};
use crate::catalog::Check;
use crate::catalog::{DumpRow, SnapshotRow};
use crate::config::Job;
use crate::docker::{ContainerInfo, ContainerState, Docker, ExecSpec};
use crate::domain::{JobKind, SnapshotState, job_tag, parse_tags};
use crate::engine::{self, Engine, Target};
use crate::exit::usage;
use crate::restic::Restic;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};

mod into;
pub use into::{IntoContainerArgs, IntoContainerReport, into_container};

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub job: String,
    pub snapshot_id: String,
    pub target: String,
    pub restored: Vec<String>,
    pub duration_ms: i64,
    /// The copy restored from (`--from`); absent: the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

pub struct RestoreArgs<'a> {
    pub snapshot: &'a str,
    pub job: Option<&'a str>,
    pub target: &'a Path,
    pub overwrite: bool,
    /// Another host's snapshots (disaster recovery); `None`: this host's.
    pub host: Option<&'a str>,
    /// Hand out a snapshot nobody vouched for (`--allow-unverified`).
    pub allow_unverified: bool,
    /// Restore from this copy (`[copies.NAME]`) alone.
    pub from: Option<&'a str>,
}

pub async fn run(
    ctx: &Session,
    a: RestoreArgs<'_>,
    reporter: &dyn Reporter,
) -> anyhow::Result<RestoreReport> {
    check_target(a.target, a.overwrite)?;
    let (restic, foreign) = restic_for_host(ctx.restic().await?, a.host)?;
    // `snap` is the id in the repository restored from; `catalog_id` the catalog's.
    let (restic, job_name, snap, catalog_id) = source(ctx, restic, foreign, &a).await?;
    let job = ctx.config.jobs.get(&job_name).ok_or_else(|| {
        usage(format!(
            "snapshot {} belongs to job `{job_name}`, which {} does not define; add the job back to the config to restore it",
            short(&snap),
            ctx.config.file.display()
        ))
    })?;
    std::fs::create_dir_all(a.target)
        .with_context(|| format!("cannot create the restore target {}", a.target.display()))?;
    let started = super::now_ms();
    reporter.note(&format!(
        "{job_name}: restoring snapshot {} into {}",
        short(&snap),
        a.target.display()
    ));
    let restored = match job.kind {
        // Another host's snapshot holds that host's paths, not this config's: restore it
        // whole (an include filter of our paths would restore nothing, successfully).
        JobKind::Files if foreign => {
            restic
                .restore(&snap, a.target, &[])
                .await
                .with_context(|| format!("restoring {job_name} of host {}", restic.host()))?;
            vec![a.target.display().to_string()]
        }
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
                .dump(&catalog_id)?
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
        from: a.from.map(str::to_string),
    })
}

/// The repository restored from (the primary, or the copy `--from` names), the job,
/// the snapshot's id there and its id in the catalog.
async fn source(
    ctx: &Session,
    restic: Restic,
    foreign: bool,
    a: &RestoreArgs<'_>,
) -> anyhow::Result<(Restic, String, String, String)> {
    match a.from {
        Some(name) => {
            let copy = ctx.config.copy_named(name)?;
            let restic = restic.for_repository(&copy.repository);
            let (job, catalog_id, snap) = super::restore_copy::pick(
                ctx,
                &restic,
                name,
                a.snapshot,
                a.job,
                a.allow_unverified,
            )
            .await?;
            Ok((restic, job, snap, catalog_id))
        }
        None => {
            let pick = Pick {
                foreign,
                allow_unverified: a.allow_unverified,
            };
            let (job, snap) = pick_snapshot(ctx, &restic, a.snapshot, a.job, pick).await?;
            Ok((restic, job, snap.clone(), snap))
        }
    }
}

/// restic looking at `host`'s snapshots, and whether that is another host than ours
/// (its snapshots are not in this catalog: the repository is asked for them).
fn restic_for_host(restic: Restic, host: Option<&str>) -> anyhow::Result<(Restic, bool)> {
    match host {
        Some(h) if h != restic.host() => {
            crate::config::valid_host(h).map_err(|why| usage(format!("--host {h:?} {why}")))?;
            Ok((restic.with_host(h), true))
        }
        _ => Ok((restic, false)),
    }
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

/// How a snapshot may be picked.
#[derive(Clone, Copy)]
struct Pick {
    /// Another host's snapshots (not in this catalog).
    foreign: bool,
    /// `--allow-unverified`: a snapshot that is not `good` may be handed out.
    allow_unverified: bool,
}

/// Resolve `latest` or an id (prefix) to (job, full snapshot id). Only a `good` snapshot
/// is handed out unless `--allow-unverified`: one the catalog marks otherwise, and one
/// only the repository knows (a lost catalog, another host), cannot be vouched for.
async fn pick_snapshot(
    ctx: &Session,
    restic: &Restic,
    which: &str,
    job: Option<&str>,
    pick: Pick,
) -> anyhow::Result<(String, String)> {
    let foreign = pick.foreign;
    if which == "latest" {
        return latest(ctx, restic, job, pick).await;
    }
    let matches: Vec<SnapshotRow> = if foreign {
        Vec::new()
    } else {
        ctx.catalog.find_snapshot(which)?
    };
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
            if one.state != SnapshotState::Good && !pick.allow_unverified {
                return Err(usage(format!(
                    "snapshot {} is {} ({}); restore-test it, or pass --allow-unverified to restore it anyway",
                    short(&one.snapshot_id),
                    one.state.as_str(),
                    one.note.as_deref().unwrap_or("not verified")
                )));
            }
            Ok((one.job.clone(), one.snapshot_id.clone()))
        }
        // Not in the catalog: maybe in the repository.
        [] => from_repository(restic, which, job, pick).await,
        _ => Err(usage(format!(
            "snapshot id {which} is ambiguous; give more characters"
        ))),
    }
}

/// A snapshot id (prefix) that this catalog does not know, looked up in the repository;
/// nothing vouches for it, so it takes `--allow-unverified`.
async fn from_repository(
    restic: &Restic,
    which: &str,
    job: Option<&str>,
    pick: Pick,
) -> anyhow::Result<(String, String)> {
    let foreign = pick.foreign;
    let all = restic.snapshots(&[]).await?;
    let hits: Vec<_> = all
        .into_iter()
        .filter(|s| s.id.starts_with(which))
        .collect();
    if let [s] = hits.as_slice()
        && !pick.allow_unverified
    {
        return Err(usage(format!(
            "snapshot {} is in the repository {} but not in this catalog{}, so nothing vouches for it; pass --allow-unverified to restore it anyway",
            short(&s.id),
            restic.url(),
            if foreign { " (another host's)" } else { "" }
        )));
    }
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

/// The newest good snapshot of `job` (the only job when none is named): from the
/// catalog, else (a new or lost catalog) from the repository by tag.
async fn latest(
    ctx: &Session,
    restic: &Restic,
    job: Option<&str>,
    pick: Pick,
) -> anyhow::Result<(String, String)> {
    let foreign = pick.foreign;
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
    if !foreign && let Some(s) = ctx.catalog.latest_good(&job)? {
        return Ok((job, s.snapshot_id));
    }
    // The catalog may be new or lost (or the snapshots are another host's): ask the
    // repository itself.
    let mut found = restic.snapshots(&[job_tag(&job)]).await?;
    found.sort_by(|a, b| a.time.cmp(&b.time));
    // Another host's newest snapshot that this catalog knows as good (a catalog that
    // came with that host's kit, or an instance that backed up both): vouched for.
    if foreign
        && let Some(s) = found.last()
        && ctx
            .catalog
            .find_snapshot(&s.id)?
            .first()
            .is_some_and(|r| r.state == SnapshotState::Good)
    {
        return Ok((job, s.id.clone()));
    }
    if !found.is_empty() && !pick.allow_unverified {
        let suspect = if foreign {
            Vec::new()
        } else {
            ctx.catalog
                .snapshots(Some(&job))?
                .into_iter()
                .filter(|s| s.state == SnapshotState::Suspect)
                .map(|s| s.snapshot_id)
                .collect()
        };
        return Err(unvouched(&job, restic, &found, &suspect, foreign));
    }
    match found.pop() {
        Some(s) => Ok((job, s.id)),
        None if foreign => Err(anyhow::anyhow!(
            "host `{}` has no snapshot of job `{job}` in the repository {}; list the hosts with `restic snapshots`",
            restic.host(),
            restic.url()
        )),
        None => Err(anyhow::anyhow!(
            "job `{job}` has no snapshot, neither in the catalog nor in the repository {} (host `{}`); run `omk-backup backup {job}` first",
            restic.url(),
            restic.host()
        )),
    }
}

/// The error of `restore latest` when no good snapshot exists but the repository holds
/// some (`found`, oldest first; `suspect`: those the catalog holds as suspect, from a
/// source that shrank): it names them and the flag.
fn unvouched(
    job: &str,
    restic: &Restic,
    found: &[crate::restic::Snapshot],
    suspect: &[String],
    foreign: bool,
) -> anyhow::Error {
    let ids: Vec<&str> = found.iter().rev().map(|s| short(&s.id)).collect();
    let whose = if foreign {
        format!(
            "host `{}`'s snapshots are not in this catalog",
            restic.host()
        )
    } else if suspect.is_empty() {
        "the catalog has no good snapshot".to_string()
    } else {
        let ids: Vec<&str> = suspect.iter().map(|s| short(s)).collect();
        format!(
            "the catalog has no good snapshot ({} suspect: {}; their source shrank or vanished, see `omk-backup snapshots`)",
            ids.len(),
            ids.join(", ")
        )
    };
    usage(format!(
        "`restore latest` hands out only verified snapshots, and {whose}; job `{job}` has {} not verified good in the repository {} (newest first: {}); restore-test one, or pass --allow-unverified to restore the newest ({}) anyway",
        ids.len(),
        restic.url(),
        ids.join(", "),
        ids[0]
    ))
}
