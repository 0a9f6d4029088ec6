//! The SQLite catalog: the only module that holds SQL.
//!
//! One file, WAL mode, a busy timeout so a reader never fails on a writer. Times are
//! integer milliseconds since the epoch (UTC). What the catalog records can always be
//! rebuilt from the repository's tags (`omk:job=`, `omk:run=`).

mod copies;
mod detail;
mod journal;
mod sched;
mod schema;
mod verify;
mod web;

pub use copies::{CopyRow, CopyState};
pub use verify::{BackupActivity, CheckRunRow, EncryptionRow, RestoreTestRow};

pub use detail::{Check, StepDetail};
pub use journal::QuiesceRow;
pub use sched::JobMetrics;
pub use web::{HistoryPoint, JobStepRow, ReportRow, RunListRow};

use crate::domain::{RunStatus, SnapshotState};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// Catalog failures: which file and what SQLite said.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "cannot open the catalog {path}: {source}; check catalog.path and that its folder exists and is writable"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the catalog {path} was written by a newer omk-backup (schema {found}, this one knows {known}); upgrade omk-backup"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A JSON detail column does not parse as its type (damaged, or written by
    /// another tool): named by table, row and column, never read as "none recorded".
    #[error(
        "catalog {path}: {table} row {row}: the {column} column is not what omk-backup wrote ({detail}); run `omk-backup catalog rebuild` or remove the row"
    )]
    BadDetail {
        path: PathBuf,
        table: &'static str,
        row: String,
        column: &'static str,
        detail: String,
    },
    #[error("catalog {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

pub type Result<T> = std::result::Result<T, CatalogError>;

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

/// A run as the catalog holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub command: String,
    pub status: RunStatus,
    pub pid: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// A snapshot as the catalog holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub snapshot_id: String,
    pub job: String,
    pub run_id: Option<String>,
    pub time: i64,
    pub bytes: Option<i64>,
    pub files: Option<i64>,
    pub data_added: Option<i64>,
    pub duration_ms: Option<i64>,
    pub state: SnapshotState,
    pub note: Option<String>,
}

/// The latest backup step of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub run_id: String,
    pub job: Option<String>,
    pub kind: String,
    pub status: RunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// A dump's digest, recorded while it streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpRow {
    pub snapshot_id: String,
    pub job: String,
    pub engine: String,
    pub filename: String,
    pub sha256: String,
    pub bytes: i64,
    pub fingerprint: Option<crate::fingerprint::Fingerprint>,
}

impl Catalog {
    /// Open (creating if needed) and migrate.
    pub fn open(path: &Path) -> Result<Catalog> {
        let open_err = |source| CatalogError::Open {
            path: path.to_path_buf(),
            source,
        };
        // Created owner-only before SQLite opens it: its WAL and SHM files take the
        // database file's permissions. An older, world-readable catalog is tightened.
        let io_err = |e: std::io::Error| CatalogError::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        };
        crate::private::ensure(path, crate::private::OWNER_ONLY).map_err(io_err)?;
        for side in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(side);
            crate::private::strip_world(Path::new(&p)).map_err(io_err)?;
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let mut cat = Catalog {
            conn,
            path: path.to_path_buf(),
        };
        cat.migrate()?;
        Ok(cat)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let known = schema::MIGRATIONS.len() as i64;
        let found: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if found > known {
            return Err(CatalogError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        if found == known {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(|e| CatalogError::Sql {
            path: self.path.clone(),
            source: e,
        })?;
        for (i, m) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(m).map_err(|e| CatalogError::Sql {
                path: self.path.clone(),
                source: e,
            })?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| CatalogError::Sql {
                    path: self.path.clone(),
                    source: e,
                })?;
        }
        tx.commit().map_err(|e| CatalogError::Sql {
            path: self.path.clone(),
            source: e,
        })
    }

    // ---- runs and steps ----

    pub fn start_run(&self, id: &str, command: &str, trigger: &str, now: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs (id, command, trigger, status, pid, started_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                params![id, command, trigger, std::process::id(), now],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    pub fn finish_run(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, status.as_str(), error, now],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Insert a finished run in one go (catalog rebuild).
    pub fn insert_run_if_missing(
        &self,
        id: &str,
        command: &str,
        trigger: &str,
        status: RunStatus,
        at: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO runs (id, command, trigger, status, started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id, command, trigger, status.as_str(), at],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    pub fn running_runs(&self) -> Result<Vec<RunRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, command, status, pid, started_at, finished_at, error FROM runs WHERE status = 'running'")
            .map_err(|e| self.sql(e))?;
        let rows = st.query_map([], run_row).map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        self.conn
            .query_row(
                "SELECT id, command, status, pid, started_at, finished_at, error FROM runs WHERE id = ?1",
                [id],
                run_row,
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    pub fn start_step(&self, run_id: &str, job: Option<&str>, kind: &str, now: i64) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO steps (run_id, job, kind, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![run_id, job, kind, now],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_step(
        &self,
        id: i64,
        status: RunStatus,
        detail: Option<&StepDetail>,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let detail = detail.map(StepDetail::to_json);
        self.conn
            .execute(
                "UPDATE steps SET status = ?2, detail = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
                params![id, status.as_str(), detail, error, now],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Mark a dead run and its open steps interrupted.
    pub fn interrupt_run(&self, id: &str, why: &str, now: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE steps SET status = 'interrupted', error = ?2, finished_at = ?3 WHERE run_id = ?1 AND status = 'running'",
                params![id, why, now],
            )
            .map_err(|e| self.sql(e))?;
        self.finish_run(id, RunStatus::Interrupted, Some(why), now)
    }

    /// The most recent step of a kind for a job.
    pub fn last_step(&self, job: &str, kind: &str) -> Result<Option<StepRow>> {
        self.conn
            .query_row(
                "SELECT run_id, job, kind, status, started_at, finished_at, error FROM steps
                 WHERE job = ?1 AND kind = ?2 ORDER BY started_at DESC, id DESC LIMIT 1",
                params![job, kind],
                step_row,
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// The last successful step of a kind for a job.
    pub fn last_success(&self, job: &str, kind: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT max(finished_at) FROM steps WHERE job = ?1 AND kind = ?2 AND status = 'success'",
                params![job, kind],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    // ---- snapshots ----

    pub fn insert_snapshot(&self, s: &SnapshotRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO snapshots (snapshot_id, job, run_id, time, bytes, files, data_added, duration_ms, state, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(snapshot_id) DO UPDATE SET
                   job = excluded.job, run_id = excluded.run_id, time = excluded.time,
                   bytes = coalesce(excluded.bytes, snapshots.bytes),
                   files = coalesce(excluded.files, snapshots.files),
                   data_added = coalesce(excluded.data_added, snapshots.data_added),
                   duration_ms = coalesce(excluded.duration_ms, snapshots.duration_ms),
                   state = excluded.state, note = excluded.note, forgotten_at = NULL",
                params![
                    s.snapshot_id,
                    s.job,
                    s.run_id,
                    s.time,
                    s.bytes,
                    s.files,
                    s.data_added,
                    s.duration_ms,
                    s.state.as_str(),
                    s.note
                ],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    pub fn has_snapshot(&self, id: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM snapshots WHERE snapshot_id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.sql(e))
    }

    pub fn mark_forgotten(&self, ids: &[String], note: &str, now: i64) -> Result<()> {
        let mut st = self
            .conn
            .prepare("UPDATE snapshots SET state = 'forgotten', note = ?2, forgotten_at = ?3 WHERE snapshot_id = ?1")
            .map_err(|e| self.sql(e))?;
        for id in ids {
            st.execute(params![id, note, now])
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// Snapshots still in the repository (not forgotten), oldest first.
    pub fn snapshots(&self, job: Option<&str>) -> Result<Vec<SnapshotRow>> {
        const COLS: &str = "SELECT snapshot_id, job, run_id, time, bytes, files, data_added, duration_ms, state, note FROM snapshots";
        let rows = match job {
            Some(j) => {
                let sql = format!(
                    "{COLS} WHERE job = ?1 AND state != 'forgotten' ORDER BY time, snapshot_id"
                );
                let mut st = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
                st.query_map([j], snapshot_row)
                    .and_then(|r| r.collect::<std::result::Result<Vec<_>, _>>())
            }
            None => {
                let sql = format!("{COLS} WHERE state != 'forgotten' ORDER BY time, snapshot_id");
                let mut st = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
                st.query_map([], snapshot_row)
                    .and_then(|r| r.collect::<std::result::Result<Vec<_>, _>>())
            }
        };
        rows.map_err(|e| self.sql(e))
    }

    /// How many snapshots of a job are still in the repository.
    pub fn count_live(&self, job: &str) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM snapshots WHERE job = ?1 AND state != 'forgotten'",
                [job],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// The newest good snapshot of a job.
    pub fn latest_good(&self, job: &str) -> Result<Option<SnapshotRow>> {
        self.conn
            .query_row(
                "SELECT snapshot_id, job, run_id, time, bytes, files, data_added, duration_ms, state, note
                 FROM snapshots WHERE job = ?1 AND state = 'good' ORDER BY time DESC LIMIT 1",
                [job],
                snapshot_row,
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// A snapshot by full id or unique prefix.
    pub fn find_snapshot(&self, id: &str) -> Result<Vec<SnapshotRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT snapshot_id, job, run_id, time, bytes, files, data_added, duration_ms, state, note
                 FROM snapshots WHERE snapshot_id >= ?1 AND snapshot_id < ?1 || 'g' LIMIT 2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st.query_map([id], snapshot_row).map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    /// Ids of all snapshots the catalog believes are in the repository.
    pub fn live_snapshot_ids(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT snapshot_id FROM snapshots WHERE state != 'forgotten'")
            .map_err(|e| self.sql(e))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sql(e))
    }

    // ---- dumps ----

    pub fn insert_dump(&self, d: &DumpRow) -> Result<()> {
        let fingerprint = d.fingerprint.as_ref().map(detail::to_json);
        self.conn
            .execute(
                "INSERT OR REPLACE INTO dumps (snapshot_id, job, engine, filename, sha256, bytes, fingerprint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![d.snapshot_id, d.job, d.engine, d.filename, d.sha256, d.bytes, fingerprint],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    pub fn dump(&self, snapshot_id: &str) -> Result<Option<DumpRow>> {
        let row: Option<(DumpRow, Option<String>)> = self
            .conn
            .query_row(
                "SELECT snapshot_id, job, engine, filename, sha256, bytes, fingerprint FROM dumps WHERE snapshot_id = ?1",
                [snapshot_id],
                |r| {
                    Ok((DumpRow {
                        snapshot_id: r.get(0)?,
                        job: r.get(1)?,
                        engine: r.get(2)?,
                        filename: r.get(3)?,
                        sha256: r.get(4)?,
                        bytes: r.get(5)?,
                        fingerprint: None,
                    }, r.get(6)?))
                },
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((mut d, raw)) = row else {
            return Ok(None);
        };
        if let Some(text) = raw {
            d.fingerprint =
                Some(self.parse_detail("dumps", &d.snapshot_id, "fingerprint", &text)?);
        }
        Ok(Some(d))
    }

    /// Run a closure in one transaction (bulk writes: rebuild, benchmarks).
    pub fn in_transaction<T>(&mut self, f: impl FnOnce(&Catalog) -> Result<T>) -> Result<T> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.sql(e))?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(|e| self.sql(e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        command: r.get(1)?,
        status: RunStatus::parse(&r.get::<_, String>(2)?),
        pid: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        error: r.get(6)?,
    })
}

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        run_id: r.get(0)?,
        job: r.get(1)?,
        kind: r.get(2)?,
        status: RunStatus::parse(&r.get::<_, String>(3)?),
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        error: r.get(6)?,
    })
}

pub(crate) fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRow> {
    Ok(SnapshotRow {
        snapshot_id: r.get(0)?,
        job: r.get(1)?,
        run_id: r.get(2)?,
        time: r.get(3)?,
        bytes: r.get(4)?,
        files: r.get(5)?,
        data_added: r.get(6)?,
        duration_ms: r.get(7)?,
        state: SnapshotState::parse(&r.get::<_, String>(8)?),
        note: r.get(9)?,
    })
}

#[cfg(test)]
mod tests;
