//! Catalog records of verification: restore tests (result, RTO, RPO, what was
//! compared), encryption evidence, `check` coverage and the repository flag it implies,
//! issued report digests, and a consistent copy of the catalog for the recovery kit.

use super::{Catalog, Check, Result, detail};
use rusqlite::{OptionalExtension, params};
use std::path::Path;

/// One restore test as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreTestRow {
    pub run_id: String,
    pub job: String,
    pub kind: String,
    pub snapshot_id: Option<String>,
    pub passed: bool,
    pub started_at: i64,
    pub finished_at: i64,
    pub rto_ms: Option<i64>,
    pub rpo_seconds: Option<i64>,
    pub files_listed: Option<i64>,
    pub files_hashed: Option<i64>,
    pub bytes_hashed: Option<i64>,
    pub not_compared: Option<i64>,
    /// Stored as a JSON array of `{name, passed, detail, skipped}`.
    pub checks: Vec<Check>,
}

/// One encryption proof of a repository.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptionRow {
    pub run_id: String,
    pub repository: String,
    pub at: i64,
    pub passed: bool,
    /// Stored as a JSON array of `{name, passed, detail, skipped}`.
    pub checks: Vec<Check>,
}

/// One `check` of the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRunRow {
    pub run_id: String,
    pub repository: String,
    pub subset: Option<String>,
    pub k: Option<i64>,
    pub n: Option<i64>,
    pub rotating: bool,
    pub at: i64,
    pub passed: bool,
    pub error: Option<String>,
}

/// Backup activity of a job in a time window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupActivity {
    pub runs: i64,
    pub failed: i64,
    pub snapshots: i64,
    pub bytes_added: i64,
    pub latest_bytes: Option<i64>,
}

impl Catalog {
    pub fn insert_restore_test(&self, t: &RestoreTestRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO restore_tests (run_id, job, kind, snapshot_id, passed, started_at, finished_at, rto_ms,
                   rpo_seconds, files_listed, files_hashed, bytes_hashed, not_compared, checks)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    t.run_id,
                    t.job,
                    t.kind,
                    t.snapshot_id,
                    t.passed,
                    t.started_at,
                    t.finished_at,
                    t.rto_ms,
                    t.rpo_seconds,
                    t.files_listed,
                    t.files_hashed,
                    t.bytes_hashed,
                    t.not_compared,
                    detail::to_json(&t.checks)
                ],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Whether run `run_id` recorded a restore test of `job` (rebuild from attestations).
    pub fn has_restore_test(&self, run_id: &str, job: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM restore_tests WHERE run_id = ?1 AND job = ?2)",
                params![run_id, job],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// Restore tests of a job started in `[from, to)`, oldest first.
    pub fn restore_tests(&self, job: &str, from: i64, to: i64) -> Result<Vec<RestoreTestRow>> {
        self.query_restore_tests(
            "WHERE job = ?1 AND started_at >= ?2 AND started_at < ?3 ORDER BY started_at, id",
            params![job, from, to],
        )
    }

    /// Restore-test rows selected by `filter` (a `WHERE … ORDER BY … [LIMIT …]` tail),
    /// their check lists parsed (a damaged one is an error naming its row).
    pub(super) fn query_restore_tests(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<RestoreTestRow>> {
        let sql = format!(
            "SELECT run_id, job, kind, snapshot_id, passed, started_at, finished_at, rto_ms, rpo_seconds,
                    files_listed, files_hashed, bytes_hashed, not_compared, checks
             FROM restore_tests {filter}"
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(args, |r| {
                Ok((
                    RestoreTestRow {
                        run_id: r.get(0)?,
                        job: r.get(1)?,
                        kind: r.get(2)?,
                        snapshot_id: r.get(3)?,
                        passed: r.get(4)?,
                        started_at: r.get(5)?,
                        finished_at: r.get(6)?,
                        rto_ms: r.get(7)?,
                        rpo_seconds: r.get(8)?,
                        files_listed: r.get(9)?,
                        files_hashed: r.get(10)?,
                        bytes_hashed: r.get(11)?,
                        not_compared: r.get(12)?,
                        checks: Vec::new(),
                    },
                    r.get::<_, String>(13)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let rows: Vec<(RestoreTestRow, String)> = rows
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(mut t, raw)| {
                let row = format!("{} (run {})", t.job, t.run_id);
                t.checks = self.parse_detail("restore_tests", &row, "checks", &raw)?;
                Ok(t)
            })
            .collect()
    }

    pub fn insert_encryption_check(&self, e: &EncryptionRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO encryption_checks (run_id, repository, at, passed, checks) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.run_id, e.repository, e.at, e.passed, detail::to_json(&e.checks)],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Encryption proofs in `[from, to)`, oldest first.
    pub fn encryption_checks(&self, from: i64, to: i64) -> Result<Vec<EncryptionRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT run_id, repository, at, passed, checks FROM encryption_checks
                 WHERE at >= ?1 AND at < ?2 ORDER BY at, id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(params![from, to], |r| {
                Ok((
                    EncryptionRow {
                        run_id: r.get(0)?,
                        repository: r.get(1)?,
                        at: r.get(2)?,
                        passed: r.get(3)?,
                        checks: Vec::new(),
                    },
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let rows: Vec<(EncryptionRow, String)> = rows
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(mut e, raw)| {
                let row = format!("run {}", e.run_id);
                e.checks = self.parse_detail("encryption_checks", &row, "checks", &raw)?;
                Ok(e)
            })
            .collect()
    }

    pub fn insert_check_run(&self, c: &CheckRunRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO check_runs (run_id, repository, subset, k, n, rotating, at, passed, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    c.run_id,
                    c.repository,
                    c.subset,
                    c.k,
                    c.n,
                    c.rotating,
                    c.at,
                    c.passed,
                    c.error
                ],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// The K of the last rotating check with this N (to pick the next one).
    pub fn last_rotating_k(&self, repository: &str, n: i64) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT k FROM check_runs WHERE repository = ?1 AND rotating = 1 AND n = ?2
                 ORDER BY at DESC, id DESC LIMIT 1",
                params![repository, n],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sql(e))
    }

    /// Checks of a repository in `[from, to)`, oldest first.
    pub fn check_runs(&self, repository: &str, from: i64, to: i64) -> Result<Vec<CheckRunRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT run_id, repository, subset, k, n, rotating, at, passed, error FROM check_runs
                 WHERE repository = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(params![repository, from, to], check_row)
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The repository is flagged when its most recent check failed: the flag stays
    /// until a check passes. Returns that failed check.
    pub fn repository_flag(&self, repository: &str) -> Result<Option<CheckRunRow>> {
        let last = self
            .conn
            .query_row(
                "SELECT run_id, repository, subset, k, n, rotating, at, passed, error FROM check_runs
                 WHERE repository = ?1 ORDER BY at DESC, id DESC LIMIT 1",
                [repository],
                check_row,
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(last.filter(|c| !c.passed))
    }

    /// Backup steps and snapshots of a job in `[from, to)`.
    pub fn backup_activity(&self, job: &str, from: i64, to: i64) -> Result<BackupActivity> {
        let (runs, failed): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(status NOT IN ('success', 'running')), 0) FROM steps
                 WHERE job = ?1 AND kind = 'backup' AND started_at >= ?2 AND started_at < ?3",
                params![job, from, to],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))?;
        let (snapshots, bytes_added): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(data_added), 0) FROM snapshots
                 WHERE job = ?1 AND time >= ?2 AND time < ?3",
                params![job, from, to],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))?;
        let latest_bytes: Option<i64> = self
            .conn
            .query_row(
                "SELECT bytes FROM snapshots WHERE job = ?1 AND time < ?2 AND state = 'good'
                 ORDER BY time DESC LIMIT 1",
                params![job, to],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sql(e))?;
        Ok(BackupActivity {
            runs,
            failed,
            snapshots,
            bytes_added,
            latest_bytes,
        })
    }

    /// Record an issued report's digest (the tamper-evident chain).
    pub fn insert_report(
        &self,
        month: &str,
        format: &str,
        sha256: &str,
        previous: Option<&str>,
        at: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO reports (month, format, sha256, previous_sha256, issued_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![month, format, sha256, previous, at],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// The digest of the last report issued for a month in a format.
    pub fn report_digest(&self, month: &str, format: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT sha256 FROM reports WHERE month = ?1 AND format = ?2 ORDER BY issued_at DESC, id DESC LIMIT 1",
                params![month, format],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// A consistent copy of the whole catalog in a new file (`VACUUM INTO`), safe while
    /// other processes write.
    pub fn copy_to(&self, dest: &Path) -> Result<()> {
        self.conn
            .execute("VACUUM INTO ?1", [dest.display().to_string()])
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }
}

fn check_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckRunRow> {
    Ok(CheckRunRow {
        run_id: r.get(0)?,
        repository: r.get(1)?,
        subset: r.get(2)?,
        k: r.get(3)?,
        n: r.get(4)?,
        rotating: r.get(5)?,
        at: r.get(6)?,
        passed: r.get(7)?,
        error: r.get(8)?,
    })
}
