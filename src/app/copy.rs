//! `omk-backup copy [--to NAME] [JOB...] [--init]`: put this host's *good* snapshots
//! (the catalog's word, never restic's) into the `[copies.NAME]` repositories that lack
//! them, with `restic copy`, then apply each copy's retention to it.
//!
//! What a copy holds is learnt from the copy itself each time, after `restic copy` (which
//! skips what the copy holds by `original`, the primary's id), so a repeat, or a run
//! after an interrupted one, copies exactly what is missing and never a snapshot twice:
//! for a local copy from restic's report checked against the copy's snapshot files, for
//! any other (or a report that does not account for everything) by listing the copy. Each copy is its own step: one
//! copy failing (a wrong password, a missing repository, a server away) fails the run
//! (exit 1) but the other copies still run. A missing copy repository is created only on
//! purpose (`--init`, with the primary's chunker parameters so copied data deduplicates).
//!
//! Invariant: only snapshots the catalog marks `good`, of this host, are ever copied;
//! retention on a copy waits, like the primary's, for a job's last backup to succeed.

use super::now_ms;
use super::recorder::RunRecorder;
use super::reporter::Reporter;
use super::session::Session;
use crate::config::{Copy, Job};
use crate::domain::{RunStatus, job_tag};
use crate::exit::{Outcome, usage};
use crate::restic::{CopiedSnapshot, Restic, ResticError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub run_id: String,
    pub copies: Vec<CopyResult>,
}

/// One copy repository's part of the run.
#[derive(Debug, Clone, Serialize)]
pub struct CopyResult {
    pub repository: String,
    /// The copy's URL, credentials masked.
    pub url: String,
    pub status: RunStatus,
    pub jobs: Vec<CopyJob>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyJob {
    pub job: String,
    /// Primary snapshot ids copied by this run.
    pub copied: Vec<String>,
    /// Good snapshots the copy holds after the run.
    pub held: usize,
    /// Primary snapshot ids whose copies its retention removed.
    pub removed: Vec<String>,
    pub retention: Option<String>,
}

impl CopyReport {
    pub fn outcome(&self) -> Outcome {
        super::outcome_of(&self.copies, |c| c.status != RunStatus::Success)
    }

    fn first_error(&self) -> Option<String> {
        self.copies.iter().find_map(|c| {
            c.error
                .as_ref()
                .map(|e| format!("copy `{}`: {e}", c.repository))
        })
    }
}

pub async fn run(
    s: &Session,
    to: Option<&str>,
    names: &[String],
    init: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<CopyReport> {
    let targets: Vec<Copy> = match to {
        Some(n) => vec![s.config.copy_named(n)?.clone()],
        None => s.config.copies.values().cloned().collect(),
    };
    if targets.is_empty() {
        return Err(usage(format!(
            "{} has no [copies.NAME] section, so there is nothing to copy to; add one (docs/copies.md)",
            s.config.file.display()
        )));
    }
    let jobs = s.jobs(names)?;
    let rec = RunRecorder::start(s, "copy", &[]).await?;
    let res = async {
        let primary = s.restic().await?;
        let mut copies = Vec::new();
        for copy in &targets {
            copies.push(copy_one(s, &rec, &primary, copy, &jobs, init, reporter).await?);
        }
        Ok(CopyReport {
            run_id: rec.id().to_string(),
            copies,
        })
    }
    .await;
    rec.close(res, |r| (super::run_status(r.outcome()), r.first_error()))
        .await
}

/// One copy: open (or, with `--init`, create) it, copy what it lacks, apply retention.
/// Its own failures are its result; only a catalog failure is an error.
async fn copy_one(
    s: &Session,
    rec: &RunRecorder<'_>,
    primary: &Restic,
    copy: &Copy,
    jobs: &[Job],
    init: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<CopyResult> {
    let target = primary.for_repository(&copy.repository);
    let step = rec.step(None, "copy")?;
    let mut out = CopyResult {
        repository: copy.name.clone(),
        url: target.url().to_string(),
        status: RunStatus::Success,
        jobs: Vec::new(),
        error: None,
    };
    let done = fill(s, rec.id(), primary, &target, copy, jobs, init, reporter).await;
    match done {
        Ok(per_job) => {
            out.jobs = per_job;
            rec.finish_step(step, RunStatus::Success, None, None)?;
        }
        Err(Failure::Copy(msg)) => {
            reporter.note(&format!("copy `{}`: {msg}", copy.name));
            rec.finish_step(
                step,
                RunStatus::Failed,
                None,
                Some(&format!("copy `{}`: {msg}", copy.name)),
            )?;
            out.status = RunStatus::Failed;
            out.error = Some(msg);
        }
        Err(Failure::Catalog(e)) => return Err(e),
    }
    Ok(out)
}

/// How one copy failed: its own problem (reported, the run goes on) or ours.
enum Failure {
    Copy(String),
    Catalog(anyhow::Error),
}

impl From<crate::catalog::CatalogError> for Failure {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Failure::Catalog(e.into())
    }
}

#[allow(clippy::too_many_arguments)]
async fn fill(
    s: &Session,
    run_id: &str,
    primary: &Restic,
    target: &Restic,
    copy: &Copy,
    jobs: &[Job],
    init: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<CopyJob>, Failure> {
    if init {
        open_or_init(primary, target, copy, reporter).await?;
    }
    // What the catalog believes the copy holds; what its own retention removed stays
    // removed. restic copy itself skips what the copy holds (by `original`), so the
    // copy is read once, afterwards: from restic's report checked against a local
    // copy's snapshot files, else with one restic process more than a bare copy.
    let before: BTreeSet<String> = s
        .catalog
        .copies_in(&copy.name)?
        .into_iter()
        .map(|c| c.snapshot_id)
        .collect();
    let retired: BTreeSet<String> = s.catalog.retired_in(&copy.name)?.into_iter().collect();
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut wanted = Vec::new();
    for job in jobs {
        let ids: Vec<String> = s
            .catalog
            .good_snapshots(&job.name)?
            .into_iter()
            .map(|r| r.snapshot_id)
            .filter(|id| !retired.contains(id))
            .collect();
        let new: Vec<String> = ids
            .iter()
            .filter(|id| !before.contains(*id))
            .cloned()
            .collect();
        wanted.extend(ids);
        missing.insert(&job.name, new);
    }
    let mut said = Vec::new();
    if !wanted.is_empty() {
        let n = missing.values().map(Vec::len).sum::<usize>();
        reporter.note(&format!(
            "copying to `{}` ({}): {n} new snapshot(s) by the catalog, {} good in all",
            copy.name,
            target.url(),
            wanted.len()
        ));
        said = match target.copy_from(primary, &wanted).await {
            Ok(said) => said,
            Err(e) => return Err(diagnose(primary, target, copy, e).await),
        };
    }
    let held = match reconcile_from_report(s, run_id, target, copy, &wanted, &said)? {
        Some(held) => held,
        None => reconcile(s, run_id, target, copy).await?,
    };
    let mut out = Vec::new();
    for job in jobs {
        let copied = missing.remove(job.name.as_str()).unwrap_or_default();
        if let Some(lost) = copied.iter().find(|id| !held.contains(*id)) {
            return Err(Failure::Copy(format!(
                "restic copy succeeded but the copy holds no snapshot of {} (job `{}`); run `omk-backup copy --to {}` again and check the repository",
                &lost[..8.min(lost.len())],
                job.name,
                copy.name
            )));
        }
        let (removed, retention) = retention(s, target, copy, job).await?;
        let held = s
            .catalog
            .good_snapshots(&job.name)?
            .iter()
            .filter(|r| held.contains(&r.snapshot_id) && !removed.contains(&r.snapshot_id))
            .count();
        out.push(CopyJob {
            job: job.name.clone(),
            copied,
            held,
            removed,
            retention,
        });
    }
    Ok(out)
}

/// A failed `restic copy`, named: restic says "wrong password" or "no repository" alike
/// for the source and the target, so each is opened on its own to tell which it was.
async fn diagnose(primary: &Restic, target: &Restic, copy: &Copy, e: ResticError) -> Failure {
    if let Err(te) = target.open().await {
        return Failure::Copy(explain(copy, te));
    }
    if let Err(pe) = primary.open().await {
        return Failure::Copy(format!(
            "the primary repository {} cannot be read: {pe}",
            primary.url()
        ));
    }
    Failure::Copy(explain(copy, e))
}

/// `--init`: open the copy, and create it if it does not exist.
async fn open_or_init(
    primary: &Restic,
    target: &Restic,
    copy: &Copy,
    reporter: &dyn Reporter,
) -> Result<(), Failure> {
    match target.open().await {
        Ok(()) => Ok(()),
        Err(ResticError::RepoMissing { .. }) => {
            reporter.note(&format!(
                "creating the copy repository `{}` at {} (chunker parameters of the primary)",
                copy.name,
                target.url()
            ));
            target
                .init_copy_of(primary)
                .await
                .map_err(|e| Failure::Copy(explain(copy, e)))
        }
        Err(e) => Err(Failure::Copy(explain(copy, e))),
    }
}

/// What a *local* copy holds, from restic's own report of the copy checked against the
/// copy's snapshot files (named by their ids), instead of one more restic process that
/// lists the copy (a key derivation and the snapshot files: 0.5–0.7 s, the whole
/// difference to a bare `restic copy`, docs/benchmarks.md). `None` (list the copy)
/// unless every wanted snapshot is named by exactly one report line whose source id
/// names no other wanted snapshot and whose copy id names exactly one snapshot file.
/// Copies the catalog lists whose files are gone are marked forgotten, as [`reconcile`]
/// does. Returns the primary ids held.
fn reconcile_from_report(
    s: &Session,
    run_id: &str,
    target: &Restic,
    copy: &Copy,
    wanted: &[String],
    said: &[CopiedSnapshot],
) -> Result<Option<BTreeSet<String>>, Failure> {
    if wanted.is_empty() {
        return Ok(None);
    }
    let Some(files) = target.local_snapshot_ids() else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for w in wanted {
        let lines: Vec<&CopiedSnapshot> =
            said.iter().filter(|c| w.starts_with(&c.source)).collect();
        let [line] = lines.as_slice() else {
            return Ok(None);
        };
        if wanted
            .iter()
            .filter(|x| x.starts_with(&line.source))
            .count()
            != 1
        {
            return Ok(None);
        }
        let ids: Vec<&String> = files.iter().filter(|f| f.starts_with(&line.copy)).collect();
        let [id] = ids.as_slice() else {
            return Ok(None);
        };
        found.push((w, *id));
    }
    let gone: Vec<String> = s
        .catalog
        .copies_in(&copy.name)?
        .into_iter()
        .map(|c| c.copy_id)
        .filter(|id| !files.contains(id))
        .collect();
    s.catalog.drop_copies(&copy.name, &gone)?;
    let now = now_ms();
    let mut held = BTreeSet::new();
    for (original, copy_id) in found {
        s.catalog
            .record_copy(original, &copy.name, copy_id, run_id, now)?;
        held.insert(original.clone());
    }
    Ok(Some(held))
}

/// What the copy holds, read from the copy: its snapshots of this host, by the primary
/// id they were copied from. The catalog is brought in line (copies gone from the
/// repository are marked forgotten). Returns the primary ids held.
async fn reconcile(
    s: &Session,
    run_id: &str,
    target: &Restic,
    copy: &Copy,
) -> Result<BTreeSet<String>, Failure> {
    let snaps = target
        .snapshots(&[])
        .await
        .map_err(|e| Failure::Copy(explain(copy, e)))?;
    let by_original: BTreeMap<String, String> = snaps
        .into_iter()
        .filter_map(|sn| sn.original.clone().map(|o| (o, sn.id)))
        .collect();
    let now = now_ms();
    let live: BTreeSet<&String> = by_original.values().collect();
    let gone: Vec<String> = s
        .catalog
        .copies_in(&copy.name)?
        .into_iter()
        .map(|c| c.copy_id)
        .filter(|id| !live.contains(id))
        .collect();
    s.catalog.drop_copies(&copy.name, &gone)?;
    let mut held = BTreeSet::new();
    for (original, copy_id) in &by_original {
        if s.catalog.has_snapshot(original)? {
            s.catalog
                .record_copy(original, &copy.name, copy_id, run_id, now)?;
            held.insert(original.clone());
        }
    }
    Ok(held)
}

/// The copy's retention for one job (host-scoped like the primary's), unless the job
/// has no rules or its last backup did not succeed. Returns the primary ids whose copies
/// were removed, and why retention did not run when it did not.
async fn retention(
    s: &Session,
    target: &Restic,
    copy: &Copy,
    job: &Job,
) -> Result<(Vec<String>, Option<String>), Failure> {
    let policy = s.config.copy_retention(copy, job);
    if policy.is_empty() {
        return Ok((vec![], Some("no retention rules".into())));
    }
    if let Some(last) = s.catalog.last_step(&job.name, "backup")?
        && last.status != RunStatus::Success
    {
        return Ok((
            vec![],
            Some(format!(
                "the last backup ({}) did not succeed; retention waits for a good backup",
                last.status.as_str()
            )),
        ));
    }
    let removed = target
        .forget_policy(&job_tag(&job.name), &policy)
        .await
        .map_err(|e| Failure::Copy(explain(copy, e)))?;
    let rows = s.catalog.copies_in(&copy.name)?;
    s.catalog.forget_copies(&copy.name, &removed, now_ms())?;
    let primary_ids = rows
        .into_iter()
        .filter(|r| removed.contains(&r.copy_id))
        .map(|r| r.snapshot_id)
        .collect();
    Ok((primary_ids, None))
}

/// A restic failure on a copy, in words that name the copy and its config keys.
fn explain(copy: &Copy, e: ResticError) -> String {
    let n = &copy.name;
    match e {
        ResticError::RepoMissing { url } => format!(
            "there is no restic repository at {url} (copies.{n}.url); create it on purpose with `omk-backup copy --to {n} --init`"
        ),
        ResticError::WrongPassword { url } => format!(
            "the password does not open the copy repository at {url}: check copies.{n}.password_file / password_command"
        ),
        ResticError::AccessDenied { url, status } => format!(
            "the server of {url} refused the credentials in copies.{n}.url (HTTP {status}): check the user and password in the URL (they are not shown here)"
        ),
        other => other.to_string(),
    }
}
