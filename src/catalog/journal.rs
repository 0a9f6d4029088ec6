//! The quiesce journal: a row per container a files job pauses or stops, committed
//! before the container is touched and closed when it is resumed, so a crashed run's
//! containers can be found and resumed by the next command.

use super::{Catalog, Result};
use rusqlite::{OptionalExtension, params};

/// A quiesce journal entry.
#[derive(Debug, Clone, PartialEq)]
pub struct QuiesceRow {
    pub id: i64,
    pub run_id: String,
    pub job: String,
    pub container: String,
    /// The Docker engine the container runs on (`local` for rows from before engines).
    pub engine: String,
    pub container_id: Option<String>,
    pub mode: String,
    pub state_before: Option<String>,
    pub state: String,
}

impl Catalog {
    /// Write the intent to quiesce `container` on `engine`, committed before the
    /// container is touched.
    pub fn journal_quiesce(
        &self,
        run_id: &str,
        job: &str,
        engine: &str,
        container: &str,
        mode: &str,
        now: i64,
    ) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO quiesce_journal (run_id, job, engine, container, mode, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
                params![run_id, job, engine, container, mode, now],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record what the container was before we touched it.
    pub fn journal_before(&self, id: i64, container_id: &str, state_before: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE quiesce_journal SET container_id = ?2, state_before = ?3 WHERE id = ?1",
                params![id, container_id, state_before],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    pub fn journal_state(
        &self,
        id: i64,
        state: &str,
        window_ms: Option<i64>,
        note: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE quiesce_journal SET state = ?2, window_ms = coalesce(?3, window_ms), note = coalesce(?4, note),
                 resumed_at = CASE WHEN ?2 IN ('resumed', 'untouched') THEN ?5 ELSE resumed_at END WHERE id = ?1",
                params![id, state, window_ms, note, now],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Entries whose container may still be paused or stopped by us.
    pub fn open_quiesces(&self) -> Result<Vec<QuiesceRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, run_id, job, container, container_id, mode, state_before, state, engine FROM quiesce_journal
                 WHERE state IN ('pending', 'quiesced') ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(QuiesceRow {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    job: r.get(2)?,
                    container: r.get(3)?,
                    container_id: r.get(4)?,
                    mode: r.get(5)?,
                    state_before: r.get(6)?,
                    state: r.get(7)?,
                    engine: r.get(8)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The last quiesce window of a job, in milliseconds.
    pub fn last_quiesce_window(&self, job: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT window_ms FROM quiesce_journal WHERE job = ?1 AND window_ms IS NOT NULL ORDER BY id DESC LIMIT 1",
                [job],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sql(e))
    }
}
