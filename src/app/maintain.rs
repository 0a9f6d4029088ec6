//! Maintenance commands: `forget` (retention), `check`, `catalog rebuild`.
//!
//! Invariant: retention never runs for a job whose latest backup failed, nor for one
//! whose newest snapshot is `suspect` (a vanished source) — old good snapshots are
//! exactly what a failing job must not lose.
//!
//! On a repository shared by several instances, `check` and prune run on the
//! maintenance instance only ([`maintenance_gate`], docs/fleet.md): elsewhere `check` is
//! refused (exit 2) and `forget --prune` applies this host's retention but skips the
//! prune, both naming the host that maintains the repository.

use super::attest;
use super::health::{Coverage, coverage};
use super::now_ms;
use super::quiesce::{RecoverReport, Recovered};
use super::reconcile::{row_of, snapshot_time};
use super::recorder::RunRecorder;
use super::reporter::Reporter;
use super::session::Session;
use super::vouch;
use crate::catalog::StepDetail;
use crate::config::Job;
use crate::domain::{RunStatus, SnapshotState, job_tag, parse_tags};
use crate::exit::Outcome;
use crate::restic::Restic;
use serde::Serialize;
use std::collections::HashSet;

#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub run_id: String,
    pub jobs: Vec<ForgetJob>,
    pub pruned: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForgetJob {
    pub job: String,
    pub status: RunStatus,
    pub removed: Vec<String>,
    pub reason: Option<String>,
}

impl ForgetReport {
    pub fn outcome(&self) -> Outcome {
        super::outcome_of(&self.jobs, |j| j.status == RunStatus::Failed)
    }
}

pub async fn forget(
    s: &Session,
    names: &[String],
    prune: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<ForgetReport> {
    let jobs = s.jobs(names)?;
    let rec = RunRecorder::start(s, "forget", &[]).await?;
    let res = async {
        let restic = s.restic().await?;
        forget_all(s, &rec, &restic, &jobs, prune, reporter).await
    }
    .await;
    rec.close(res, |r| (super::run_status(r.outcome()), None))
        .await
}

async fn forget_all(
    s: &Session,
    rec: &RunRecorder<'_>,
    restic: &Restic,
    jobs: &[Job],
    prune: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<ForgetReport> {
    let mut out = Vec::new();
    for job in jobs {
        out.push(forget_job(s, rec, restic, job, reporter).await?);
    }
    // Attestations are trimmed along with job retention that ran (a forget that skipped
    // every job, e.g. after a failed backup, touches nothing).
    if out.iter().any(|j| j.status == RunStatus::Success) {
        out.push(forget_attestations(restic).await);
    }
    let mut pruned = false;
    let failed = out.iter().any(|j| j.status == RunStatus::Failed);
    let refused = match prune && !failed {
        true => maintenance_gate(s, restic, "prune", reporter).await?.err(),
        false => None,
    };
    if let Some(why) = refused {
        reporter.note(&format!("prune skipped: {why}"));
        out.push(forget_result(
            "(prune)",
            RunStatus::Skipped,
            vec![],
            Some(why),
        ));
    } else if prune && !failed {
        reporter.note("pruning unreferenced data");
        let step = rec.step(None, "prune")?;
        match restic.prune().await {
            Ok(()) => {
                rec.finish_step(step, RunStatus::Success, None, None)?;
                pruned = true;
            }
            Err(e) => {
                let msg = e.to_string();
                rec.finish_step(step, RunStatus::Failed, None, Some(&msg))?;
                out.push(forget_result(
                    "(prune)",
                    RunStatus::Failed,
                    vec![],
                    Some(msg),
                ));
            }
        }
    }
    Ok(ForgetReport {
        run_id: rec.id().to_string(),
        jobs: out,
        pruned,
    })
}

/// This host's restore-test attestations: the newest [`attest::KEEP_PER_JOB`] per job.
async fn forget_attestations(restic: &Restic) -> ForgetJob {
    match restic
        .forget_keep_last_per_tags(attest::TAG_ATTESTATION, attest::KEEP_PER_JOB)
        .await
    {
        Ok(removed) => forget_result("(attestations)", RunStatus::Success, removed, None),
        Err(e) => forget_result(
            "(attestations)",
            RunStatus::Failed,
            vec![],
            Some(format!(
                "retention of the restore-test attestations failed: {e}"
            )),
        ),
    }
}

/// May this instance run `what` (check, prune) on the repository? `Ok(Err(why))` when
/// another host maintains it. An instance with `maintenance = true` claims the
/// repository (taking it over from another claimant, which is named); one without the
/// key runs them unless another host has claimed the repository, so a single host that
/// upgrades keeps its prune.
pub async fn maintenance_gate(
    s: &Session,
    restic: &Restic,
    what: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<Result<(), String>> {
    let me = restic.host();
    let claims = attest::maintainers(restic).await?;
    let newest = claims.first().map(String::as_str);
    let file = s.config.file.display();
    let refuse = |why: String| -> anyhow::Result<Result<(), String>> {
        let (who, todo) = match newest {
            Some(h) => (
                format!("host `{h}` maintains this repository"),
                format!(
                    "it runs there; to move it, set maintenance = true here and false on `{h}`"
                ),
            ),
            None => (
                "no host has claimed maintenance of this repository yet".to_string(),
                "set [repository] maintenance = true on exactly one instance".to_string(),
            ),
        };
        Ok(Err(format!(
            "{what} runs only on the maintenance instance and {who}; {why}; {todo} (docs/fleet.md)"
        )))
    };
    match (s.config.repository.maintenance, newest) {
        (Some(false), _) => refuse(format!(
            "this host (`{me}`) has [repository] maintenance = false in {file}"
        )),
        (None, Some(h)) if h != me => refuse(format!(
            "this host (`{me}`) leaves [repository] maintenance unset in {file}"
        )),
        (_, Some(h)) if h == me => Ok(Ok(())),
        // Unset and unclaimed: a single host (or an unconfigured fleet) keeps pruning,
        // writing nothing; `fleet` reports that nobody claims maintenance.
        (None, None) => Ok(Ok(())),
        (_, other) => {
            if let Some(h) = other {
                reporter.note(&format!(
                    "taking over maintenance of {} from host `{h}` ([repository] maintenance = true here): set maintenance = false there",
                    restic.url()
                ));
            }
            attest::claim(restic).await?;
            Ok(Ok(()))
        }
    }
}

/// Retention for one job, unless it has no rules or its last backup did not succeed.
async fn forget_job(
    s: &Session,
    rec: &RunRecorder<'_>,
    restic: &Restic,
    job: &Job,
    reporter: &dyn Reporter,
) -> anyhow::Result<ForgetJob> {
    let policy = s.config.retention_for(job);
    if policy.is_empty() {
        let why = "no retention rules ([retention] keep_*)".to_string();
        return Ok(forget_result(
            &job.name,
            RunStatus::Skipped,
            vec![],
            Some(why),
        ));
    }
    if let Some(why) = newest_is_suspect(s, job)? {
        reporter.note(&format!("{}: retention skipped: {why}", job.name));
        return Ok(forget_result(
            &job.name,
            RunStatus::Skipped,
            vec![],
            Some(why),
        ));
    }
    if let Some(last) = s.catalog.last_step(&job.name, "backup")?
        && last.status != RunStatus::Success
    {
        let why = format!(
            "the last backup ({}) did not succeed; retention waits for a good backup",
            last.status.as_str()
        );
        reporter.note(&format!("{}: retention skipped: {why}", job.name));
        return Ok(forget_result(
            &job.name,
            RunStatus::Skipped,
            vec![],
            Some(why),
        ));
    }
    let step = rec.step(Some(&job.name), "retention")?;
    match restic.forget_policy(&job_tag(&job.name), &policy).await {
        Ok(removed) => {
            s.catalog.mark_forgotten(&removed, "retention", now_ms())?;
            let detail = StepDetail::Retention {
                removed: removed.clone(),
            };
            rec.finish_step(step, RunStatus::Success, Some(&detail), None)?;
            reporter.note(&format!(
                "{}: {} snapshot(s) removed by retention",
                job.name,
                removed.len()
            ));
            Ok(forget_result(&job.name, RunStatus::Success, removed, None))
        }
        Err(e) => {
            let msg = e.to_string();
            rec.finish_step(step, RunStatus::Failed, None, Some(&msg))?;
            Ok(forget_result(
                &job.name,
                RunStatus::Failed,
                vec![],
                Some(msg),
            ))
        }
    }
}

/// Why retention must wait: the job's newest snapshot is `suspect` (its source
/// vanished or shrank), so the policy could rotate out the last good copy of the data.
fn newest_is_suspect(s: &Session, job: &Job) -> anyhow::Result<Option<String>> {
    let live = s.catalog.snapshots(Some(&job.name))?;
    Ok(live
        .last()
        .filter(|n| n.state == SnapshotState::Suspect)
        .map(|n| {
            format!(
                "the newest snapshot {} is suspect (its source shrank); retention waits until a good backup follows it, so the last good snapshot is kept (back up again, or `omk-backup backup --accept-shrink {}` if the shrink is real)",
                &n.snapshot_id[..n.snapshot_id.len().min(8)],
                job.name
            )
        }))
}

fn forget_result(
    job: &str,
    status: RunStatus,
    removed: Vec<String>,
    reason: Option<String>,
) -> ForgetJob {
    ForgetJob {
        job: job.to_string(),
        status,
        removed,
        reason,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub run_id: String,
    pub passed: bool,
    pub read_data_subset: Option<String>,
    /// True when omk-backup chose the subset (rotating coverage).
    pub rotating: bool,
    pub coverage: Coverage,
    pub detail: String,
}

pub async fn check(
    s: &Session,
    subset: Option<&str>,
    reporter: &dyn Reporter,
) -> anyhow::Result<CheckReport> {
    if let Some(sub) = subset {
        validate_subset(sub)?;
    }
    let restic = s.restic().await?;
    if let Err(why) = maintenance_gate(s, &restic, "check", reporter).await? {
        return Err(crate::exit::usage(why));
    }
    let rec = RunRecorder::start(s, "check", &[]).await?;
    let res = async {
        let repo = restic.url().to_string();
        let n = i64::from(s.config.check.subsets);
        let (chosen, rotating) = match subset {
            Some(sub) => (sub.to_string(), false),
            None => {
                let k = next_k(s.catalog.last_rotating_k(&repo, n)?, n);
                (format!("{k}/{n}"), true)
            }
        };
        check_subset(s, &rec, &restic, chosen, rotating, reporter).await
    }
    .await;
    rec.close(res, |r| {
        let err = (!r.passed).then(|| r.detail.clone());
        (super::run_status(Outcome::from_failures(!r.passed)), err)
    })
    .await
}

async fn check_subset(
    s: &Session,
    rec: &RunRecorder<'_>,
    restic: &Restic,
    chosen: String,
    rotating: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<CheckReport> {
    let repo = restic.url().to_string();
    let step = rec.step(None, "check")?;
    reporter.note(&format!(
        "checking {repo} (reading data subset {chosen}{})",
        if rotating { ", rotating" } else { "" }
    ));
    let res = restic.check(Some(&chosen)).await;
    let (passed, detail) = match &res {
        Ok(out) => (true, crate::restic::tail(out, 3)),
        Err(e) => (false, e.to_string()),
    };
    let (k, kn) = match chosen.split_once('/') {
        Some((a, b)) => (a.parse::<i64>().ok(), b.parse::<i64>().ok()),
        None => (None, None),
    };
    s.catalog.insert_check_run(&crate::catalog::CheckRunRow {
        run_id: rec.id().to_string(),
        repository: repo.clone(),
        subset: Some(chosen.clone()),
        k,
        n: kn,
        rotating,
        at: now_ms(),
        passed,
        error: (!passed).then(|| detail.clone()),
    })?;
    let step_detail = StepDetail::Check {
        read_data_subset: chosen.clone(),
        rotating,
    };
    let status = super::run_status(Outcome::from_failures(!passed));
    let error = (!passed).then_some(detail.as_str());
    rec.finish_step(step, status, Some(&step_detail), error)?;
    if let Err(e) = res
        && e.is_usage()
    {
        return Err(e.into());
    }
    let coverage = coverage(&s.catalog, &repo, s.config.check, now_ms())?;
    Ok(CheckReport {
        run_id: rec.id().to_string(),
        passed,
        read_data_subset: Some(chosen),
        rotating,
        coverage,
        detail,
    })
}

/// The next rotating subset after `last` (1 after N, 1 at the start).
pub fn next_k(last: Option<i64>, n: i64) -> i64 {
    match last {
        Some(k) if k >= 1 && k < n => k + 1,
        _ => 1,
    }
}

fn validate_subset(s: &str) -> anyhow::Result<()> {
    let ok = match s.split_once('/') {
        Some((k, n)) => {
            matches!((k.parse::<u32>(), n.parse::<u32>()), (Ok(k), Ok(n)) if k >= 1 && k <= n)
        }
        None => {
            s.ends_with('%')
                && s.trim_end_matches('%')
                    .parse::<f64>()
                    .is_ok_and(|p| p > 0.0 && p <= 100.0)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(crate::exit::usage(format!(
            "--read-data-subset {s}: expected K/N with 1 <= K <= N (e.g. 1/7), or a percentage like 10%"
        )))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// Backup snapshots of this host (attestations and the maintenance claim not counted).
    pub snapshots_found: usize,
    pub added: usize,
    /// Of the added: dumps streamed once and found complete (recorded good).
    pub verified: usize,
    /// Of the added: what rebuild cannot vouch for (files snapshots, cut dumps).
    pub unverified: usize,
    pub marked_forgotten: usize,
    pub ignored_untagged: usize,
    /// Each snapshot recorded `unverified`, and why.
    pub unverified_snapshots: Vec<Unvouched>,
    /// Restore tests brought back from this host's attestations.
    pub restore_tests_added: usize,
    /// One line per attestation that could not be read or is not valid.
    pub attestation_errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unvouched {
    pub snapshot_id: String,
    pub job: String,
    pub why: String,
}

/// `catalog rebuild`: record this host's tagged snapshots the catalog lacks. A database
/// dump is streamed once and recorded good only when complete (see [`super::vouch`]);
/// everything else is recorded `unverified`, and each such snapshot is named.
pub async fn rebuild(ctx: &mut Session, reporter: &dyn Reporter) -> anyhow::Result<RebuildReport> {
    let restic = ctx.restic().await?;
    reporter.note(&format!("reading the snapshots of {}", restic.url()));
    let all = restic.snapshots(&[]).await?;
    // Backups only: attestations and the maintenance claim are counted by what they bring.
    let bookkeeping = |t: &String| t == attest::TAG_ATTESTATION || t == attest::TAG_MAINTENANCE;
    let mut report = RebuildReport {
        snapshots_found: all
            .iter()
            .filter(|s| !s.tags.iter().any(bookkeeping))
            .count(),
        added: 0,
        verified: 0,
        unverified: 0,
        marked_forgotten: 0,
        ignored_untagged: 0,
        unverified_snapshots: Vec::new(),
        restore_tests_added: 0,
        attestation_errors: Vec::new(),
    };
    let (attested, bad) = attest::read_all(&restic, &all, reporter).await;
    report.attestation_errors = bad;
    let live: HashSet<String> = all.iter().map(|s| s.id.clone()).collect();
    let known = ctx.catalog.live_snapshot_ids()?;
    let mut verdicts = Vec::new();
    for s in &all {
        let (Some(job), _) = parse_tags(&s.tags) else {
            continue;
        };
        if ctx.catalog.has_snapshot(&s.id)? {
            continue;
        }
        let verdict = vouch::judge(&restic, s, &job, ctx.config.jobs.get(&job)).await;
        if let vouch::Verdict::Unverified(why) = &verdict {
            report.unverified_snapshots.push(Unvouched {
                snapshot_id: s.id.clone(),
                job: job.clone(),
                why: why.clone(),
            });
        }
        verdicts.push((s.id.clone(), verdict));
    }
    ctx.catalog.in_transaction(|cat| {
        for s in &all {
            let (job, run) = parse_tags(&s.tags);
            let Some(job) = job else {
                let ours =
                    |t: &String| t == attest::TAG_ATTESTATION || t == attest::TAG_MAINTENANCE;
                if !s.tags.iter().any(ours) {
                    report.ignored_untagged += 1;
                }
                continue;
            };
            let time = snapshot_time(s).unwrap_or(0);
            if let Some(r) = &run {
                cat.insert_run_if_missing(r, "backup", "rebuild", RunStatus::Success, time)?;
            }
            let Some(i) = verdicts.iter().position(|(id, _)| *id == s.id) else {
                continue;
            };
            let (_, verdict) = verdicts.swap_remove(i);
            match verdict {
                vouch::Verdict::Good(dump) => {
                    let note = "rebuilt from the repository; the dump streamed complete";
                    cat.insert_snapshot(&row_of(s, &job, run, time, SnapshotState::Good, note))?;
                    cat.insert_dump(&dump)?;
                    report.verified += 1;
                }
                vouch::Verdict::Unverified(why) => {
                    let state = SnapshotState::Unverified;
                    cat.insert_snapshot(&row_of(s, &job, run, time, state, &why))?;
                    report.unverified += 1;
                }
            }
            report.added += 1;
        }
        let gone: Vec<String> = known.into_iter().filter(|id| !live.contains(id)).collect();
        report.marked_forgotten = gone.len();
        cat.mark_forgotten(&gone, "not in the repository at catalog rebuild", now_ms())?;
        report.restore_tests_added = attest::record_missing(cat, &attested)?;
        Ok(())
    })?;
    Ok(report)
}

/// `omk-backup recover`: opening the session already resumed what it could
/// (`resumed`); retry whatever is left, this time failing when Docker cannot be reached.
pub async fn recover(
    s: &Session,
    resumed: Vec<Recovered>,
    reporter: &dyn Reporter,
) -> anyhow::Result<RecoverReport> {
    let mut containers = resumed;
    containers.extend(super::quiesce::recover(s, reporter).await?);
    if containers.is_empty() {
        reporter.note("no container was left paused or stopped by an interrupted run");
    }
    Ok(RecoverReport { containers })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rotation_wraps() {
        assert_eq!(super::next_k(None, 30), 1);
        assert_eq!(super::next_k(Some(1), 30), 2);
        assert_eq!(super::next_k(Some(30), 30), 1);
        assert_eq!(super::next_k(Some(31), 30), 1);
        assert_eq!(super::next_k(Some(1), 1), 1);
    }

    #[test]
    fn subsets() {
        for ok in ["1/7", "7/7", "10%", "0.5%"] {
            assert!(super::validate_subset(ok).is_ok(), "{ok}");
        }
        for bad in ["0/7", "8/7", "x", "1/", "0%", "101%"] {
            assert!(super::validate_subset(bad).is_err(), "{bad}");
        }
    }
}
