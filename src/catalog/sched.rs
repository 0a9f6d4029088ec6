//! Catalog queries for the scheduler: when a command last ran, closing the daemon's own
//! runs on shutdown, recording skipped tasks, and the figures the metrics file shows.

use super::{Catalog, Result};
use crate::domain::RunStatus;
use rusqlite::{OptionalExtension, params};

/// Per-job figures for the metrics textfile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMetrics {
    /// Finish time of the last successful backup step (ms).
    pub last_success_ms: Option<i64>,
    /// The last backup step: status, duration, and the bytes of its snapshot.
    pub last_status: Option<RunStatus>,
    pub last_duration_ms: Option<i64>,
    pub last_bytes: Option<i64>,
    /// Finish time of the last successful restore test (ms), if that feature recorded one.
    pub last_verified_restore_ms: Option<i64>,
}

impl Catalog {
    /// When a run of `command` last started (ms), not counting interrupted runs: a run
    /// cut short by a shutdown did not do its work, so a catch-up may redo it.
    pub fn last_run_started(&self, command: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT max(started_at) FROM runs WHERE command = ?1 AND status != 'interrupted'",
                [command],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// Close every run this process still has open as `interrupted` (daemon shutdown).
    /// Returns the ids closed.
    pub fn interrupt_own_runs(&self, pid: u32, why: &str, now: i64) -> Result<Vec<String>> {
        let ids: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM runs WHERE status = 'running' AND pid = ?1")
                .map_err(|e| self.sql(e))?;
            let rows = st.query_map([pid], |r| r.get(0)).map_err(|e| self.sql(e))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(|e| self.sql(e))?
        };
        for id in &ids {
            self.interrupt_run(id, why, now)?;
        }
        Ok(ids)
    }

    /// What the metrics textfile shows for one job.
    pub fn job_metrics(&self, job: &str) -> Result<JobMetrics> {
        let last: Option<(String, i64, Option<i64>, String)> = self
            .conn
            .query_row(
                "SELECT status, started_at, finished_at, run_id FROM steps
                 WHERE job = ?1 AND kind = 'backup' ORDER BY started_at DESC, id DESC LIMIT 1",
                [job],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let mut m = JobMetrics {
            last_success_ms: self.last_success(job, "backup")?,
            last_verified_restore_ms: self.last_success(job, "restore-test")?,
            ..Default::default()
        };
        if let Some((status, started, finished, run_id)) = last {
            m.last_status = Some(RunStatus::parse(&status));
            m.last_duration_ms = finished.map(|f| (f - started).max(0));
            m.last_bytes = self
                .conn
                .query_row(
                    "SELECT bytes FROM snapshots WHERE job = ?1 AND run_id = ?2 AND state = 'good'
                     ORDER BY time DESC LIMIT 1",
                    params![job, run_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.sql(e))?
                .flatten();
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_run_ignores_interrupted_and_own_runs_close() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.db")).unwrap();
        assert_eq!(c.last_run_started("backup").unwrap(), None);
        c.start_run("r1", "backup", "daemon", 100).unwrap();
        c.finish_run("r1", RunStatus::Success, None, 150).unwrap();
        c.start_run("r2", "backup", "daemon", 200).unwrap();
        c.start_step("r2", Some("a"), "backup", 200).unwrap();
        let closed = c
            .interrupt_own_runs(std::process::id(), "stopped", 300)
            .unwrap();
        assert_eq!(closed, vec!["r2".to_string()]);
        assert_eq!(c.run("r2").unwrap().unwrap().status, RunStatus::Interrupted);
        assert_eq!(
            c.last_step("a", "backup").unwrap().unwrap().status,
            RunStatus::Interrupted
        );
        assert_eq!(c.last_run_started("backup").unwrap(), Some(100));
        let m = c.job_metrics("a").unwrap();
        assert_eq!(m.last_status, Some(RunStatus::Interrupted));
        assert_eq!(m.last_duration_ms, Some(100));
    }
}
