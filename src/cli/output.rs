//! Rendering reports: human text or one JSON document on stdout; errors on stderr.

use crate::app::backup::{BackupReport, short};
use crate::app::daemon::RunDueReport;
use crate::app::kit::{ExportReport, OpenReport};
use crate::app::maintain::{CheckReport, ForgetReport, RebuildReport};
use crate::app::query::{ConfigReport, SnapshotView, StatusReport};
use crate::app::quiesce::RecoverReport;
use crate::app::report::ReportOutcome;
use crate::app::restore::RestoreReport;
use crate::app::schedule::ScheduleReport;
use crate::app::verify::{Check, RestoreTestReport};
use serde::Serialize;

fn json<T: Serialize + ?Sized>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

/// An error: what failed and why, with each cause on its own line.
pub fn error(e: &anyhow::Error, as_json: bool) {
    let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    if as_json {
        let v = serde_json::json!({ "error": causes.join(": "), "exit_code": crate::exit::classify(e) as u8 });
        json(&v);
    }
    let mut msg = format!("error: {}", causes[0]);
    for c in &causes[1..] {
        msg.push_str(&format!("\n  caused by: {c}"));
    }
    eprintln!("{msg}");
}

fn human_bytes(b: Option<i64>) -> String {
    b.map(crate::report::bytes).unwrap_or_else(|| "-".into())
}

pub fn backup(r: &BackupReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!("run {}", r.run_id);
    for j in &r.jobs {
        match (&j.snapshot_id, &j.error) {
            (Some(id), _) => println!(
                "  {:<20} {:<8} snapshot {}  {}  {} files  {:.1}s",
                j.job,
                j.status.as_str(),
                short(id),
                human_bytes(j.bytes.map(|b| b as i64)),
                j.files.unwrap_or(0),
                j.duration_ms as f64 / 1000.0
            ),
            (None, Some(e)) => println!("  {:<20} {:<8} {e}", j.job, j.status.as_str()),
            (None, None) => println!("  {:<20} {}", j.job, j.status.as_str()),
        }
    }
    for p in &r.problems {
        println!("  FAILED: {p}");
    }
}

pub fn snapshots(list: &[SnapshotView], as_json: bool) {
    if as_json {
        return json(list);
    }
    if list.is_empty() {
        println!(
            "no snapshots in the catalog (run `omk-backup backup`, or `omk-backup catalog rebuild` on a new machine)"
        );
        return;
    }
    println!(
        "{:<10} {:<20} {:<21} {:>10}  state",
        "id", "job", "time", "size"
    );
    for s in list {
        println!(
            "{:<10} {:<20} {:<21} {:>10}  {}",
            short(&s.snapshot_id),
            s.job,
            s.time,
            human_bytes(s.bytes),
            s.state.as_str()
        );
    }
}

pub fn status(r: &StatusReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    if let Some(flag) = &r.repository_flag {
        println!("REPOSITORY FLAGGED: {flag}");
    }
    for p in &r.discovery_problems {
        println!("DISCOVERY: {p}");
    }
    for j in r.jobs.iter().filter(|j| j.suspect.is_some()) {
        println!(
            "SUSPECT: {}: {}",
            j.job,
            j.suspect.as_deref().unwrap_or_default()
        );
    }
    if r.jobs.is_empty() {
        println!("no jobs configured");
        return;
    }
    println!(
        "{:<20} {:<9} {:<10} {:<21} {:<21} {:>9}  {:<21} last run",
        "job", "kind", "engine", "last backup", "last verified restore", "RPO", "next run"
    );
    for j in &r.jobs {
        let rpo = j.rpo_seconds.map(format_age).unwrap_or_else(|| "-".into());
        let last = match (&j.last_run_status, &j.last_error) {
            (Some(s), Some(e)) => format!("{}: {e}", s.as_str()),
            (Some(s), None) => s.as_str().to_string(),
            (None, _) => "never".into(),
        };
        println!(
            "{:<20} {:<9} {:<10} {:<21} {:<21} {:>9}  {:<21} {}",
            j.job,
            j.kind.as_str(),
            j.engine,
            j.last_backup.as_deref().unwrap_or("never"),
            j.last_verified_restore.as_deref().unwrap_or("never"),
            rpo,
            j.next_run.as_deref().unwrap_or("not scheduled"),
            last
        );
    }
    let copies: Vec<_> = r
        .jobs
        .iter()
        .flat_map(|j| j.repositories.iter().skip(1).map(move |c| (j, c)))
        .collect();
    if !copies.is_empty() {
        println!(
            "\n{:<20} {:<16} {:<21} {:<21} {:>9}",
            "job", "copy", "newest snapshot", "last verified restore", "lag"
        );
    }
    for (j, c) in copies {
        println!(
            "{:<20} {:<16} {:<21} {:<21} {:>9}",
            j.job,
            c.repository,
            c.newest_snapshot.as_deref().unwrap_or("none"),
            c.last_verified_restore.as_deref().unwrap_or("never"),
            c.copy_lag_seconds
                .map(format_age)
                .unwrap_or_else(|| "-".into())
        );
    }
    let c = &r.check_coverage;
    println!(
        "check coverage: {}/{} data subsets read by passing checks in the last {} days{}",
        c.subsets_read,
        c.subsets,
        c.period_days,
        if c.complete { " (every pack read)" } else { "" }
    );
}

fn format_age(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub fn restore_into(r: &crate::app::restore::IntoContainerReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "{} {} snapshot {} into container {}",
        if r.passed {
            "restored"
        } else {
            "FAILED to restore"
        },
        r.job,
        short(&r.snapshot_id),
        r.container
    );
    for c in &r.checks {
        println!(
            "  {} {}: {}",
            if c.passed { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    if let Some(f) = &r.restored_file {
        println!(
            "  the restored SQLite database is {f} in the container: stop the app, move it over the live file, start the app"
        );
    }
}

pub fn restore(r: &RestoreReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "restored {} snapshot {} into {}",
        r.job,
        short(&r.snapshot_id),
        r.target
    );
    for p in &r.restored {
        println!("  {p}");
    }
}

pub fn forget(r: &ForgetReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    for j in &r.jobs {
        match &j.reason {
            Some(why) => println!("{:<20} {:<8} {why}", j.job, j.status.as_str()),
            None => println!(
                "{:<20} {:<8} {} snapshot(s) removed",
                j.job,
                j.status.as_str(),
                j.removed.len()
            ),
        }
    }
    if r.pruned {
        println!("pruned unreferenced data");
    }
}

pub fn check(r: &CheckReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    let verdict = if r.passed { "passed" } else { "FAILED" };
    println!(
        "check {verdict}{}: {}",
        r.read_data_subset
            .as_ref()
            .map(|s| format!(
                " (data subset {s}{})",
                if r.rotating { ", rotating" } else { "" }
            ))
            .unwrap_or_default(),
        r.detail
    );
    println!(
        "coverage: {}/{} subsets read by passing checks in the last {} days{}",
        r.coverage.subsets_read,
        r.coverage.subsets,
        r.coverage.period_days,
        if r.coverage.complete {
            " (every pack read)"
        } else {
            ""
        }
    );
    if !r.passed {
        println!("the repository is flagged until a check passes");
    }
}

pub fn rebuild(r: &RebuildReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "catalog rebuilt: {} snapshots in the repository, {} added ({} good: dumps streamed complete; {} unverified), {} marked forgotten, {} without omk tags ignored",
        r.snapshots_found,
        r.added,
        r.verified,
        r.unverified,
        r.marked_forgotten,
        r.ignored_untagged
    );
    for u in &r.unverified_snapshots {
        println!(
            "  {} ({}): unverified: {}",
            &u.snapshot_id[..8.min(u.snapshot_id.len())],
            u.job,
            u.why
        );
    }
    if r.unverified > 0 {
        println!(
            "unverified snapshots (files snapshots, cut or unreadable dumps) are not handed out by `restore latest`; restore-test them, or pass `restore --allow-unverified`"
        );
    }
    println!(
        "{} restore test(s) brought back from the repository's attestations",
        r.restore_tests_added
    );
    for e in &r.attestation_errors {
        println!("  ATTESTATION: {e}");
    }
}

pub fn fleet(r: &crate::app::fleet::FleetReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "{} (this host: {}; maintenance: {})",
        r.repository,
        r.this_host,
        r.maintenance_host.as_deref().unwrap_or("nobody")
    );
    println!(
        "{:<16} {:<20} {:<21} {:>9}  {:<21} {:>8}  last test",
        "host", "job", "newest snapshot", "RPO", "last verified restore", "RTO"
    );
    for j in &r.jobs {
        let last = match j.last_test_passed {
            Some(true) => "passed",
            Some(false) => "FAILED",
            None => "none",
        };
        println!(
            "{:<16} {:<20} {:<21} {:>9}  {:<21} {:>8}  {last}",
            j.host,
            j.job,
            j.newest_snapshot.as_deref().unwrap_or("never"),
            j.rpo_seconds.map(format_age).unwrap_or_else(|| "-".into()),
            j.last_verified_restore.as_deref().unwrap_or("never"),
            j.rto_seconds
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    for p in &r.problems {
        println!("PROBLEM: {p}");
    }
}

pub fn config(r: &ConfigReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!("config {} is valid", r.file);
    println!("repository: {}", r.repository);
    println!("catalog:    {}", r.catalog);
    if r.jobs.is_empty() {
        println!("no jobs defined");
    }
    for j in &r.jobs {
        let on = if j.engine == crate::config::LOCAL_ENGINE {
            String::new()
        } else {
            format!(" on engine {}", j.engine)
        };
        println!(
            "  {:<20} {:<9} {}{on}  [{}]",
            j.job,
            j.kind.as_str(),
            j.what,
            j.source
        );
    }
}

pub fn schedule(r: &ScheduleReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!("schedules from {}", r.sources.join(", "));
    if r.lines.is_empty() {
        println!("  (no schedule lines: nothing runs)");
    }
    for l in &r.lines {
        println!(
            "{}:{}  {}  {}  [{}]",
            l.file, l.line, l.when, l.task, l.zone
        );
        if l.next_runs.is_empty() {
            println!("    never (no date matches)");
        }
        for (local, utc) in l.next_runs_local.iter().zip(&l.next_runs) {
            println!("    {local}   {utc}");
        }
    }
}

pub fn restore_test(r: &RestoreTestReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    if let Some(kit) = &r.from_kit {
        println!("restore test from the recovery kit {kit} alone");
    }
    let e = &r.encryption;
    println!(
        "encryption of {}: {}",
        e.repository,
        if e.passed { "proven" } else { "NOT PROVEN" }
    );
    for c in &e.checks {
        println!("  {} {:<24} {}", mark(c), c.name, c.detail);
    }
    for t in &r.tests {
        println!(
            "{} {}: {}  RTO {}  RPO {}",
            if t.passed { "PASSED" } else { "FAILED" },
            t.job,
            t.snapshot_id.as_deref().map(short).unwrap_or("-"),
            t.rto_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or_else(|| "-".into()),
            t.rpo_seconds.map(format_age).unwrap_or_else(|| "-".into())
        );
        for c in &t.checks {
            println!("  {} {:<16} {}", mark(c), c.name, c.detail);
        }
    }
}

pub fn run_due(r: &RunDueReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    if r.tasks.is_empty() && r.interrupted.is_none() {
        println!("nothing is due");
    }
    for t in &r.tasks {
        println!(
            "{:<28} {:<11} {:<9} {:.1}s{}",
            t.task,
            t.status.as_str(),
            t.trigger.as_str(),
            t.duration_ms as f64 / 1000.0,
            t.error
                .as_ref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(sig) = &r.interrupted {
        println!("stopped by {sig}");
    }
}

fn mark(c: &Check) -> &'static str {
    match (c.passed, c.skipped) {
        (_, true) => "-",
        (true, false) => "ok",
        (false, false) => "!!",
    }
}

pub fn report(r: &ReportOutcome, as_json: bool) {
    match (&r.output, as_json) {
        (None, _) => print!("{}", r.text),
        (Some(_), true) => json(r),
        (Some(out), false) => println!(
            "report {} ({}) written to {out}: {} open problem(s); content SHA-256 {}",
            r.month, r.format, r.problems, r.sha256
        ),
    }
}

pub fn kit_export(r: &ExportReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "recovery kit written to {} ({} bytes): {}",
        r.output,
        r.bytes,
        r.files.join(", ")
    );
    println!("keep it off this machine, and the passphrase somewhere else than the kit");
}

pub fn kit_open(r: &OpenReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!("kit unsealed into {}: {}", r.into, r.files.join(", "));
    println!("config: {}", r.config);
    if let Some(p) = &r.config_problem {
        println!("note: the config does not load on this machine yet: {p}");
    }
}

pub fn recover(r: &RecoverReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    for c in &r.containers {
        println!(
            "{}  {}  ({}, run {}): {}",
            c.action, c.container, c.job, c.run_id, c.detail
        );
    }
}

pub fn copy(r: &crate::app::copy::CopyReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    for c in &r.copies {
        match &c.error {
            Some(e) => println!("{:<20} FAILED   {e}", c.repository),
            None => {
                for j in &c.jobs {
                    let kept = match &j.retention {
                        Some(why) => format!("retention not applied: {why}"),
                        None => format!("{} removed by its retention", j.removed.len()),
                    };
                    println!(
                        "{:<20} {:<20} {} copied, {} held; {kept}",
                        c.repository,
                        j.job,
                        j.copied.len(),
                        j.held
                    );
                }
            }
        }
    }
}
