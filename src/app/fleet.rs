//! `omk-backup fleet`: every host's jobs in a shared repository, read from the
//! repository alone — no catalog (a fresh machine with only the config or an opened
//! kit sees the same): per host and job the newest snapshot and its age (RPO), the last
//! attested restore test, the last verified restore and its RTO, and what is wrong.
//!
//! Backups are the snapshots tagged `omk:job=JOB`; restore tests are the attestations
//! (see [`super::attest`]), of which only the newest few per host and job are read.

use super::attest::{self, Attestation};
use super::now_ms;
use super::reconcile::snapshot_time;
use super::session::load_config;
use crate::domain::{from_millis, parse_tags, rfc3339};
use crate::exit::Outcome;
use crate::restic::{Restic, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;

/// A job whose newest attested restore test is older than this is a problem.
pub const TEST_MAX_AGE_DAYS: i64 = 35;
/// Attestations read per host and job (newest first) to find the last verified one.
const READ_PER_JOB: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub repository: String,
    /// The host this instance writes as (`[repository] host`).
    pub this_host: String,
    /// The host of the newest maintenance claim (check and prune run there).
    pub maintenance_host: Option<String>,
    pub jobs: Vec<FleetJob>,
    /// Everything wrong, one line each (also under each job).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetJob {
    pub host: String,
    pub job: String,
    pub snapshots: usize,
    pub newest_snapshot: Option<String>,
    pub newest_snapshot_id: Option<String>,
    pub rpo_seconds: Option<i64>,
    pub last_restore_test: Option<String>,
    pub last_test_passed: Option<bool>,
    pub last_verified_restore: Option<String>,
    pub rto_seconds: Option<f64>,
    pub problems: Vec<String>,
}

impl FleetReport {
    pub fn outcome(&self) -> Outcome {
        Outcome::from_failures(!self.problems.is_empty())
    }
}

/// One host's job: its backups and attestations, newest first.
#[derive(Default)]
struct Group<'a> {
    backups: Vec<(i64, &'a Snapshot)>,
    attestations: Vec<(i64, &'a Snapshot)>,
}

pub async fn run(g: &super::Globals) -> anyhow::Result<FleetReport> {
    let config = load_config(g)?;
    let restic = Restic::detect(&config.repository, false).await?;
    let all = restic.snapshots_all_hosts(&[]).await?;
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut claims: Vec<(i64, &str)> = Vec::new();
    for s in &all {
        let t = snapshot_time(s).unwrap_or(0);
        if let (Some(job), _) = parse_tags(&s.tags) {
            let g = groups.entry((s.hostname.clone(), job)).or_default();
            g.backups.push((t, s));
        } else if let Some(job) = attest::job_of(s) {
            let g = groups
                .entry((s.hostname.clone(), job.to_string()))
                .or_default();
            g.attestations.push((t, s));
        } else if s.tags.iter().any(|t| t == attest::TAG_MAINTENANCE) {
            claims.push((t, &s.hostname));
        }
    }
    claims.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut report = FleetReport {
        repository: restic.url().to_string(),
        this_host: restic.host().to_string(),
        maintenance_host: claims.first().map(|c| c.1.to_string()),
        jobs: Vec::new(),
        problems: Vec::new(),
    };
    if report.maintenance_host.is_none() {
        report.problems.push(
            "no host has claimed maintenance of this repository: check and prune may not be running (set [repository] maintenance = true on one instance)".into(),
        );
    }
    let rpo_target = i64::try_from(config.web.rpo_target.as_secs()).unwrap_or(i64::MAX);
    for ((host, job), mut g) in groups {
        g.backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        g.attestations.sort_by_key(|a| std::cmp::Reverse(a.0));
        let j = judge(&restic, host, job, &g, rpo_target).await;
        report.problems.extend(
            j.problems
                .iter()
                .map(|p| format!("{}/{}: {p}", j.host, j.job)),
        );
        report.jobs.push(j);
    }
    Ok(report)
}

/// One host's job: newest snapshot, last test, last verified restore, problems.
async fn judge(
    restic: &Restic,
    host: String,
    job: String,
    g: &Group<'_>,
    rpo_target: i64,
) -> FleetJob {
    let now = now_ms();
    let newest = g.backups.first();
    let mut j = FleetJob {
        host,
        job,
        snapshots: g.backups.len(),
        newest_snapshot: newest.map(|n| rfc3339(from_millis(n.0))),
        newest_snapshot_id: newest.map(|n| n.1.id.clone()),
        rpo_seconds: newest.map(|n| (now - n.0).max(0) / 1000),
        last_restore_test: None,
        last_test_passed: None,
        last_verified_restore: None,
        rto_seconds: None,
        problems: Vec::new(),
    };
    match j.rpo_seconds {
        None => j.problems.push("no snapshot in the repository".into()),
        Some(rpo) if rpo > rpo_target => j.problems.push(format!(
            "newest snapshot is {} h old (RPO target {} h)",
            rpo / 3600,
            rpo_target / 3600
        )),
        Some(_) => {}
    }
    let mut last: Option<Attestation> = None;
    for (_, s) in g.attestations.iter().take(READ_PER_JOB) {
        match attest::read(restic, s).await {
            Err(e) => j.problems.push(e),
            Ok(a) => {
                if last.is_none() {
                    last = Some(a.clone());
                }
                if a.passed {
                    j.last_verified_restore = Some(a.finished_at.clone());
                    j.rto_seconds = a.rto_seconds;
                    break;
                }
            }
        }
    }
    match &last {
        None => j
            .problems
            .push("no restore test attested in the repository".into()),
        Some(a) => {
            j.last_restore_test = Some(a.finished_at.clone());
            j.last_test_passed = Some(a.passed);
            let age_days = (now - attest::millis(&a.finished_at)) / 86_400_000;
            if age_days > TEST_MAX_AGE_DAYS {
                j.problems.push(format!(
                    "no restore test in {age_days} days (run `omk-backup restore-test` on {})",
                    j.host
                ));
            }
            if !a.passed {
                let why = a
                    .checks
                    .iter()
                    .find(|c| !c.passed)
                    .map(|c| format!(": {}: {}", c.name, c.detail))
                    .unwrap_or_default();
                j.problems
                    .push(format!("the last restore test failed{why}"));
            }
        }
    }
    j
}
