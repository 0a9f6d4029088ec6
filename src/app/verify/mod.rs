//! `restore-test`: prove the latest backups restore, and that the repository is
//! encrypted. Files jobs restore into a scratch folder (under `[restore_test] work_dir`,
//! default beside the catalog; always removed) and are compared with the snapshot and the
//! source; database jobs are restored into isolated scratch containers started from the
//! source container's image and compared with the dump's digest and fingerprint (see
//! [`database`]). Every test records RTO (start to verified restore) and RPO (age of the
//! newest good snapshot) in the catalog.

mod common;
pub mod database;
pub mod deliver;
pub mod encryption;
mod files;
pub mod hash;
mod rawfiles;
mod rotation;
mod scratch;

use super::now_ms;
use super::recorder::{RunRecorder, Step};
use super::reporter::Reporter;
use super::session::Session;
use crate::catalog::{EncryptionRow, RestoreTestRow, StepDetail};
use crate::config::Job;
use crate::domain::{JobKind, RunStatus};
use crate::exit::Outcome;
use crate::restic::Restic;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::catalog::Check;
pub use common::TestResult;
use common::{Running, pick};

#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestReport {
    pub run_id: String,
    pub tests: Vec<TestResult>,
    pub encryption: EncryptionResult,
    /// Set when the tests ran from a recovery kit alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_kit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EncryptionResult {
    pub repository: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl RestoreTestReport {
    pub fn outcome(&self) -> Outcome {
        Outcome::from_failures(!self.encryption.passed || self.tests.iter().any(|t| !t.passed))
    }
}

/// A scratch folder removed on drop, even when a restored tree is read-only.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

fn remove_tree(p: &Path) {
    if std::fs::remove_dir_all(p).is_ok() || !p.exists() {
        return;
    }
    // restic restores permissions: make folders writable so their entries can go.
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(p) {
        tracing::warn!("cannot remove the scratch folder {}: {e}", p.display());
    }
}

/// Restore-test from the primary, or (a scheduled run, with copies configured) from the
/// repository whose turn it is ([`rotation::next`]).
pub async fn run(
    s: &Session,
    names: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<RestoreTestReport> {
    let turn = if s.globals.trigger == crate::domain::Trigger::Cli {
        None
    } else {
        rotation::next(s, &s.jobs(names)?)?
    };
    run_on(s, names, turn.as_deref(), reporter).await
}

/// Restore-test from the copy `repository` alone (`None`: the primary).
pub async fn run_on(
    s: &Session,
    names: &[String],
    repository: Option<&str>,
    reporter: &dyn Reporter,
) -> anyhow::Result<RestoreTestReport> {
    let copy = match repository {
        Some(n) => Some(s.config.copy_named(n)?.clone()),
        None => None,
    };
    let jobs = s.jobs(names)?;
    let work_root = match &s.config.restore_work_dir {
        Some(d) => d.clone(),
        None => s
            .config
            .catalog_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    remove_stale_scratch(s, &work_root, reporter)?;
    let rec = RunRecorder::start(s, "restore-test", &[]).await?;
    let tested = async {
        let primary = s.restic().await?;
        let (restic, repo) = match &copy {
            Some(c) => (primary.for_repository(&c.repository), c.repository.clone()),
            None => (primary, s.config.repository.clone()),
        };
        let copy_name = copy.as_ref().map(|c| c.name.as_str());
        let on = On {
            restic: &restic,
            repo: &repo,
            copy: copy_name,
        };
        test_all(s, &rec, &on, &jobs, &work_root, reporter).await
    };
    let res = match tested.await {
        Ok(Err(interrupted)) => {
            rec.interrupt(&interrupted)?;
            anyhow::bail!(interrupted)
        }
        Ok(Ok(report)) => Ok(report),
        Err(e) => Err(e),
    };
    rec.close(res, |r| (super::run_status(r.outcome()), None))
        .await
}

/// A scratch folder of one of our runs that is no longer running was left behind by a
/// killed run (folders of other catalogs sharing work_dir are not ours to touch).
fn remove_stale_scratch(
    s: &Session,
    work_root: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let Ok(rd) = std::fs::read_dir(work_root) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(old_run) = name.strip_prefix(".omk-restore-test-") else {
            continue;
        };
        if s.catalog
            .run(old_run)?
            .is_some_and(|r| r.status != RunStatus::Running)
        {
            reporter.note(&format!(
                "removing {} (left behind by an interrupted restore test)",
                e.path().display()
            ));
            remove_tree(&e.path());
        }
    }
    Ok(())
}

/// The run's private scratch folder (mode 0700), removed on drop.
fn make_scratch(work_root: &Path, run_id: &str) -> anyhow::Result<Scratch> {
    let scratch = work_root.join(format!(".omk-restore-test-{run_id}"));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        anyhow::bail!(
            "cannot create the scratch folder {}: {e}; set [restore_test] work_dir to a writable folder with room for the largest job",
            scratch.display()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o700));
    Ok(Scratch(scratch))
}

/// The repository a restore test reads: restic bound to it, its config, and the copy's
/// name when it is not the primary.
struct On<'a> {
    restic: &'a Restic,
    repo: &'a crate::config::Repository,
    copy: Option<&'a str>,
}

/// The encryption proof and every job's test; `Ok(Err(why))` when a signal stopped it.
async fn test_all(
    s: &Session,
    rec: &RunRecorder<'_>,
    on: &On<'_>,
    jobs: &[Job],
    work_root: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<Result<RestoreTestReport, String>> {
    let (restic, copy) = (on.restic, on.copy);
    let scratch = make_scratch(work_root, rec.id())?;
    let encryption = prove_encryption(s, rec, restic, on.repo, &scratch.0, reporter).await?;
    // SIGTERM/SIGINT abandon the test in progress: dropping it removes its scratch folder
    // or scratch container (guards), and the run is recorded as interrupted.
    use tokio::signal::unix::{SignalKind, signal};
    let mut stop = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    let mut tests = Vec::new();
    for job in jobs {
        reporter.note(&format!("{}: restore test", job.name));
        let started_ms = now_ms();
        let step = rec.step(Some(&job.name), "restore-test")?;
        let work = async {
            match job.kind {
                JobKind::Files => {
                    test_files(s, restic, job, copy, &scratch.0.join(&job.name)).await
                }
                _ => test_database(s, restic, job, copy, rec.id(), reporter).await,
            }
        };
        let mut t = tokio::select! {
            r = work => r?,
            _ = stop.0.recv() => return Ok(Err(interrupted("SIGTERM", job))),
            _ = stop.1.recv() => return Ok(Err(interrupted("SIGINT", job))),
        };
        t.checks.push(encryption_summary(&encryption));
        t.passed = t.checks.iter().all(|c| c.passed);
        if !t.passed {
            t.rto_seconds = None;
        }
        record_test(s, rec, step, job, &t, started_ms)?;
        if let Some(c) = copy {
            s.catalog.set_test_repository(rec.id(), c)?;
        }
        // Attestations live in the primary only (where `fleet` and `catalog rebuild` read
        // them); a test of a copy is recorded in the catalog with its repository.
        if copy.is_some() {
            reporter.step_done();
            tests.push(t.result);
            continue;
        }
        let attested = super::attest::Tested {
            run_id: rec.id(),
            job: &job.name,
            kind: job.kind.as_str(),
            snapshot_id: t.snapshot_id.as_deref(),
            passed: t.passed,
            started_ms,
            rto_seconds: t.rto_seconds,
            rpo_seconds: t.rpo_seconds,
            checks: &t.checks,
        };
        super::attest::store(restic, &attested, reporter).await;
        reporter.step_done();
        tests.push(t.result);
    }
    drop(scratch);
    Ok(Ok(RestoreTestReport {
        run_id: rec.id().to_string(),
        tests,
        encryption,
        from_kit: None,
    }))
}

fn interrupted(sig: &str, job: &Job) -> String {
    format!(
        "interrupted by {sig} during the restore test of `{}`; its scratch space was removed",
        job.name
    )
}

/// The repository's encryption proof, once per run, recorded with its own step.
async fn prove_encryption(
    s: &Session,
    rec: &RunRecorder<'_>,
    restic: &Restic,
    repo: &crate::config::Repository,
    scratch: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<EncryptionResult> {
    reporter.note(&format!("proving {} is encrypted", restic.url()));
    let step = rec.step(None, "encryption-check")?;
    let checks = encryption::prove(restic, repo, scratch).await;
    let passed = checks.iter().all(|c| c.passed);
    s.catalog.insert_encryption_check(&EncryptionRow {
        run_id: rec.id().to_string(),
        repository: restic.url().to_string(),
        at: now_ms(),
        passed,
        checks: checks.clone(),
    })?;
    let status = super::run_status(Outcome::from_failures(!passed));
    let detail = StepDetail::Checks(checks.clone());
    rec.finish_step(
        step,
        status,
        Some(&detail),
        first_failure(&checks).as_deref(),
    )?;
    Ok(EncryptionResult {
        repository: restic.url().to_string(),
        passed,
        checks,
    })
}

/// The one-line `encryption` check every job's test carries.
fn encryption_summary(e: &EncryptionResult) -> Check {
    let detail = if e.passed {
        "canary absent from the raw repository, restored with the password, wrong password refused (details under `encryption`)".to_string()
    } else {
        format!(
            "encryption proof failed: {}",
            first_failure(&e.checks).unwrap_or_default()
        )
    };
    Check::new("encryption", e.passed, detail)
}

/// A job's test result in `restore_tests`, then its step.
fn record_test(
    s: &Session,
    rec: &RunRecorder<'_>,
    step: Step,
    job: &Job,
    t: &Running,
    started_ms: i64,
) -> anyhow::Result<()> {
    s.catalog.insert_restore_test(&RestoreTestRow {
        run_id: rec.id().to_string(),
        job: job.name.clone(),
        kind: job.kind.as_str().to_string(),
        snapshot_id: t.snapshot_id.clone(),
        passed: t.passed,
        started_at: started_ms,
        finished_at: now_ms(),
        rto_ms: t.rto_seconds.map(|s| (s * 1000.0) as i64),
        rpo_seconds: t.rpo_seconds,
        files_listed: t.stat("files_listed"),
        files_hashed: t.stat("files_hashed"),
        bytes_hashed: t.stat("bytes_hashed"),
        not_compared: t.stat("not_compared"),
        checks: t.checks.clone(),
    })?;
    let detail = StepDetail::RestoreTest {
        snapshot_id: t.snapshot_id.clone(),
        rto_seconds: t.rto_seconds,
        rpo_seconds: t.rpo_seconds,
    };
    let status = super::run_status(Outcome::from_failures(!t.passed));
    rec.finish_step(
        step,
        status,
        Some(&detail),
        first_failure(&t.checks).as_deref(),
    )
}

fn first_failure(checks: &[Check]) -> Option<String> {
    checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
}

async fn test_files(
    ctx: &Session,
    restic: &Restic,
    job: &Job,
    copy: Option<&str>,
    scratch: &Path,
) -> anyhow::Result<Running> {
    let start = Instant::now();
    let mut t = Running::on(job, copy);
    // The id in the repository tested (a copy's own id there).
    let Some((_, snap)) = pick(ctx, job, &mut t)? else {
        return Ok(t);
    };
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create the scratch folder {}", scratch.display()))?;
    let _cleanup = Scratch(scratch.to_path_buf());
    if let Err(e) = restic.restore(&snap, scratch, &job.paths).await {
        t.checks.push(Check::new(
            "restore",
            false,
            format!("the restore of snapshot {} failed: {e}; run `omk-backup check --read-data-subset 1/1` to find damaged data, then make a fresh backup", &snap[..8]),
        ));
        return Ok(t);
    }
    t.checks.push(Check::new(
        "restore",
        true,
        format!(
            "restored into a scratch folder in {:.1} s",
            start.elapsed().as_secs_f64()
        ),
    ));
    let (time, nodes) = match restic.ls_with_time(&snap).await {
        Ok(x) => x,
        Err(e) => {
            t.checks.push(Check::new(
                "file-list",
                false,
                format!("cannot list the snapshot: {e}"),
            ));
            return Ok(t);
        }
    };
    let snapshot_start = time
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| std::time::SystemTime::from(d.with_timezone(&chrono::Utc)));
    let paths = job.paths.clone();
    let dir = scratch.to_path_buf();
    let cmp =
        tokio::task::spawn_blocking(move || files::compare(&nodes, &paths, &dir, snapshot_start))
            .await
            .context("the comparison thread failed")?;
    t.stats = [
        ("files_listed", Some(cmp.files_listed)),
        ("files_hashed", Some(cmp.files_hashed)),
        ("bytes_hashed", Some(cmp.bytes_hashed)),
        ("not_compared", Some(cmp.not_compared)),
    ];
    t.checks.extend(cmp.checks);
    if t.checks.iter().all(|c| c.passed) {
        t.rto_seconds = Some((start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    }
    Ok(t)
}

/// Database jobs: a restore into a scratch container ([`database`]).
async fn test_database(
    ctx: &Session,
    restic: &Restic,
    job: &Job,
    copy: Option<&str>,
    run_id: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<Running> {
    let mut t = Running::on(job, copy);
    database::test(ctx, restic, job, run_id, &mut t, reporter).await?;
    Ok(t)
}
