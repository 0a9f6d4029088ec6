//! SQLite: `sqlite3 -readonly FILE .dump` in the application's container (the job's
//! `database` is the file's path there), loaded with `sqlite3 -bail` into a new file.
//! No credentials: the exec runs as the job's `user` (or the image's).

use super::{Engine, Profile, Target, dump_wrapper, sh};
use crate::config::{Job, Probe};
use crate::docker::ExecSpec;
use crate::domain::JobKind;

pub struct Sqlite;

/// Where a scratch restore writes the database file.
const SCRATCH_FILE: &str = "/tmp/omk-restored.db";

/// A query that writes the row-count query: one `SELECT 't', count(*)` per table that
/// is not SQLite's own.
const COUNT_GEN: &str = "SELECT group_concat('SELECT ' || quote(name) || ', count(*) FROM \"' || replace(name, '\"', '\"\"') || '\"', ' UNION ALL ') FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";

fn file(target: &Target) -> &str {
    target.restored_file.as_deref().unwrap_or(SCRATCH_FILE)
}

impl Engine for Sqlite {
    fn kind(&self) -> JobKind {
        JobKind::Sqlite
    }

    fn client(&self) -> &'static str {
        "sqlite3"
    }

    fn password_var(&self) -> Option<&'static str> {
        None
    }

    fn dump(&self, job: &Job, env: Vec<String>) -> anyhow::Result<ExecSpec> {
        let db = job.database.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: sqlite jobs need database = \"/path/in/container.db\"",
                job.name
            )
        })?;
        Ok(ExecSpec {
            cmd: dump_wrapper(
                "[ -f \"$1\" ] || { echo \"no SQLite database file at $1 in the container\" >&2; exit 2; }; exec sqlite3 -readonly \"$1\" .dump",
                vec![db],
            ),
            env,
            user: job.user.clone(),
        })
    }

    fn end_marker(&self, _job: &Job) -> &'static str {
        "COMMIT;"
    }

    fn ends_complete(&self, _job: &Job, tail: &[u8]) -> bool {
        String::from_utf8_lossy(tail)
            .trim_end()
            .ends_with("COMMIT;")
    }

    /// An app image that holds a SQLite file: do not run the app; keep a shell alive.
    fn scratch(&self, _job: &Job, _password: &str) -> Profile {
        Profile {
            env: Vec::new(),
            caps: Vec::new(),
            entrypoint: Some(sh("trap 'exit 0' TERM INT; while :; do sleep 1; done", &[])),
            cmd: Some(Vec::new()),
            ready: ExecSpec {
                cmd: sh("command -v sqlite3 >/dev/null", &[]),
                env: Vec::new(),
                user: None,
            },
        }
    }

    fn scratch_target(&self, _job: &Job) -> Target {
        Target {
            db_user: String::new(),
            restored_file: Some(SCRATCH_FILE.into()),
            env: Vec::new(),
            exec_user: None,
            live: false,
        }
    }

    /// The app keeps its file open: restore beside it, as `<database>.restored`.
    fn live_target(&self, job: &Job, env: Vec<String>) -> Target {
        Target {
            db_user: String::new(),
            restored_file: Some(
                job.database
                    .as_ref()
                    .map(|d| format!("{d}.restored"))
                    .unwrap_or_else(|| SCRATCH_FILE.into()),
            ),
            env,
            exec_user: job.user.clone(),
            live: true,
        }
    }

    fn load(&self, _job: &Job, path: &str, target: &Target) -> ExecSpec {
        target.exec(sh(
            "rm -f \"$1\"; exec sqlite3 -bail \"$1\" < \"$2\"",
            &[file(target), path],
        ))
    }

    fn count_rows(&self, _job: &Job, target: &Target) -> ExecSpec {
        target.exec(sh(
            "q=$(sqlite3 -bail \"$1\" \"$2\") || exit $?; if [ -z \"$q\" ]; then exit 0; fi; exec sqlite3 -bail -separator '|' \"$1\" \"$q\"",
            &[file(target), COUNT_GEN],
        ))
    }

    fn probe(&self, _job: &Job, probe: &Probe, target: &Target) -> ExecSpec {
        target.exec(vec![
            "sqlite3".into(),
            "-bail".into(),
            file(target).into(),
            probe.sql.clone(),
        ])
    }

    fn system_table(&self, key: &str) -> bool {
        key.starts_with("sqlite_")
    }
}
