//! `omk-backup backup`: one run, one step per job, a snapshot per successful job.
//!
//! Invariants: a snapshot is recorded `good` only after restic reported success; a
//! snapshot restic made from an incomplete source is forgotten at once (so retention can
//! never keep it instead of a good one); repository-wide failures (wrong password, no
//! repository, restic missing) stop the run instead of failing every job the same way.
//!
//! A vanished source is never a good backup: a snapshot whose figures fell to zero or
//! by more than the job's `shrink_limit` against its last good one is recorded
//! `suspect` and fails the job (`app::shrink`), unless the run was given
//! `--accept-shrink JOB`. A cut dump (no end marker) never becomes a snapshot at all.

use super::now_ms;
use super::recorder::{RunRecorder, Step};
use super::reporter::Reporter;
use super::session::Session;
use super::shrink::{self, Figures, Judged};
use crate::catalog::{DumpRow, SnapshotRow, StepDetail};
use crate::config::Job;
use crate::domain::{JobKind, RunStatus, SnapshotState, job_tag, run_tag};
use crate::exit::Outcome;
use crate::fault;
use crate::restic::{Restic, ResticError};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub run_id: String,
    pub jobs: Vec<JobResult>,
    /// Label discovery's refusals and failure: each fails the run (the job it would
    /// have made is not backed up).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    pub job: String,
    pub kind: JobKind,
    pub status: RunStatus,
    pub snapshot_id: Option<String>,
    pub bytes: Option<u64>,
    pub files: Option<u64>,
    pub data_added: Option<u64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The failure is the set-up's to fix (a socket proxy refusing a call, credentials
    /// the server refuses): the run exits 2, not 1.
    #[serde(skip)]
    pub setup: bool,
}

impl BackupReport {
    pub fn outcome(&self) -> Outcome {
        let o = super::outcome_of(&self.jobs, |j| j.status != RunStatus::Success)
            .worst(Outcome::from_failures(!self.problems.is_empty()));
        if self.jobs.iter().any(|j| j.setup) {
            o.worst(Outcome::Usage)
        } else {
            o
        }
    }
}

/// What a job's backup produced, before it is written to the catalog.
struct Made {
    snapshot_id: String,
    bytes: u64,
    files: u64,
    data_added: u64,
    /// Database jobs: the dump's digest and fingerprint.
    dump: Option<DumpRow>,
}

pub async fn run(
    s: &Session,
    names: &[String],
    init: bool,
    accept_shrink: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<BackupReport> {
    let jobs = s.jobs(names)?;
    accepted_shrinks(s, &jobs, accept_shrink)?;
    if jobs.is_empty() {
        reporter.note(&format!(
            "{} defines no jobs: nothing to back up",
            s.config.file.display()
        ));
    }
    let names_given = !names.is_empty();
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    // The run is recorded (and notified) before restic is even looked for: a missing
    // restic or repository is a failed run its pings report, not silence.
    let rec = RunRecorder::start(s, "backup", &names).await?;
    let run_id = rec.id().to_string();
    let res = async {
        let restic = s.restic().await?;
        if init {
            init_repository(&restic, reporter).await?;
        }
        compression_fits(s, &restic, reporter).await?;
        // Refused labels fail a run of every job; a run of named jobs is about those.
        let problems = if names_given {
            Vec::new()
        } else {
            s.discovery.errors()
        };
        let run = Run {
            rec: &rec,
            restic: &restic,
            accept_shrink,
        };
        back_up_all(s, &run, &jobs, problems, reporter).await
    }
    .await;
    let (report, fatal) = rec
        .close(res, |(r, _)| {
            let err = r.problems.first().cloned().or_else(|| {
                r.jobs
                    .iter()
                    .find_map(|j| j.error.as_ref().map(|e| format!("{}: {e}", j.job)))
            });
            (super::run_status(r.outcome()), err)
        })
        .await?;
    if let Some(e) = fatal {
        // The whole repository is unusable: report it as the command's error so the
        // exit code says "fix the setup" (2) or "failed" (1), with restic's words.
        return Err(anyhow::Error::new(e).context(format!("backup run {run_id} stopped")));
    }
    Ok(report)
}

async fn init_repository(restic: &Restic, reporter: &dyn Reporter) -> anyhow::Result<()> {
    match restic.init().await {
        Ok(()) => reporter.note(&format!(
            "created a new restic repository at {}",
            restic.url()
        )),
        Err(ResticError::AlreadyExists { .. }) => {
            reporter.note(&format!("repository {} already exists", restic.url()))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `--accept-shrink JOB`: each must name a job of this run (else a usage error, exit 2).
fn accepted_shrinks(s: &Session, jobs: &[Job], accept: &[String]) -> anyhow::Result<()> {
    s.jobs(accept)?;
    for a in accept {
        if !jobs.iter().any(|j| j.name == *a) {
            return Err(crate::exit::usage(format!(
                "--accept-shrink {a}: job `{a}` is not backed up by this run; name it too (`omk-backup backup {a} --accept-shrink {a}`)"
            )));
        }
    }
    Ok(())
}

/// What every job of one backup run shares.
struct Run<'a> {
    rec: &'a RunRecorder<'a>,
    restic: &'a Restic,
    /// `--accept-shrink`: jobs whose shrink check is waived.
    accept_shrink: &'a [String],
}

/// restic ignores `--compression` on a version 1 repository without a word: `max` there
/// is refused (the user asked for something restic would not do), `auto`/`off` noted.
async fn compression_fits(
    s: &Session,
    restic: &Restic,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let Some(c) = restic.compression() else {
        return Ok(());
    };
    if restic.format_version().await? >= 2 {
        return Ok(());
    }
    let what = format!(
        "{}: [repository] compression = \"{}\", but {} is a version 1 repository, which restic never compresses",
        s.config.file.display(),
        c.as_str(),
        restic.url()
    );
    if c == crate::config::Compression::Max {
        anyhow::bail!(
            "{what}: upgrade it with `restic migrate upgrade_repo_v2` (restic >= 0.14), or remove `compression`"
        );
    }
    reporter.note(&format!("{what}; the setting has no effect there"));
    Ok(())
}

/// Every job in turn; a repository-wide failure stops the others (not attempted).
async fn back_up_all(
    s: &Session,
    run: &Run<'_>,
    jobs: &[Job],
    problems: Vec<String>,
    reporter: &dyn Reporter,
) -> anyhow::Result<(BackupReport, Option<ResticError>)> {
    let (rec, restic) = (run.rec, run.restic);
    // Refused labels and a failed discovery are failures of this run, recorded first.
    for p in &problems {
        let step = rec.step(None, "discover")?;
        // (Already said once, when discovery ran.)
        rec.finish_step(step, RunStatus::Failed, None, Some(p))?;
    }
    let mut results = Vec::new();
    let mut fatal: Option<ResticError> = None;
    for job in jobs {
        if let Some(e) = &fatal {
            let why = format!("not attempted: {e}");
            rec.job_not_attempted(&job.name, &why);
            results.push(skipped(job, &why));
            continue;
        }
        let started = now_ms();
        let step = rec.step(Some(&job.name), "backup")?;
        reporter.note(&format!("{}: backing up ({})", job.name, job.kind));
        let made = backup_job(s, restic, rec.id(), job, reporter).await;
        reporter.step_done();
        let result = match made {
            Ok(m) => {
                let accepted = run.accept_shrink.contains(&job.name);
                let judged =
                    shrink::check(&s.catalog, job, &m.snapshot_id, &m.figures(), accepted)?;
                let r = record_made(s, rec, step, job, m, &judged, started)?;
                say_judged(job, &judged, &r, reporter);
                r
            }
            Err(e) => {
                let msg = format!("{e:#}");
                rec.finish_step(step, RunStatus::Failed, None, Some(&msg))?;
                reporter.note(&format!("{}: FAILED: {msg}", job.name));
                if let Some(r) = e.downcast_ref::<ResticError>()
                    && is_repository_wide(r)
                {
                    fatal = Some(clone_fatal(r));
                }
                JobResult {
                    error: Some(msg),
                    duration_ms: now_ms() - started,
                    setup: crate::exit::classify(&e) == Outcome::Usage,
                    ..skipped(job, "")
                }
                .with_status(RunStatus::Failed)
            }
        };
        results.push(result);
    }
    let report = BackupReport {
        run_id: rec.id().to_string(),
        jobs: results,
        problems,
    };
    Ok((report, fatal))
}

impl Made {
    /// The figures the shrink check compares: files and bytes of a files job, the
    /// dump's bytes and total rows of a database job.
    fn figures(&self) -> Figures {
        match &self.dump {
            None => Figures {
                files: Some(self.files),
                bytes: Some(self.bytes),
                rows: None,
            },
            Some(d) => Figures {
                files: None,
                bytes: Some(self.bytes),
                rows: d.fingerprint.as_ref().map(|f| f.rows),
            },
        }
    }
}

/// Say what became of a made snapshot: a suspect one fails like any failed job (its
/// message is also the job's `error` in `--json`); an empty first backup warns on
/// stderr whatever the output mode; an accepted shrink is noted.
fn say_judged(job: &Job, judged: &Judged, r: &JobResult, reporter: &dyn Reporter) {
    let note = match judged {
        Judged::Suspect(msg) => {
            reporter.note(&format!("{}: FAILED: {msg}", job.name));
            return;
        }
        Judged::EmptyFirst(warning) => {
            tracing::warn!("{warning}");
            None
        }
        Judged::Good { note } => note.as_ref(),
    };
    if let Some(n) = note {
        reporter.note(&format!("{}: {n}", job.name));
    }
    reporter.note(&format!(
        "{}: snapshot {} ({} bytes, {} added)",
        job.name,
        short(r.snapshot_id.as_deref().unwrap_or_default()),
        r.bytes.unwrap_or_default(),
        r.data_added.unwrap_or_default()
    ));
}

/// Record a job's snapshot (and dump) as the shrink check judged it (good, or suspect:
/// the job fails), then its step.
fn record_made(
    s: &Session,
    rec: &RunRecorder<'_>,
    step: Step,
    job: &Job,
    m: Made,
    judged: &Judged,
    started: i64,
) -> anyhow::Result<JobResult> {
    fault::point(fault::AFTER_SNAPSHOT);
    let finished = now_ms();
    let (state, status, note, error) = match judged {
        Judged::Good { note } => (SnapshotState::Good, RunStatus::Success, note.clone(), None),
        Judged::EmptyFirst(w) => (
            SnapshotState::Good,
            RunStatus::Success,
            Some(w.clone()),
            None,
        ),
        Judged::Suspect(msg) => (
            SnapshotState::Suspect,
            RunStatus::Failed,
            Some(msg.clone()),
            Some(msg.clone()),
        ),
    };
    s.catalog.insert_snapshot(&SnapshotRow {
        snapshot_id: m.snapshot_id.clone(),
        job: job.name.clone(),
        run_id: Some(rec.id().to_string()),
        time: started,
        bytes: Some(m.bytes as i64),
        files: Some(m.files as i64),
        data_added: Some(m.data_added as i64),
        duration_ms: Some(finished - started),
        state,
        note: note.clone(),
    })?;
    if let Some(d) = &m.dump {
        s.catalog.insert_dump(d)?;
    }
    let detail = StepDetail::Backup {
        snapshot_id: m.snapshot_id.clone(),
        bytes: m.bytes,
        files: m.files,
        data_added: m.data_added,
        sha256: m.dump.as_ref().map(|d| d.sha256.clone()),
        dump_bytes: m.dump.as_ref().map(|d| d.bytes),
        shrink: note,
    };
    rec.finish_step(step, status, Some(&detail), error.as_deref())?;
    Ok(JobResult {
        job: job.name.clone(),
        kind: job.kind,
        status,
        snapshot_id: Some(m.snapshot_id),
        bytes: Some(m.bytes),
        files: Some(m.files),
        data_added: Some(m.data_added),
        duration_ms: finished - started,
        error,
        setup: false,
    })
}

async fn backup_job(
    ctx: &Session,
    restic: &Restic,
    run_id: &str,
    job: &Job,
    reporter: &dyn Reporter,
) -> anyhow::Result<Made> {
    let tags = [job_tag(&job.name), run_tag(run_id)];
    match job.kind {
        JobKind::Files => {
            let backed_up = copy_files(ctx, restic, run_id, job, &tags, reporter).await?;
            match backed_up {
                Ok(done) => Ok(Made {
                    snapshot_id: restic.full_id(&done.snapshot_id).await?,
                    bytes: done.summary.total_bytes_processed,
                    files: done.summary.total_files_processed,
                    data_added: done.summary.data_added,
                    dump: None,
                }),
                Err(ResticError::SourceUnreadable {
                    snapshot_id,
                    detail,
                }) => {
                    let why = "some source files could not be read";
                    discard(ctx, restic, job, run_id, snapshot_id.as_deref(), why).await;
                    Err(ResticError::SourceUnreadable {
                        snapshot_id,
                        detail,
                    }
                    .into())
                }
                Err(e) => Err(e.into()),
            }
        }
        kind => {
            let docker = ctx.docker_for(job).await?;
            match super::dump::dump_job(&docker, restic, job, &tags).await {
                Ok(d) => {
                    let snapshot_id = restic.full_id(&d.backup.snapshot_id).await?;
                    Ok(Made {
                        bytes: d.bytes,
                        files: d.backup.summary.total_files_processed,
                        data_added: d.backup.summary.data_added,
                        dump: Some(DumpRow {
                            snapshot_id: snapshot_id.clone(),
                            job: job.name.clone(),
                            engine: kind.as_str().to_string(),
                            filename: d.filename,
                            sha256: d.sha256,
                            bytes: d.bytes as i64,
                            fingerprint: Some(d.fingerprint),
                        }),
                        snapshot_id,
                    })
                }
                Err(f) => {
                    let why = "the dump did not complete";
                    discard(ctx, restic, job, run_id, f.snapshot_id.as_deref(), why).await;
                    Err(f.error)
                }
            }
        }
    }
}

/// A files job's `restic backup`, quiesced first when asked (journaled) and resumed as
/// soon as restic is done, whatever it answered. The outer error is the container's.
async fn copy_files(
    ctx: &Session,
    restic: &Restic,
    run_id: &str,
    job: &Job,
    tags: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<Result<crate::restic::BackupDone, ResticError>> {
    let name = job.name.clone();
    let mut progress = |s: &crate::restic::BackupStatus| reporter.backup_progress(&name, s);
    let quiesced = match &job.quiesce {
        Some(q) => {
            let docker = ctx.docker_for(job).await?;
            let qd = super::quiesce::quiesce(ctx, &docker, run_id, job, q, reporter).await?;
            Some((docker, qd))
        }
        None => None,
    };
    let backed_up = restic
        .backup_paths(&job.paths, &job.exclude, tags, &mut progress)
        .await;
    if let Some((docker, qd)) = quiesced {
        match super::quiesce::resume(ctx, &docker, qd, reporter).await {
            Ok(Some(w)) => tracing::info!("{}: quiesce window {w} ms", job.name),
            Ok(None) => {}
            Err(e) => {
                if let Ok(done) = &backed_up {
                    // The data is safe; the failure is the container's.
                    return Err(e.context(format!(
                        "{}: restic made snapshot {} but the container was not resumed",
                        job.name, done.snapshot_id
                    )));
                }
                return Err(e);
            }
        }
    }
    Ok(backed_up)
}

/// Forget a bad snapshot right away and remember that we did.
pub(crate) async fn discard(
    ctx: &Session,
    restic: &Restic,
    job: &Job,
    run_id: &str,
    snapshot_id: Option<&str>,
    why: &str,
) {
    let Some(id) = snapshot_id else { return };
    let note = format!("discarded: {why}");
    let now = now_ms();
    let _ = ctx.catalog.insert_snapshot(&SnapshotRow {
        snapshot_id: id.to_string(),
        job: job.name.clone(),
        run_id: Some(run_id.to_string()),
        time: now,
        bytes: None,
        files: None,
        data_added: None,
        duration_ms: None,
        state: SnapshotState::Unverified,
        note: Some(note.clone()),
    });
    match restic.forget_ids(&[id.to_string()]).await {
        Ok(()) => {
            let _ = ctx.catalog.mark_forgotten(&[id.to_string()], &note, now);
        }
        Err(e) => tracing::error!(
            "{}: could not forget the bad snapshot {id}: {e}; it stays marked unverified",
            job.name
        ),
    }
}

fn is_repository_wide(e: &ResticError) -> bool {
    matches!(
        e,
        ResticError::WrongPassword { .. }
            | ResticError::RepoMissing { .. }
            | ResticError::NotInstalled { .. }
            | ResticError::Unsupported { .. }
    )
}

fn clone_fatal(e: &ResticError) -> ResticError {
    match e {
        ResticError::WrongPassword { url } => ResticError::WrongPassword { url: url.clone() },
        ResticError::RepoMissing { url } => ResticError::RepoMissing { url: url.clone() },
        ResticError::NotInstalled { binary } => ResticError::NotInstalled {
            binary: binary.clone(),
        },
        ResticError::Unsupported { found } => ResticError::Unsupported {
            found: found.clone(),
        },
        other => ResticError::Protocol {
            command: "backup".into(),
            detail: other.to_string(),
        },
    }
}

fn skipped(job: &Job, why: &str) -> JobResult {
    JobResult {
        job: job.name.clone(),
        kind: job.kind,
        status: RunStatus::Skipped,
        snapshot_id: None,
        bytes: None,
        files: None,
        data_added: None,
        duration_ms: 0,
        error: if why.is_empty() {
            None
        } else {
            Some(why.to_string())
        },
        setup: false,
    }
}

impl JobResult {
    fn with_status(mut self, s: RunStatus) -> Self {
        self.status = s;
        self
    }
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}
