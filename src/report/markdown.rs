//! The Markdown rendering (also what a mail or a chat message carries).
//!
//! Every value that comes from outside (job names from container labels, error texts
//! with a dump's stderr tail, check details, the repository URL) goes through [`text`]:
//! it cannot open a heading, a link, an image, raw HTML or a new table row.

use super::{MonthReport, bytes, duration};
use std::fmt::Write;

pub fn render(r: &MonthReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Backup and restore report — {}\n", r.month);
    let _ = writeln!(
        s,
        "Repository {} · generated {}\n",
        text(&r.repository),
        r.generated_at
    );
    let _ = writeln!(s, "## Open problems\n");
    if r.problems.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        for p in &r.problems {
            let _ = writeln!(s, "- **{}**", text(p));
        }
        s.push('\n');
    }
    jobs(&mut s, r);
    trend(&mut s, r);
    encryption(&mut s, r);
    copies(&mut s, r);
    integrity(&mut s, r);
    s
}

/// The per-job table: backups, snapshots, sizes, restore tests, last RTO/RPO.
fn jobs(s: &mut String, r: &MonthReport) {
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
            text(&j.job),
            text(&j.kind_cell()),
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
}

/// Each job's month-by-month restore-test trend.
fn trend(s: &mut String, r: &MonthReport) {
    let _ = writeln!(s, "## RTO and RPO trend\n");
    for j in &r.jobs {
        let _ = writeln!(s, "**{}**\n", text(&j.job));
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
}

/// The month's encryption proofs and their checks.
fn encryption(s: &mut String, r: &MonthReport) {
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
            let _ = writeln!(s, "  - {} ({mark}): {}", text(&c.name), text(&c.detail));
        }
    }
    s.push('\n');
}

/// Each job in each copy repository: newest snapshot, last verified restore, lag.
fn copies(s: &mut String, r: &MonthReport) {
    if r.copies.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Copies (3-2-1)\n");
    let _ = writeln!(
        s,
        "| job | copy | newest snapshot | last verified restore | copy lag |\n|---|---|---|---|---|"
    );
    for c in &r.copies {
        let _ = writeln!(
            s,
            "| {} | {} ({}) | {} | {} | {} |",
            text(&c.job),
            text(&c.repository),
            text(&c.url),
            c.newest_snapshot.as_deref().unwrap_or("none"),
            c.last_verified_restore.as_deref().unwrap_or("never"),
            duration(c.copy_lag_seconds as f64)
        );
    }
    s.push('\n');
}

/// `restic check` runs and data-subset coverage.
fn integrity(s: &mut String, r: &MonthReport) {
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
        let _ = writeln!(s, "**Repository flagged:** {}\n", text(f));
    }
}

/// Untrusted text as inert Markdown: one line, inline-markup characters
/// backslash-escaped, `<`/`>`/`&` as entities (no raw HTML).
pub fn text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // The text never starts a line (it follows `- ` or `| `), so only inline
            // markup and the table separator need escaping.
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn hostile_text_cannot_make_markup() {
        let evil = "x |\n# Owned\n[click](http://evil) <script>alert(1)</script> ![i](x) `c` **b**";
        let t = text(evil);
        assert!(!t.contains('\n'));
        assert!(!t.contains("<script"));
        assert!(t.contains("\\[click\\](http"), "{t}");
        assert!(t.contains("\\|"), "{t}");
        assert!(t.contains("\\`c\\`"), "{t}");
        assert_eq!(text("plain words 42"), "plain words 42");
    }
}
