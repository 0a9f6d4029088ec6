//! `report --month YYYY-MM|previous --format md|html|json [--output FILE]`: gather a
//! month of backups, restore tests, encryption proofs and checks from the catalog into a
//! [`MonthReport`], render it, and record its digest (the chain of issued reports).

use super::now_ms;
use super::reporter::Reporter;
use super::session::Session;
use crate::catalog::Check;
use crate::domain::{RunStatus, from_millis, rfc3339};
use crate::exit::usage;
use crate::report::{
    CheckSummary, EncryptionEvidence, EvidenceCheck, Format, JobMonth, MonthPoint, MonthReport,
    TestSummary,
};
use anyhow::Context;
use chrono::{Datelike, TimeZone, Utc};
use std::path::Path;

/// How many months the RTO/RPO trend shows (this one included).
const TREND_MONTHS: i32 = 6;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReportOutcome {
    pub month: String,
    pub format: &'static str,
    pub output: Option<String>,
    pub sha256: String,
    pub previous_sha256: Option<String>,
    /// The document itself when no --output was given.
    #[serde(skip)]
    pub text: String,
    pub problems: usize,
}

/// (year, month) of `YYYY-MM`, `previous` or `current`.
pub fn parse_month(s: &str, now: chrono::DateTime<Utc>) -> anyhow::Result<(i32, u32)> {
    let (y, m) = (now.year(), now.month());
    match s {
        "current" => Ok((y, m)),
        "previous" => Ok(if m == 1 { (y - 1, 12) } else { (y, m - 1) }),
        _ => {
            let bad = || {
                usage(format!(
                    "--month {s}: expected YYYY-MM (e.g. 2026-10), `previous` or `current`"
                ))
            };
            let (ys, ms) = s.split_once('-').ok_or_else(bad)?;
            let y: i32 = ys.parse().map_err(|_| bad())?;
            let m: u32 = ms.parse().map_err(|_| bad())?;
            if ys.len() != 4 || !(1..=12).contains(&m) {
                return Err(bad());
            }
            Ok((y, m))
        }
    }
}

fn shift(y: i32, m: u32, by: i32) -> (i32, u32) {
    let idx = y * 12 + (m as i32 - 1) + by;
    (idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32)
}

fn start_ms(y: i32, m: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

fn label(y: i32, m: u32) -> String {
    format!("{y:04}-{m:02}")
}

/// The `YYYY-MM` label a `--month` argument names (for file names).
pub fn month_label(month: &str, now: chrono::DateTime<Utc>) -> anyhow::Result<String> {
    let (y, m) = parse_month(month, now)?;
    Ok(label(y, m))
}

pub async fn run(
    ctx: &Session,
    month: &str,
    format: &str,
    output: Option<&Path>,
    reporter: &dyn Reporter,
) -> anyhow::Result<ReportOutcome> {
    let fmt = Format::parse(format)
        .ok_or_else(|| usage(format!("--format {format}: expected md, html or json")))?;
    let (y, m) = parse_month(month, super::now())?;
    let _ = reporter;
    let report = gather(ctx, y, m)?;
    let prev = shift(y, m, -1);
    let previous = ctx
        .catalog
        .report_digest(&label(prev.0, prev.1), fmt.as_str())?;
    let rendered = crate::report::render(&report, fmt, previous.as_deref());
    if let Some(out) = output {
        crate::private::write(out, rendered.text.as_bytes(), crate::private::GROUP_READ)
            .with_context(|| format!("cannot write the report to {}", out.display()))?;
    }
    ctx.catalog.insert_report(
        &report.month,
        fmt.as_str(),
        &rendered.sha256,
        previous.as_deref(),
        now_ms(),
    )?;
    Ok(ReportOutcome {
        month: report.month.clone(),
        format: fmt.as_str(),
        output: output.map(|o| o.display().to_string()),
        sha256: rendered.sha256,
        previous_sha256: previous,
        text: rendered.text,
        problems: report.problems.len(),
    })
}

/// A month's report as self-contained HTML, rendered from the catalog without issuing
/// it (no digest recorded): what the dashboard shows.
pub fn preview_html(ctx: &Session, month: &str) -> anyhow::Result<String> {
    let (y, m) = parse_month(month, super::now())?;
    let report = gather(ctx, y, m)?;
    let prev = shift(y, m, -1);
    let previous = ctx.catalog.report_digest(&label(prev.0, prev.1), "html")?;
    Ok(crate::report::render(&report, Format::Html, previous.as_deref()).text)
}

fn gather(ctx: &Session, y: i32, m: u32) -> anyhow::Result<MonthReport> {
    let from = start_ms(y, m);
    let (ny, nm) = shift(y, m, 1);
    let to = start_ms(ny, nm);
    let cat = &ctx.catalog;
    let repo = ctx.config.repository.url.shown().to_string();
    let mut problems = Vec::new();
    let flag = cat
        .repository_flag(&repo)?
        .map(|c| super::health::flag_text(&c));
    if let Some(f) = &flag {
        problems.push(format!("repository flagged: {f}"));
    }
    let mut jobs = Vec::new();
    for job in ctx.config.jobs.values() {
        jobs.push(job_month(
            cat,
            &job.name,
            (job.kind.as_str(), &job.engine),
            (y, m),
            &mut problems,
        )?);
    }
    let encryption: Vec<EncryptionEvidence> = cat
        .encryption_checks(from, to)?
        .into_iter()
        .filter(|e| e.repository == repo)
        .map(|e| EncryptionEvidence {
            at: rfc3339(from_millis(e.at)),
            passed: e.passed,
            checks: e.checks.iter().map(evidence).collect(),
        })
        .collect();
    match encryption.last() {
        None => problems.push(format!(
            "no encryption proof of the repository in {}",
            label(y, m)
        )),
        Some(e) if !e.passed => {
            problems.push(format!("the last encryption proof ({}) failed", e.at))
        }
        _ => {}
    }
    let checks = cat.check_runs(&repo, from, to)?;
    let cov = super::health::coverage(cat, &repo, ctx.config.check, to.min(now_ms()))?;
    if !cov.complete {
        problems.push(format!(
            "check coverage: {}/{} data subsets read in the last {} days; not every pack has been read",
            cov.subsets_read, cov.subsets, cov.period_days
        ));
    }
    let copies = copy_months(ctx, to.min(now_ms()), &mut problems)?;
    Ok(MonthReport {
        copies,
        month: label(y, m),
        generated_at: rfc3339(super::now()),
        repository: repo,
        problems,
        jobs,
        encryption,
        check: CheckSummary {
            checks_run: checks.len() as i64,
            checks_failed: checks.iter().filter(|c| !c.passed).count() as i64,
            period_days: cov.period_days,
            subsets: cov.subsets,
            subsets_read: cov.subsets_read,
            complete: cov.complete,
            flag,
        },
    })
}

/// One job's month: activity, restore tests and trend; its problems go to `problems`.
fn job_month(
    cat: &crate::catalog::Catalog,
    name: &str,
    (kind, engine): (&str, &str),
    (y, m): (i32, u32),
    problems: &mut Vec<String>,
) -> anyhow::Result<JobMonth> {
    let from = start_ms(y, m);
    let (ny, nm) = shift(y, m, 1);
    let to = start_ms(ny, nm);
    let act = cat.backup_activity(name, from, to)?;
    let tests = cat.restore_tests(name, from, to)?;
    if let Some(last) = cat.last_step(name, "backup")?
        && last.status != RunStatus::Success
        && last.status != RunStatus::Running
    {
        problems.push(format!(
            "{}: the last backup ({}) {}{}",
            name,
            rfc3339(from_millis(last.started_at)),
            last.status.as_str(),
            last.error.map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    match tests.last() {
        None => problems.push(format!("{}: no restore test in {}", name, label(y, m))),
        Some(t) if !t.passed => problems.push(format!(
            "{}: the last restore test ({}) failed{}",
            name,
            rfc3339(from_millis(t.started_at)),
            failed_checks(&t.checks)
                .first()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        )),
        _ => {}
    }
    let last_test = tests.last().map(|t| TestSummary {
        at: rfc3339(from_millis(t.started_at)),
        passed: t.passed,
        rto_seconds: t.rto_ms.map(|ms| ms as f64 / 1000.0),
        rpo_seconds: t.rpo_seconds,
        files_hashed: t.files_hashed,
        bytes_hashed: t.bytes_hashed,
        not_compared: t.not_compared,
        failed_checks: failed_checks(&t.checks),
    });
    let trend = trend(cat, name, (y, m), &tests)?;
    Ok(JobMonth {
        job: name.to_string(),
        kind: kind.to_string(),
        engine: engine.to_string(),
        backups_run: act.runs,
        backups_failed: act.failed,
        snapshots: act.snapshots,
        bytes_added: act.bytes_added,
        latest_snapshot_bytes: act.latest_bytes,
        restore_tests: tests.len() as i64,
        restore_tests_passed: tests.iter().filter(|t| t.passed).count() as i64,
        last_test,
        trend,
    })
}

/// RTO/RPO means per month over the last [`TREND_MONTHS`] (this one's `tests` given).
fn trend(
    cat: &crate::catalog::Catalog,
    name: &str,
    (y, m): (i32, u32),
    tests: &[crate::catalog::RestoreTestRow],
) -> anyhow::Result<Vec<MonthPoint>> {
    let mut trend = Vec::new();
    for back in (0..TREND_MONTHS).rev() {
        let (ty, tm) = shift(y, m, -back);
        let (ey, em) = shift(ty, tm, 1);
        let ts = if back == 0 {
            tests.to_vec()
        } else {
            cat.restore_tests(name, start_ms(ty, tm), start_ms(ey, em))?
        };
        let rtos: Vec<f64> = ts
            .iter()
            .filter(|t| t.passed)
            .filter_map(|t| t.rto_ms)
            .map(|ms| ms as f64 / 1000.0)
            .collect();
        let rpos: Vec<f64> = ts
            .iter()
            .filter_map(|t| t.rpo_seconds)
            .map(|s| s as f64)
            .collect();
        trend.push(MonthPoint {
            month: label(ty, tm),
            tests: ts.len() as i64,
            passed: ts.iter().filter(|t| t.passed).count() as i64,
            rto_seconds: mean(&rtos),
            rpo_seconds: mean(&rpos),
        });
    }
    Ok(trend)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn evidence(c: &Check) -> EvidenceCheck {
    EvidenceCheck {
        name: c.name.clone(),
        passed: c.passed,
        detail: c.detail.clone(),
        skipped: c.skipped,
    }
}

fn failed_checks(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

/// Each job in each `[copies.NAME]` as of `at`; a copy holding nothing of a job, or
/// lagging more than two days, is an open problem.
fn copy_months(
    ctx: &Session,
    at: i64,
    problems: &mut Vec<String>,
) -> anyhow::Result<Vec<crate::report::CopyMonth>> {
    let mut out = Vec::new();
    for job in ctx.config.jobs.keys() {
        for (name, copy) in &ctx.config.copies {
            let st = ctx.catalog.copy_state(job, name, at)?;
            if st.newest.is_none() {
                problems.push(format!("copy `{name}` holds no snapshot of job {job}"));
            } else if st.lag_ms > 2 * 86_400_000 {
                problems.push(format!(
                    "copy `{name}` of job {job}: a good snapshot has waited {} h to be copied",
                    st.lag_ms / 3_600_000
                ));
            }
            out.push(crate::report::CopyMonth {
                job: job.clone(),
                repository: name.clone(),
                url: copy.repository.url.shown().to_string(),
                newest_snapshot: st.newest.map(|(t, _)| rfc3339(from_millis(t))),
                last_verified_restore: st.last_verified.map(|t| rfc3339(from_millis(t))),
                copy_lag_seconds: st.lag_ms / 1000,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let now = Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap();
        assert_eq!(parse_month("previous", now).unwrap(), (2025, 12));
        assert_eq!(parse_month("current", now).unwrap(), (2026, 1));
        assert_eq!(parse_month("2026-10", now).unwrap(), (2026, 10));
        for bad in ["2026-13", "26-01", "x", "2026-0"] {
            assert!(parse_month(bad, now).is_err(), "{bad}");
        }
        assert_eq!(shift(2026, 1, -1), (2025, 12));
        assert_eq!(shift(2025, 12, 1), (2026, 1));
        assert_eq!(shift(2026, 3, -5), (2025, 10));
    }
}
