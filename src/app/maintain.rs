//! Maintenance commands: `forget` (retention), `check`, `catalog rebuild`.
//!
//! Invariant: retention never runs for a job whose latest backup failed — old good
//! snapshots are exactly what a failing job must not lose.

use super::{Ctx, Globals, Reporter, now_ms};
use crate::catalog::SnapshotRow;
use crate::domain::{RunStatus, SnapshotState, job_tag, parse_tags};
use crate::exit::Outcome;
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
    g: &Globals,
    names: &[String],
    prune: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<ForgetReport> {
    let mut ctx = Ctx::open_locked(g, reporter).await?;
    ctx.discover_jobs(reporter).await;
    let jobs: Vec<_> = ctx
        .config
        .select_jobs(names)?
        .into_iter()
        .cloned()
        .collect();
    let restic = ctx.restic().await?;
    let run_id = super::new_run_id()?;
    ctx.catalog
        .start_run(&run_id, "forget", g.trigger.as_str(), now_ms())?;
    let mut out = Vec::new();
    for job in &jobs {
        let policy = ctx.config.retention_for(job);
        if policy.is_empty() {
            out.push(ForgetJob {
                job: job.name.clone(),
                status: RunStatus::Skipped,
                removed: vec![],
                reason: Some("no retention rules ([retention] keep_*)".into()),
            });
            continue;
        }
        if let Some(last) = ctx.catalog.last_step(&job.name, "backup")?
            && last.status != RunStatus::Success
        {
            let why = format!(
                "the last backup ({}) did not succeed; retention waits for a good backup",
                last.status.as_str()
            );
            reporter.note(&format!("{}: retention skipped: {why}", job.name));
            out.push(ForgetJob {
                job: job.name.clone(),
                status: RunStatus::Skipped,
                removed: vec![],
                reason: Some(why),
            });
            continue;
        }
        let step = ctx
            .catalog
            .start_step(&run_id, Some(&job.name), "retention", now_ms())?;
        match restic.forget_policy(&job_tag(&job.name), &policy).await {
            Ok(removed) => {
                ctx.catalog
                    .mark_forgotten(&removed, "retention", now_ms())?;
                let detail = serde_json::json!({ "removed": removed });
                ctx.catalog.finish_step(
                    step,
                    RunStatus::Success,
                    Some(&detail.to_string()),
                    None,
                    now_ms(),
                )?;
                reporter.note(&format!(
                    "{}: {} snapshot(s) removed by retention",
                    job.name,
                    removed.len()
                ));
                out.push(ForgetJob {
                    job: job.name.clone(),
                    status: RunStatus::Success,
                    removed,
                    reason: None,
                });
            }
            Err(e) => {
                let msg = e.to_string();
                ctx.catalog
                    .finish_step(step, RunStatus::Failed, None, Some(&msg), now_ms())?;
                out.push(ForgetJob {
                    job: job.name.clone(),
                    status: RunStatus::Failed,
                    removed: vec![],
                    reason: Some(msg),
                });
            }
        }
    }
    let mut pruned = false;
    let failed = out.iter().any(|j| j.status == RunStatus::Failed);
    if prune && !failed {
        reporter.note("pruning unreferenced data");
        let step = ctx.catalog.start_step(&run_id, None, "prune", now_ms())?;
        match restic.prune().await {
            Ok(()) => {
                ctx.catalog
                    .finish_step(step, RunStatus::Success, None, None, now_ms())?;
                pruned = true;
            }
            Err(e) => {
                let msg = e.to_string();
                ctx.catalog
                    .finish_step(step, RunStatus::Failed, None, Some(&msg), now_ms())?;
                out.push(ForgetJob {
                    job: "(prune)".into(),
                    status: RunStatus::Failed,
                    removed: vec![],
                    reason: Some(msg),
                });
            }
        }
    }
    let report = ForgetReport {
        run_id: run_id.clone(),
        jobs: out,
        pruned,
    };
    let status = if report.outcome() == Outcome::Ok {
        RunStatus::Success
    } else {
        RunStatus::Failed
    };
    ctx.catalog.finish_run(&run_id, status, None, now_ms())?;
    Ok(report)
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

/// How much of the repository's data checks have read within the period.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub period_days: u32,
    pub subsets: u32,
    /// Distinct rotating subsets read by a passing check within the period (a passing
    /// `1/1` counts as all of them).
    pub subsets_read: u32,
    pub complete: bool,
}

pub async fn check(
    g: &Globals,
    subset: Option<&str>,
    reporter: &dyn Reporter,
) -> anyhow::Result<CheckReport> {
    if let Some(s) = subset {
        validate_subset(s)?;
    }
    let ctx = Ctx::open_locked(g, reporter).await?;
    let restic = ctx.restic().await?;
    let repo = restic.url().to_string();
    let policy = ctx.config.check;
    let n = i64::from(policy.subsets);
    let (chosen, rotating) = match subset {
        Some(s) => (s.to_string(), false),
        None => {
            let k = next_k(ctx.catalog.last_rotating_k(&repo, n)?, n);
            (format!("{k}/{n}"), true)
        }
    };
    let run_id = super::new_run_id()?;
    ctx.catalog
        .start_run(&run_id, "check", g.trigger.as_str(), now_ms())?;
    let step = ctx.catalog.start_step(&run_id, None, "check", now_ms())?;
    reporter.note(&format!(
        "checking {} (reading data subset {chosen}{})",
        restic.url(),
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
    ctx.catalog.insert_check_run(&crate::catalog::CheckRunRow {
        run_id: run_id.clone(),
        repository: repo.clone(),
        subset: Some(chosen.clone()),
        k,
        n: kn,
        rotating,
        at: now_ms(),
        passed,
        error: (!passed).then(|| detail.clone()),
    })?;
    let detail_json =
        serde_json::json!({ "read_data_subset": chosen, "rotating": rotating }).to_string();
    let status = if passed {
        RunStatus::Success
    } else {
        RunStatus::Failed
    };
    ctx.catalog.finish_step(
        step,
        status,
        Some(&detail_json),
        if passed { None } else { Some(&detail) },
        now_ms(),
    )?;
    ctx.catalog.finish_run(
        &run_id,
        status,
        if passed { None } else { Some(&detail) },
        now_ms(),
    )?;
    if let Err(e) = res
        && e.is_usage()
    {
        return Err(e.into());
    }
    let coverage = coverage(&ctx.catalog, &repo, policy, now_ms())?;
    Ok(CheckReport {
        run_id,
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

/// Coverage of the check period ending at `now`.
pub fn coverage(
    catalog: &crate::catalog::Catalog,
    repo: &str,
    policy: crate::config::CheckPolicy,
    now: i64,
) -> anyhow::Result<Coverage> {
    let from = now - i64::from(policy.period_days) * 86_400_000;
    let n = i64::from(policy.subsets);
    let mut read = HashSet::new();
    let mut all = false;
    for c in catalog.check_runs(repo, from, now + 1)? {
        if !c.passed {
            continue;
        }
        match (c.k, c.n) {
            (Some(1), Some(1)) => all = true,
            (Some(k), Some(cn)) if cn == n => {
                read.insert(k);
            }
            _ => {}
        }
    }
    let subsets_read = if all {
        policy.subsets
    } else {
        read.len() as u32
    };
    Ok(Coverage {
        period_days: policy.period_days,
        subsets: policy.subsets,
        subsets_read,
        complete: subsets_read >= policy.subsets,
    })
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
    pub snapshots_found: usize,
    pub added: usize,
    pub marked_forgotten: usize,
    pub ignored_untagged: usize,
}

pub async fn rebuild(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<RebuildReport> {
    let mut ctx = Ctx::open_locked(g, reporter).await?;
    let restic = ctx.restic().await?;
    reporter.note(&format!("reading the snapshots of {}", restic.url()));
    let all = restic.snapshots(&[]).await?;
    let mut report = RebuildReport {
        snapshots_found: all.len(),
        added: 0,
        marked_forgotten: 0,
        ignored_untagged: 0,
    };
    let live: HashSet<String> = all.iter().map(|s| s.id.clone()).collect();
    let known = ctx.catalog.live_snapshot_ids()?;
    ctx.catalog.in_transaction(|cat| {
        for s in &all {
            let (job, run) = parse_tags(&s.tags);
            let Some(job) = job else {
                report.ignored_untagged += 1;
                continue;
            };
            let time = chrono::DateTime::parse_from_rfc3339(&s.time)
                .map(|t| t.timestamp_millis())
                .unwrap_or(0);
            if let Some(r) = &run {
                cat.insert_run_if_missing(r, "backup", "rebuild", RunStatus::Success, time)?;
            }
            if cat.has_snapshot(&s.id)? {
                continue;
            }
            cat.insert_snapshot(&SnapshotRow {
                snapshot_id: s.id.clone(),
                job,
                run_id: run,
                time,
                bytes: s.summary.as_ref().map(|x| x.total_bytes_processed as i64),
                files: s.summary.as_ref().map(|x| x.total_files_processed as i64),
                data_added: s.summary.as_ref().map(|x| x.data_added as i64),
                duration_ms: None,
                state: SnapshotState::Good,
                note: Some("rebuilt from the repository".into()),
            })?;
            report.added += 1;
        }
        let gone: Vec<String> = known.into_iter().filter(|id| !live.contains(id)).collect();
        report.marked_forgotten = gone.len();
        cat.mark_forgotten(&gone, "not in the repository at catalog rebuild", now_ms())
    })?;
    Ok(report)
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
