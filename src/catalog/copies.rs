//! Catalog records of copies (3-2-1): for each copy repository (by its `[copies.NAME]`
//! name), which of its snapshots holds which primary snapshot, and which repository a
//! restore test restored from. A primary snapshot is in a copy when it has a row here
//! without `forgotten_at`.

use super::{Catalog, Result, SnapshotRow, snapshot_row};
use rusqlite::{OptionalExtension, params};

/// One primary snapshot held by a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyRow {
    pub snapshot_id: String,
    pub repository: String,
    pub copy_id: String,
    pub copied_at: i64,
}

const SNAP_COLS: &str = "s.snapshot_id, s.job, s.run_id, s.time, s.bytes, s.files, s.data_added, s.duration_ms, s.state, s.note";

impl Catalog {
    /// Record (or refresh) that `copy_id` in `repository` holds primary `snapshot_id`.
    pub fn record_copy(
        &self,
        snapshot_id: &str,
        repository: &str,
        copy_id: &str,
        run_id: &str,
        now: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO copies (snapshot_id, repository, copy_id, run_id, copied_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (snapshot_id, repository) DO UPDATE SET
                   copy_id = excluded.copy_id, forgotten_at = NULL,
                   run_id = CASE WHEN copies.copy_id = excluded.copy_id AND copies.forgotten_at IS NULL
                                 THEN copies.run_id ELSE excluded.run_id END,
                   copied_at = CASE WHEN copies.copy_id = excluded.copy_id AND copies.forgotten_at IS NULL
                                 THEN copies.copied_at ELSE excluded.copied_at END",
                params![snapshot_id, repository, copy_id, run_id, now],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// The copy's snapshots `copy_ids` are gone from it (its retention, or by hand).
    pub fn forget_copies(&self, repository: &str, copy_ids: &[String], now: i64) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "UPDATE copies SET forgotten_at = ?3
                 WHERE repository = ?1 AND copy_id = ?2 AND forgotten_at IS NULL",
            )
            .map_err(|e| self.sql(e))?;
        for id in copy_ids {
            st.execute(params![repository, id, now])
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// The copy's snapshots `copy_ids` vanished from it (not by its retention): forget
    /// that they were there, so the next `copy` puts them back.
    pub fn drop_copies(&self, repository: &str, copy_ids: &[String]) -> Result<()> {
        let mut st = self
            .conn
            .prepare("DELETE FROM copies WHERE repository = ?1 AND copy_id = ?2 AND forgotten_at IS NULL")
            .map_err(|e| self.sql(e))?;
        for id in copy_ids {
            st.execute(params![repository, id])
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// Primary snapshots the copy's retention removed from it (never copied again).
    pub fn retired_in(&self, repository: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT snapshot_id FROM copies WHERE repository = ?1 AND forgotten_at IS NOT NULL",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([repository], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The live copies a repository holds, by primary snapshot.
    pub fn copies_in(&self, repository: &str) -> Result<Vec<CopyRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT snapshot_id, repository, copy_id, copied_at FROM copies
                 WHERE repository = ?1 AND forgotten_at IS NULL ORDER BY copied_at, snapshot_id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([repository], |r| {
                Ok(CopyRow {
                    snapshot_id: r.get(0)?,
                    repository: r.get(1)?,
                    copy_id: r.get(2)?,
                    copied_at: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The good snapshots of a job, oldest first (what `copy` may copy).
    pub fn good_snapshots(&self, job: &str) -> Result<Vec<SnapshotRow>> {
        let sql = format!(
            "SELECT {SNAP_COLS} FROM snapshots s WHERE s.job = ?1 AND s.state = 'good' ORDER BY s.time, s.snapshot_id"
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = st.query_map([job], snapshot_row).map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The newest good snapshot of a job that `repository` holds, with its id there.
    pub fn latest_good_in(
        &self,
        job: &str,
        repository: &str,
    ) -> Result<Option<(SnapshotRow, String)>> {
        let sql = format!(
            "SELECT {SNAP_COLS}, c.copy_id FROM snapshots s
             JOIN copies c ON c.snapshot_id = s.snapshot_id AND c.repository = ?2 AND c.forgotten_at IS NULL
             WHERE s.job = ?1 AND s.state = 'good' ORDER BY s.time DESC LIMIT 1"
        );
        self.conn
            .query_row(&sql, params![job, repository], |r| {
                Ok((snapshot_row(r)?, r.get::<_, String>(10)?))
            })
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// The id in `repository` of a primary snapshot, or of a copy's own id (prefix).
    pub fn copy_lookup(&self, repository: &str, id: &str) -> Result<Vec<CopyRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT snapshot_id, repository, copy_id, copied_at FROM copies
                 WHERE repository = ?1 AND forgotten_at IS NULL
                   AND ((snapshot_id >= ?2 AND snapshot_id < ?2 || 'g') OR (copy_id >= ?2 AND copy_id < ?2 || 'g'))
                 LIMIT 2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(params![repository, id], |r| {
                Ok(CopyRow {
                    snapshot_id: r.get(0)?,
                    repository: r.get(1)?,
                    copy_id: r.get(2)?,
                    copied_at: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// Mark a restore-test run's tests as restored from `repository` (a copy's name).
    pub fn set_test_repository(&self, run_id: &str, repository: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE restore_tests SET repository = ?2 WHERE run_id = ?1",
                params![run_id, repository],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// When a job was last restore-tested from a repository (`None`: the primary), and
    /// when it last passed.
    pub fn last_tests_in(
        &self,
        job: &str,
        repository: Option<&str>,
    ) -> Result<(Option<i64>, Option<i64>)> {
        self.conn
            .query_row(
                "SELECT max(started_at), max(CASE WHEN passed = 1 THEN finished_at END)
                 FROM restore_tests WHERE job = ?1 AND repository IS ?2",
                params![job, repository],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))
    }
}

/// Where a job stands in one copy repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyState {
    /// The newest good snapshot the copy holds: its time and its id in the copy.
    pub newest: Option<(i64, String)>,
    /// The last passing restore test from this copy.
    pub last_verified: Option<i64>,
    /// How long the oldest good snapshot not yet in the copy (newer than the copy's
    /// newest) has waited, in ms; 0 when the copy holds the newest good snapshot.
    pub lag_ms: i64,
}

impl Catalog {
    /// A job's state in the copy `repository` at `now`.
    pub fn copy_state(&self, job: &str, repository: &str, now: i64) -> Result<CopyState> {
        let newest = self
            .latest_good_in(job, repository)?
            .map(|(row, id)| (row.time, id));
        let after = newest.as_ref().map(|n| n.0).unwrap_or(i64::MIN);
        let waiting: Option<i64> = self
            .conn
            .query_row(
                "SELECT min(time) FROM snapshots WHERE job = ?1 AND state = 'good' AND time > ?2",
                params![job, after],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        let (_, last_verified) = self.last_tests_in(job, Some(repository))?;
        Ok(CopyState {
            newest,
            last_verified,
            lag_ms: waiting.map(|t| (now - t).max(0)).unwrap_or(0),
        })
    }
}
