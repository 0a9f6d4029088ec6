//! The Markdown rendering (also what a mail or a chat message carries).

use super::{MonthReport, bytes, duration};
use std::fmt::Write;

pub fn render(r: &MonthReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Backup and restore report — {}\n", r.month);
    let _ = writeln!(
        s,
        "Repository `{}` · generated {}\n",
        r.repository, r.generated_at
    );
    let _ = writeln!(s, "## Open problems\n");
    if r.problems.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        for p in &r.problems {
            let _ = writeln!(s, "- **{p}**");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## Jobs\n");
    let _ = writeln!(
        s,
        "| job | kind | backups (failed) | snapshots | data added | latest size | restore tests passed | last RTO | last RPO |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for j in &r.jobs {
        let t = j.last_test.as_ref();
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} | {} | {} | {}/{} | {} | {} |",
            j.job,
            j.kind,
            j.backups_run,
            j.backups_failed,
            j.snapshots,
            bytes(j.bytes_added),
            j.latest_snapshot_bytes
                .map(bytes)
                .unwrap_or_else(|| "-".into()),
            j.restore_tests_passed,
            j.restore_tests,
            t.and_then(|t| t.rto_seconds)
                .map(duration)
                .unwrap_or_else(|| "-".into()),
            t.and_then(|t| t.rpo_seconds)
                .map(|x| duration(x as f64))
                .unwrap_or_else(|| "-".into()),
        );
    }
    s.push('\n');
    let _ = writeln!(s, "## RTO and RPO trend\n");
    for j in &r.jobs {
        let _ = writeln!(s, "**{}**\n", j.job);
        let _ = writeln!(s, "| month | tests (passed) | mean RTO | mean RPO |");
        let _ = writeln!(s, "|---|---|---|---|");
        for p in &j.trend {
            let _ = writeln!(
                s,
                "| {} | {} ({}) | {} | {} |",
                p.month,
                p.tests,
                p.passed,
                p.rto_seconds.map(duration).unwrap_or_else(|| "-".into()),
                p.rpo_seconds.map(duration).unwrap_or_else(|| "-".into())
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## Encryption evidence\n");
    if r.encryption.is_empty() {
        let _ = writeln!(s, "No encryption proof ran this month.\n");
    }
    for e in &r.encryption {
        let _ = writeln!(
            s,
            "- {} — {}",
            e.at,
            if e.passed { "proven" } else { "**NOT PROVEN**" }
        );
        for c in &e.checks {
            let mark = if c.skipped {
                "not checked"
            } else if c.passed {
                "ok"
            } else {
                "FAILED"
            };
            let _ = writeln!(s, "  - {} ({mark}): {}", c.name, c.detail);
        }
    }
    s.push('\n');
    let c = &r.check;
    let _ = writeln!(s, "## Integrity checks\n");
    let _ = writeln!(
        s,
        "{} check(s) this month, {} failed. Coverage: {}/{} data subsets read by passing checks in the last {} days{}.\n",
        c.checks_run,
        c.checks_failed,
        c.subsets_read,
        c.subsets,
        c.period_days,
        if c.complete {
            " — every pack read"
        } else {
            ""
        }
    );
    if let Some(f) = &c.flag {
        let _ = writeln!(s, "**Repository flagged:** {f}\n");
    }
    s
}
