//! `restore --from COPY`: which snapshot of a copy repository to restore. The catalog
//! vouches for it as for the primary: `latest` is the newest *good* snapshot the copy
//! holds (recorded by `copy`), an id may be the primary's or the copy's own; a snapshot
//! only the copy knows (a lost catalog) takes `--allow-unverified`. The primary is never
//! contacted: the copy alone is enough.

use super::session::Session;
use super::verify::deliver::short;
use crate::domain::{SnapshotState, job_tag, parse_tags};
use crate::exit::usage;
use crate::restic::Restic;

/// (job, the catalog's id, the id in the copy) of the snapshot `which` names.
pub async fn pick(
    ctx: &Session,
    restic: &Restic,
    copy: &str,
    which: &str,
    job: Option<&str>,
    allow_unverified: bool,
) -> anyhow::Result<(String, String, String)> {
    if which == "latest" {
        let job = job_of(ctx, job)?;
        if let Some((row, id)) = ctx.catalog.latest_good_in(&job, copy)? {
            return Ok((job, row.snapshot_id, id));
        }
        let mut found = restic.snapshots(&[job_tag(&job)]).await?;
        found.sort_by(|a, b| a.time.cmp(&b.time));
        return match found.pop() {
            Some(s) if allow_unverified => {
                let catalog_id = s.original.clone().unwrap_or_else(|| s.id.clone());
                Ok((job, catalog_id, s.id))
            }
            Some(s) => Err(usage(format!(
                "the catalog records no good snapshot of job `{job}` in copy `{copy}`, but the copy {} holds {} snapshot(s) of it (newest {}); run `omk-backup copy --to {copy}` to record them, or pass --allow-unverified to restore the newest anyway",
                restic.url(),
                found.len() + 1,
                short(&s.id)
            ))),
            None => Err(anyhow::anyhow!(
                "the copy `{copy}` ({}) holds no snapshot of job `{job}` (host `{}`); run `omk-backup copy --to {copy}` while the primary is reachable",
                restic.url(),
                restic.host()
            )),
        };
    }
    match ctx.catalog.copy_lookup(copy, which)?.as_slice() {
        [one] => {
            let row = ctx.catalog.find_snapshot(&one.snapshot_id)?;
            let Some(row) = row.first() else {
                anyhow::bail!(
                    "snapshot {which} is recorded in copy `{copy}` but not in the catalog; run `omk-backup catalog rebuild`"
                );
            };
            if let Some(j) = job
                && j != row.job
            {
                return Err(usage(format!(
                    "snapshot {which} belongs to job `{}`, not `{j}`",
                    row.job
                )));
            }
            if row.state != SnapshotState::Good && !allow_unverified {
                return Err(usage(format!(
                    "snapshot {} is {}; restore-test it, or pass --allow-unverified to restore it anyway",
                    short(&row.snapshot_id),
                    row.state.as_str()
                )));
            }
            Ok((
                row.job.clone(),
                row.snapshot_id.clone(),
                one.copy_id.clone(),
            ))
        }
        [] => only_in_copy(restic, copy, which, job, allow_unverified).await,
        _ => Err(usage(format!(
            "snapshot id {which} is ambiguous; give more characters"
        ))),
    }
}

/// The job `restore latest` means: the one named, else the only one.
fn job_of(ctx: &Session, job: Option<&str>) -> anyhow::Result<String> {
    match job {
        Some(j) => {
            ctx.config.select_jobs(&[j.to_string()])?;
            Ok(j.to_string())
        }
        None if ctx.config.jobs.len() == 1 => {
            Ok(ctx.config.jobs.keys().next().cloned().unwrap_or_default())
        }
        None => Err(usage(format!(
            "`restore latest` needs --job when the config has several jobs ({})",
            ctx.config.job_names()
        ))),
    }
}

/// An id the catalog does not record in this copy: maybe the copy has it.
async fn only_in_copy(
    restic: &Restic,
    copy: &str,
    which: &str,
    job: Option<&str>,
    allow_unverified: bool,
) -> anyhow::Result<(String, String, String)> {
    let hits: Vec<_> = restic
        .snapshots(&[])
        .await?
        .into_iter()
        .filter(|s| {
            s.id.starts_with(which) || s.original.as_deref().is_some_and(|o| o.starts_with(which))
        })
        .collect();
    match hits.as_slice() {
        [s] if !allow_unverified => Err(usage(format!(
            "snapshot {} is in copy `{copy}` but the catalog does not record it there, so nothing vouches for it; pass --allow-unverified to restore it anyway",
            short(&s.id)
        ))),
        [s] => {
            let j = match (parse_tags(&s.tags).0, job) {
                (Some(j), _) => j,
                (None, Some(j)) => j.to_string(),
                (None, None) => {
                    return Err(usage(format!(
                        "snapshot {which} carries no omk:job tag; pass --job"
                    )));
                }
            };
            let catalog_id = s.original.clone().unwrap_or_else(|| s.id.clone());
            Ok((j, catalog_id, s.id.clone()))
        }
        [] => Err(usage(format!(
            "no snapshot {which} in copy `{copy}`; list the copied ones with `omk-backup status`"
        ))),
        _ => Err(usage(format!(
            "snapshot id {which} is ambiguous; give more characters"
        ))),
    }
}
