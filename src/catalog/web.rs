//! Catalog reads for the dashboard: a job's recent steps with their runs, its recent
//! restore tests, its backup history points, the runs list, the newest encryption proof
//! and the issued reports. All bounded by a limit, all on indexed columns, so a page
//! stays fast with 100,000 runs.

use super::{Catalog, EncryptionRow, RestoreTestRow, Result};
use crate::domain::RunStatus;
use rusqlite::{OptionalExtension, params};

/// One step of a job with the run it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStepRow {
    pub run_id: String,
    pub command: String,
    pub trigger: String,
    pub kind: String,
    pub status: RunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// A run, with its trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct RunListRow {
    pub id: String,
    pub command: String,
    pub trigger: String,
    pub status: RunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// One backup in a job's history chart.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    pub time: i64,
    pub bytes: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// An issued report's record.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub month: String,
    pub format: String,
    pub sha256: String,
    pub issued_at: i64,
}

impl Catalog {
    /// The newest `limit` steps of a job, newest first.
    pub fn job_steps(&self, job: &str, limit: i64) -> Result<Vec<JobStepRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT s.run_id, r.command, r.trigger, s.kind, s.status, s.started_at, s.finished_at, s.error
                 FROM steps s JOIN runs r ON r.id = s.run_id
                 WHERE s.job = ?1 ORDER BY s.started_at DESC, s.id DESC LIMIT ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(params![job, limit], |r| {
                Ok(JobStepRow {
                    run_id: r.get(0)?,
                    command: r.get(1)?,
                    trigger: r.get(2)?,
                    kind: r.get(3)?,
                    status: RunStatus::parse(&r.get::<_, String>(4)?),
                    started_at: r.get(5)?,
                    finished_at: r.get(6)?,
                    error: r.get(7)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The newest `limit` runs, newest first; with a job, only runs with a step for it.
    pub fn recent_runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<RunListRow>> {
        const COLS: &str = "SELECT r.id, r.command, r.trigger, r.status, r.started_at, r.finished_at, r.error FROM runs r";
        let map = |r: &rusqlite::Row<'_>| {
            Ok(RunListRow {
                id: r.get(0)?,
                command: r.get(1)?,
                trigger: r.get(2)?,
                status: RunStatus::parse(&r.get::<_, String>(3)?),
                started_at: r.get(4)?,
                finished_at: r.get(5)?,
                error: r.get(6)?,
            })
        };
        let rows = match job {
            Some(j) => {
                let sql = format!(
                    "{COLS} WHERE r.id IN (SELECT run_id FROM steps WHERE job = ?1
                       ORDER BY started_at DESC LIMIT ?2 * 8)
                     ORDER BY r.started_at DESC LIMIT ?2"
                );
                let mut st = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
                st.query_map(params![j, limit], map)
                    .and_then(|r| r.collect::<std::result::Result<Vec<_>, _>>())
            }
            None => {
                let sql = format!("{COLS} ORDER BY r.started_at DESC LIMIT ?1");
                let mut st = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
                st.query_map(params![limit], map)
                    .and_then(|r| r.collect::<std::result::Result<Vec<_>, _>>())
            }
        };
        rows.map_err(|e| self.sql(e))
    }

    /// The newest `limit` restore tests of a job, newest first.
    pub fn recent_restore_tests(&self, job: &str, limit: i64) -> Result<Vec<RestoreTestRow>> {
        self.query_restore_tests(
            "WHERE job = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2",
            params![job, limit],
        )
    }

    /// The newest `limit` snapshots of a job (forgotten ones too), oldest first.
    pub fn backup_history(&self, job: &str, limit: i64) -> Result<Vec<HistoryPoint>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT time, bytes, duration_ms FROM
                   (SELECT time, bytes, duration_ms FROM snapshots WHERE job = ?1 ORDER BY time DESC LIMIT ?2)
                 ORDER BY time",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(params![job, limit], |r| {
                Ok(HistoryPoint {
                    time: r.get(0)?,
                    bytes: r.get(1)?,
                    duration_ms: r.get(2)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The newest encryption proof of a repository.
    pub fn last_encryption_check(&self, repository: &str) -> Result<Option<EncryptionRow>> {
        self.conn
            .query_row(
                "SELECT run_id, repository, at, passed, checks FROM encryption_checks
                 WHERE repository = ?1 ORDER BY at DESC, id DESC LIMIT 1",
                [repository],
                |r| {
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
                },
            )
            .optional()
            .map_err(|e| self.sql(e))?
            .map(|(mut e, raw)| {
                let row = format!("{} (run {})", e.repository, e.run_id);
                e.checks = self.parse_detail("encryption_checks", &row, "checks", &raw)?;
                Ok(e)
            })
            .transpose()
    }

    /// The newest verified restore's RTO of a job (ms).
    pub fn last_rto(&self, job: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT rto_ms FROM restore_tests WHERE job = ?1 AND passed = 1 AND rto_ms IS NOT NULL
                 ORDER BY started_at DESC, id DESC LIMIT 1",
                [job],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Issued reports, newest first (at most `limit`).
    pub fn reports(&self, limit: i64) -> Result<Vec<ReportRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT month, format, sha256, issued_at FROM reports
                 ORDER BY issued_at DESC, id DESC LIMIT ?1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([limit], |r| {
                Ok(ReportRow {
                    month: r.get(0)?,
                    format: r.get(1)?,
                    sha256: r.get(2)?,
                    issued_at: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }
}
