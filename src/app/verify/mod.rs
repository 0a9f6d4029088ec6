//! `restore-test`: prove the latest backups restore, and that the repository is
//! encrypted. Files jobs restore into a scratch folder (under `[restore_test] work_dir`,
//! default beside the catalog; always removed) and are compared with the snapshot and the
//! source; database jobs are restored into isolated scratch containers started from the
//! source container's image and compared with the dump's digest and fingerprint (see
//! [`database`]). Every test records RTO (start to verified restore) and RPO (age of the
//! newest good snapshot) in the catalog.

pub mod database;
pub mod deliver;
pub mod encryption;
mod files;
pub mod hash;
mod scratch;

use super::{Ctx, Globals, Reporter, now_ms};
use crate::catalog::{EncryptionRow, RestoreTestRow};
use crate::config::Job;
use crate::domain::{JobKind, RunStatus};
use crate::exit::Outcome;
use crate::restic::Restic;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One verification: the stable `{name, passed, detail}`, plus `skipped` when it could
/// not run here (then `passed` is true and `detail` says what was not checked and why).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

impl Check {
    pub fn new(name: &str, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed,
            detail: detail.into(),
            skipped: false,
        }
    }

    pub fn skipped(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: true,
            detail: detail.into(),
            skipped: true,
        }
    }
}

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
pub struct TestResult {
    pub job: String,
    pub kind: JobKind,
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<i64>,
    pub snapshot_id: Option<String>,
    pub checks: Vec<Check>,
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

pub async fn run(
    g: &Globals,
    names: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<RestoreTestReport> {
    let ctx = Ctx::open_locked(g, reporter).await?;
    let jobs: Vec<Job> = ctx
        .config
        .select_jobs(names)?
        .into_iter()
        .cloned()
        .collect();
    let restic = ctx.restic().await?;
    let run_id = super::new_run_id()?;
    let work_root = match &ctx.config.restore_work_dir {
        Some(d) => d.clone(),
        None => ctx
            .config
            .catalog_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    // A scratch folder of one of our runs that is no longer running was left behind by
    // a killed run (folders of other catalogs sharing work_dir are not ours to touch).
    if let Ok(rd) = std::fs::read_dir(&work_root) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(old_run) = name.strip_prefix(".omk-restore-test-") else {
                continue;
            };
            if ctx
                .catalog
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
    }
    let scratch = work_root.join(format!(".omk-restore-test-{run_id}"));
    ctx.catalog
        .start_run(&run_id, "restore-test", g.trigger.as_str(), now_ms())?;
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        let msg = format!(
            "cannot create the scratch folder {}: {e}; set [restore_test] work_dir to a writable folder with room for the largest job",
            scratch.display()
        );
        ctx.catalog
            .finish_run(&run_id, RunStatus::Failed, Some(&msg), now_ms())?;
        anyhow::bail!(msg);
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o700));
    }
    let scratch = Scratch(scratch);

    // The repository's encryption proof, once per run.
    reporter.note(&format!("proving {} is encrypted", restic.url()));
    let step = ctx
        .catalog
        .start_step(&run_id, None, "encryption-check", now_ms())?;
    let enc_checks = encryption::prove(&restic, &ctx.config.repository, &scratch.0).await;
    let enc_passed = enc_checks.iter().all(|c| c.passed);
    let enc_json = serde_json::to_string(&enc_checks)?;
    ctx.catalog.insert_encryption_check(&EncryptionRow {
        run_id: run_id.clone(),
        repository: restic.url().to_string(),
        at: now_ms(),
        passed: enc_passed,
        checks: enc_json.clone(),
    })?;
    ctx.catalog.finish_step(
        step,
        if enc_passed {
            RunStatus::Success
        } else {
            RunStatus::Failed
        },
        Some(&enc_json),
        first_failure(&enc_checks).as_deref(),
        now_ms(),
    )?;
    let encryption = EncryptionResult {
        repository: restic.url().to_string(),
        passed: enc_passed,
        checks: enc_checks,
    };
    let enc_summary = Check::new(
        "encryption",
        enc_passed,
        if enc_passed {
            "canary absent from the raw repository, restored with the password, wrong password refused (details under `encryption`)".to_string()
        } else {
            format!(
                "encryption proof failed: {}",
                first_failure(&encryption.checks).unwrap_or_default()
            )
        },
    );

    // SIGTERM/SIGINT abandon the test in progress: dropping it removes its scratch folder
    // or scratch container (guards), and the run is recorded as interrupted.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tests = Vec::new();
    for job in &jobs {
        reporter.note(&format!("{}: restore test", job.name));
        let started_ms = now_ms();
        let step = ctx
            .catalog
            .start_step(&run_id, Some(&job.name), "restore-test", started_ms)?;
        let work = async {
            match job.kind {
                JobKind::Files => test_files(&ctx, &restic, job, &scratch.0.join(&job.name)).await,
                _ => test_database(&ctx, &restic, job, &run_id, reporter).await,
            }
        };
        let signal_name = tokio::select! {
            r = work => Ok(r?),
            _ = term.recv() => Err("SIGTERM"),
            _ = int.recv() => Err("SIGINT"),
        };
        let mut t = match signal_name {
            Ok(t) => t,
            Err(sig) => {
                let why = format!(
                    "interrupted by {sig} during the restore test of `{}`; its scratch space was removed",
                    job.name
                );
                ctx.catalog.finish_step(
                    step,
                    RunStatus::Interrupted,
                    None,
                    Some(&why),
                    now_ms(),
                )?;
                ctx.catalog.interrupt_run(&run_id, &why, now_ms())?;
                anyhow::bail!(why);
            }
        };
        t.checks.push(enc_summary.clone());
        t.passed = t.checks.iter().all(|c| c.passed);
        if !t.passed {
            t.rto_seconds = None;
        }
        let finished = now_ms();
        let checks_json = serde_json::to_string(&t.checks)?;
        ctx.catalog.insert_restore_test(&RestoreTestRow {
            run_id: run_id.clone(),
            job: job.name.clone(),
            kind: job.kind.as_str().to_string(),
            snapshot_id: t.snapshot_id.clone(),
            passed: t.passed,
            started_at: started_ms,
            finished_at: finished,
            rto_ms: t.rto_seconds.map(|s| (s * 1000.0) as i64),
            rpo_seconds: t.rpo_seconds,
            files_listed: t.stat("files_listed"),
            files_hashed: t.stat("files_hashed"),
            bytes_hashed: t.stat("bytes_hashed"),
            not_compared: t.stat("not_compared"),
            checks: checks_json,
        })?;
        let detail = serde_json::json!({
            "snapshot_id": t.snapshot_id, "rto_seconds": t.rto_seconds, "rpo_seconds": t.rpo_seconds,
        });
        ctx.catalog.finish_step(
            step,
            if t.passed {
                RunStatus::Success
            } else {
                RunStatus::Failed
            },
            Some(&detail.to_string()),
            first_failure(&t.checks).as_deref(),
            finished,
        )?;
        reporter.step_done();
        tests.push(t.result);
    }
    drop(scratch);
    let report = RestoreTestReport {
        run_id: run_id.clone(),
        tests: tests.into_iter().collect(),
        encryption,
        from_kit: None,
    };
    ctx.catalog.finish_run(
        &run_id,
        if report.outcome() == Outcome::Ok {
            RunStatus::Success
        } else {
            RunStatus::Failed
        },
        None,
        now_ms(),
    )?;
    Ok(report)
}

fn first_failure(checks: &[Check]) -> Option<String> {
    checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
}

/// A test in progress: the public result plus counters for the catalog.
struct Running {
    result: TestResult,
    stats: [(&'static str, Option<i64>); 4],
}

impl std::ops::Deref for Running {
    type Target = TestResult;
    fn deref(&self) -> &TestResult {
        &self.result
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut TestResult {
        &mut self.result
    }
}

impl Running {
    fn new(job: &Job) -> Running {
        Running {
            result: TestResult {
                job: job.name.clone(),
                kind: job.kind,
                passed: false,
                rto_seconds: None,
                rpo_seconds: None,
                snapshot_id: None,
                checks: Vec::new(),
            },
            stats: [
                ("files_listed", None),
                ("files_hashed", None),
                ("bytes_hashed", None),
                ("not_compared", None),
            ],
        }
    }

    fn stat(&self, name: &str) -> Option<i64> {
        self.stats.iter().find(|s| s.0 == name).and_then(|s| s.1)
    }
}

/// Find the newest good snapshot and the RPO; push the `snapshot` check.
fn pick(ctx: &Ctx, job: &Job, t: &mut Running) -> anyhow::Result<Option<(String, i64)>> {
    let Some(snap) = ctx.catalog.latest_good(&job.name)? else {
        t.checks.push(Check::new(
            "snapshot",
            false,
            format!(
                "no good snapshot of `{}` in the catalog: run `omk-backup backup {}` (or `omk-backup catalog rebuild` on a new machine)",
                job.name, job.name
            ),
        ));
        return Ok(None);
    };
    let rpo = (now_ms() - snap.time).max(0) / 1000;
    t.rpo_seconds = Some(rpo);
    t.snapshot_id = Some(snap.snapshot_id.clone());
    t.checks.push(Check::new(
        "snapshot",
        true,
        format!(
            "newest good snapshot {} from {} (RPO {rpo} s)",
            &snap.snapshot_id[..8.min(snap.snapshot_id.len())],
            crate::domain::rfc3339(crate::domain::from_millis(snap.time))
        ),
    ));
    Ok(Some((snap.snapshot_id, snap.time)))
}

async fn test_files(
    ctx: &Ctx,
    restic: &Restic,
    job: &Job,
    scratch: &Path,
) -> anyhow::Result<Running> {
    let start = Instant::now();
    let mut t = Running::new(job);
    let Some((snap, _)) = pick(ctx, job, &mut t)? else {
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
    ctx: &Ctx,
    restic: &Restic,
    job: &Job,
    run_id: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<Running> {
    let mut t = Running::new(job);
    database::test(ctx, restic, job, run_id, &mut t, reporter).await?;
    Ok(t)
}
