//! What every restore test shares: the test in progress ([`Running`]) and picking the
//! newest good snapshot with its RPO ([`pick`]). A leaf below `verify` and its
//! per-kind tests.

use crate::app::now_ms;
use crate::app::session::Session;
use crate::catalog::Check;
use crate::config::Job;
use crate::domain::JobKind;
use serde::Serialize;

/// One job's restore test as reported.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub job: String,
    pub kind: JobKind,
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<i64>,
    pub snapshot_id: Option<String>,
    /// The copy (`[copies.NAME]`) the test restored from; absent: the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub checks: Vec<Check>,
}

/// A test in progress: the public result plus counters for the catalog.
pub(super) struct Running {
    pub(super) result: TestResult,
    pub(super) stats: [(&'static str, Option<i64>); 4],
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
    pub(super) fn new(job: &Job) -> Running {
        Running {
            result: TestResult {
                job: job.name.clone(),
                kind: job.kind,
                passed: false,
                rto_seconds: None,
                rpo_seconds: None,
                snapshot_id: None,
                repository: None,
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

    /// A test of `job` restored from the copy `repository` (`None`: the primary).
    pub(super) fn on(job: &Job, repository: Option<&str>) -> Running {
        let mut t = Running::new(job);
        t.repository = repository.map(str::to_string);
        t
    }

    pub(super) fn stat(&self, name: &str) -> Option<i64> {
        self.stats.iter().find(|s| s.0 == name).and_then(|s| s.1)
    }
}

/// Find the newest good snapshot (in the test's repository) and the RPO; push the
/// `snapshot` check. Returns the catalog's (primary) id and the id to restore in the
/// test's repository (the same on the primary; the copy's own id in a copy).
pub(super) fn pick(
    ctx: &Session,
    job: &Job,
    t: &mut Running,
) -> anyhow::Result<Option<(String, String)>> {
    let found = match &t.repository {
        None => ctx
            .catalog
            .latest_good(&job.name)?
            .map(|s| (s.snapshot_id.clone(), s)),
        Some(copy) => ctx
            .catalog
            .latest_good_in(&job.name, copy)?
            .map(|(s, id)| (id, s)),
    };
    let Some((restic_id, snap)) = found else {
        let detail = match &t.repository {
            None => format!(
                "no good snapshot of `{}` in the catalog: run `omk-backup backup {}` (or `omk-backup catalog rebuild` on a new machine)",
                job.name, job.name
            ),
            Some(copy) => format!(
                "the copy `{copy}` holds no good snapshot of `{}`: run `omk-backup copy --to {copy}`",
                job.name
            ),
        };
        t.checks.push(Check::new("snapshot", false, detail));
        return Ok(None);
    };
    let rpo = (now_ms() - snap.time).max(0) / 1000;
    t.rpo_seconds = Some(rpo);
    t.snapshot_id = Some(snap.snapshot_id.clone());
    let place = match &t.repository {
        None => String::new(),
        Some(copy) => format!(
            " (in copy `{copy}` as {})",
            &restic_id[..8.min(restic_id.len())]
        ),
    };
    t.checks.push(Check::new(
        "snapshot",
        true,
        format!(
            "newest good snapshot {}{place} from {} (RPO {rpo} s)",
            &snap.snapshot_id[..8.min(snap.snapshot_id.len())],
            crate::domain::rfc3339(crate::domain::from_millis(snap.time))
        ),
    ));
    Ok(Some((snap.snapshot_id, restic_id)))
}
