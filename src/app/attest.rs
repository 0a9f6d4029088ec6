//! Restore-test attestations and the maintenance claim: small omk-tagged snapshots in
//! the repository itself (encrypted like everything else), so `fleet` and
//! `catalog rebuild` know, from the repository alone, what every host proved and which
//! host maintains the repository.
//!
//! - An attestation is `attestation.json` (one restore test's result, [`Attestation`])
//!   backed up from stdin under this host with the tags `omk:attestation` and
//!   `omk:attests=JOB`. Deliberately **not** `omk:job=JOB`: every backup lookup and the
//!   job's retention select `omk:job=JOB`, and an attestation must never count as a
//!   backup of the job (nor be restored as its "latest" snapshot). `forget` keeps the
//!   newest [`KEEP_PER_JOB`] per host and job.
//! - The maintenance claim is `maintenance.json` tagged `omk:maintenance`; the newest
//!   claim in the repository names the maintenance host.
//!
//! What is read back is untrusted input (anybody with the password can plant a snapshot
//! with our tags): at most [`MAX_BYTES`] are read, the schema is checked field by field,
//! and each bad attestation becomes one error naming its snapshot; the others still count.

use super::now_ms;
use super::reporter::Reporter;
use crate::catalog::Check;
use crate::domain::{from_millis, rfc3339, validate_job_name};
use crate::restic::{Restic, ResticError, Snapshot};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

pub const TAG_ATTESTATION: &str = "omk:attestation";
pub const TAG_ATTESTS: &str = "omk:attests=";
pub const TAG_MAINTENANCE: &str = "omk:maintenance";
const FILE: &str = "attestation.json";
const SCHEMA: u32 = 1;
/// An attestation is a few KiB; anything bigger is refused unread.
pub const MAX_BYTES: usize = 64 * 1024;
/// Attestations kept per host and job by `forget` (about a year of weekly tests).
pub const KEEP_PER_JOB: u32 = 60;

/// One restore test's result as stored in the repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attestation {
    pub schema: u32,
    pub host: String,
    pub job: String,
    pub kind: String,
    pub run_id: String,
    pub snapshot_id: Option<String>,
    pub passed: bool,
    pub started_at: String,
    pub finished_at: String,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<i64>,
    pub checks: Vec<Check>,
}

/// What a finished restore test hands over to be attested.
pub struct Tested<'a> {
    pub run_id: &'a str,
    pub job: &'a str,
    pub kind: &'a str,
    pub snapshot_id: Option<&'a str>,
    pub passed: bool,
    pub started_ms: i64,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<i64>,
    pub checks: &'a [Check],
}

/// The tags of `job`'s attestations.
pub fn tags_for(job: &str) -> Vec<String> {
    vec![TAG_ATTESTATION.to_string(), format!("{TAG_ATTESTS}{job}")]
}

/// The job an attestation snapshot's tags name.
pub fn job_of(s: &Snapshot) -> Option<&str> {
    s.tags.iter().find_map(|t| t.strip_prefix(TAG_ATTESTS))
}

/// Store the attestation of one finished test. A failure is said and logged, not fatal:
/// the test's own result (catalog, report, exit code) stands either way.
pub async fn store(restic: &Restic, t: &Tested<'_>, reporter: &dyn Reporter) {
    let a = Attestation {
        schema: SCHEMA,
        host: restic.host().to_string(),
        job: t.job.to_string(),
        kind: t.kind.to_string(),
        run_id: t.run_id.to_string(),
        snapshot_id: t.snapshot_id.map(str::to_string),
        passed: t.passed,
        started_at: rfc3339(from_millis(t.started_ms)),
        finished_at: rfc3339(from_millis(now_ms())),
        rto_seconds: t.rto_seconds,
        rpo_seconds: t.rpo_seconds,
        checks: t.checks.to_vec(),
    };
    let bytes = match serde_json::to_vec_pretty(&a) {
        Ok(b) => b,
        Err(e) => return reporter.note(&format!("{}: cannot encode the attestation: {e}", t.job)),
    };
    if let Err(e) = restic.backup_bytes(FILE, &tags_for(t.job), &bytes).await {
        let msg = format!(
            "{}: the restore-test attestation could not be stored in the repository ({e}); `fleet` and `catalog rebuild` will not see this test",
            t.job
        );
        tracing::warn!("{msg}");
        reporter.note(&msg);
    }
}

/// Read and validate one attestation snapshot: at most [`MAX_BYTES`], the schema, and
/// that it speaks for the host and job its snapshot is tagged with.
pub async fn read(restic: &Restic, s: &Snapshot) -> Result<Attestation, String> {
    let short = &s.id[..8.min(s.id.len())];
    let bytes = read_bounded(restic, &s.id)
        .await
        .map_err(|e| format!("attestation snapshot {short} of host {}: {e}", s.hostname))?;
    parse(&bytes, s).map_err(|e| {
        format!(
            "attestation snapshot {short} of host {} is not a valid attestation: {e} (planted or damaged; `restic forget {short}` removes it)",
            s.hostname
        )
    })
}

async fn read_bounded(restic: &Restic, id: &str) -> Result<Vec<u8>, String> {
    let mut child = restic
        .dump(id, &format!("/{FILE}"))
        .map_err(|e| e.to_string())?;
    let Some(mut out) = child.stdout.take() else {
        return Err("restic dump has no stdout".into());
    };
    let mut buf = Vec::with_capacity(4096);
    let mut limited = (&mut out).take(MAX_BYTES as u64 + 1);
    limited
        .read_to_end(&mut buf)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    if buf.len() > MAX_BYTES {
        // Dropping the child kills it (kill_on_drop): the rest is never read.
        drop(out);
        drop(child);
        return Err(format!(
            "{FILE} is larger than {} KiB: refused unread",
            MAX_BYTES / 1024
        ));
    }
    drop(out);
    restic
        .finish_dump(child)
        .await
        .map_err(|e: ResticError| e.to_string())?;
    Ok(buf)
}

fn parse(bytes: &[u8], s: &Snapshot) -> Result<Attestation, String> {
    let a: Attestation =
        serde_json::from_slice(bytes).map_err(|e| format!("{FILE} is not its JSON: {e}"))?;
    if a.schema != SCHEMA {
        return Err(format!(
            "schema {} (this omk-backup reads {SCHEMA})",
            a.schema
        ));
    }
    validate_job_name(&a.job).map_err(|e| format!("job {:?}: {e}", a.job))?;
    if job_of(s) != Some(a.job.as_str()) {
        return Err(format!(
            "it names job {:?} but is tagged {:?}",
            a.job,
            job_of(s)
        ));
    }
    if a.host != s.hostname {
        return Err(format!(
            "it names host {:?} but was made by {:?}",
            a.host, s.hostname
        ));
    }
    for (what, t) in [
        ("started_at", &a.started_at),
        ("finished_at", &a.finished_at),
    ] {
        chrono::DateTime::parse_from_rfc3339(t).map_err(|e| format!("{what} {t:?}: {e}"))?;
    }
    if a.rto_seconds.is_some_and(|r| !r.is_finite() || r < 0.0) {
        return Err("rto_seconds is negative or not a number".into());
    }
    if a.run_id.len() > 64 || a.kind.len() > 32 || a.checks.len() > 100 {
        return Err("run_id, kind or checks are longer than any omk-backup writes".into());
    }
    Ok(a)
}

/// Every attestation among `snaps` (this host's snapshots), read and validated; the
/// bad ones as one error each (also said through `reporter`).
pub async fn read_all(
    restic: &Restic,
    snaps: &[Snapshot],
    reporter: &dyn Reporter,
) -> (Vec<Attestation>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for s in snaps.iter().filter(|s| job_of(s).is_some()) {
        match read(restic, s).await {
            Ok(a) => good.push(a),
            Err(e) => {
                reporter.note(&e);
                bad.push(e)
            }
        }
    }
    (good, bad)
}

/// Record in the catalog the attested restore tests it lacks; returns how many.
pub fn record_missing(
    cat: &crate::catalog::Catalog,
    tests: &[Attestation],
) -> Result<usize, crate::catalog::CatalogError> {
    let mut added = 0;
    for a in tests {
        if cat.has_restore_test(&a.run_id, &a.job)? {
            continue;
        }
        let started = millis(&a.started_at);
        let status = if a.passed {
            crate::domain::RunStatus::Success
        } else {
            crate::domain::RunStatus::Failed
        };
        cat.insert_run_if_missing(&a.run_id, "restore-test", "rebuild", status, started)?;
        // The step is what `status` and the schedule read as "last verified restore".
        let step = cat.start_step(&a.run_id, Some(&a.job), "restore-test", started)?;
        let detail = crate::catalog::StepDetail::RestoreTest {
            snapshot_id: a.snapshot_id.clone(),
            rto_seconds: a.rto_seconds,
            rpo_seconds: a.rpo_seconds,
        };
        let error = a
            .checks
            .iter()
            .find(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail));
        cat.finish_step(
            step,
            status,
            Some(&detail),
            error.as_deref(),
            millis(&a.finished_at),
        )?;
        cat.insert_restore_test(&crate::catalog::RestoreTestRow {
            run_id: a.run_id.clone(),
            job: a.job.clone(),
            kind: a.kind.clone(),
            snapshot_id: a.snapshot_id.clone(),
            passed: a.passed,
            started_at: started,
            finished_at: millis(&a.finished_at),
            rto_ms: a.rto_seconds.map(|s| (s * 1000.0) as i64),
            rpo_seconds: a.rpo_seconds,
            files_listed: None,
            files_hashed: None,
            bytes_hashed: None,
            not_compared: None,
            checks: a.checks.clone(),
        })?;
        added += 1;
    }
    Ok(added)
}

/// Milliseconds since the epoch of an RFC 3339 time already validated by [`read`].
pub fn millis(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0)
}

/// The host of the newest maintenance claim in the repository, and every host that
/// ever claimed (newest first).
pub async fn maintainers(restic: &Restic) -> Result<Vec<String>, ResticError> {
    let mut claims = restic
        .snapshots_all_hosts(&[TAG_MAINTENANCE.to_string()])
        .await?;
    // restic prints local times with their offset: compare instants, not strings.
    claims.sort_by_key(|c| std::cmp::Reverse(super::reconcile::snapshot_time(c).unwrap_or(0)));
    let mut hosts: Vec<String> = Vec::new();
    for c in claims {
        if !hosts.contains(&c.hostname) {
            hosts.push(c.hostname);
        }
    }
    Ok(hosts)
}

/// Record this host as the repository's maintenance instance (its older claims go).
pub async fn claim(restic: &Restic) -> Result<(), ResticError> {
    let body = serde_json::json!({ "schema": SCHEMA, "host": restic.host(), "claimed_at": rfc3339(from_millis(now_ms())) });
    let tags = [TAG_MAINTENANCE.to_string()];
    restic
        .backup_bytes("maintenance.json", &tags, body.to_string().as_bytes())
        .await?;
    restic
        .forget_keep_last_per_tags(TAG_MAINTENANCE, 1)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(host: &str, job: &str) -> Snapshot {
        Snapshot {
            id: "0123456789abcdef".into(),
            time: "2026-12-01T00:00:00Z".into(),
            paths: vec![],
            tags: tags_for(job),
            hostname: host.into(),
            summary: None,
            original: None,
        }
    }

    fn good(host: &str, job: &str) -> serde_json::Value {
        serde_json::json!({
            "schema": 1, "host": host, "job": job, "kind": "files", "run_id": "r1",
            "snapshot_id": "abc", "passed": true, "started_at": "2026-12-01T00:00:00Z",
            "finished_at": "2026-12-01T00:00:05Z", "rto_seconds": 5.0, "rpo_seconds": 60,
            "checks": [{"name": "restore", "passed": true, "detail": "ok"}]
        })
    }

    #[test]
    fn accepts_ours_and_names_what_is_wrong_with_the_rest() {
        let s = snap("h1", "files1");
        let ok = good("h1", "files1").to_string();
        assert!(parse(ok.as_bytes(), &s).unwrap().passed);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{not json".to_vec(), "is not its JSON"),
            (good("h2", "files1").to_string().into_bytes(), "names host"),
            (good("h1", "other").to_string().into_bytes(), "names job"),
            (
                good("h1", "bad job,x").to_string().into_bytes(),
                "job \"bad job,x\"",
            ),
        ];
        for (bytes, want) in cases {
            let e = parse(&bytes, &s).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        let mut v = good("h1", "files1");
        v["schema"] = 2.into();
        assert!(
            parse(v.to_string().as_bytes(), &s)
                .unwrap_err()
                .contains("schema 2")
        );
        let mut v = good("h1", "files1");
        v["started_at"] = "yesterday".into();
        assert!(
            parse(v.to_string().as_bytes(), &s)
                .unwrap_err()
                .contains("started_at")
        );
        let mut v = good("h1", "files1");
        v["rto_seconds"] = (-1.0).into();
        assert!(
            parse(v.to_string().as_bytes(), &s)
                .unwrap_err()
                .contains("rto_seconds")
        );
    }
}
