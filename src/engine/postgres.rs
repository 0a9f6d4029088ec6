//! PostgreSQL: `pg_dump` (one database) or `pg_dumpall` (the cluster), loaded with
//! `psql -v ON_ERROR_STOP=1`. Clients read a password from `PGPASSWORD`; without one they
//! use the container's local authentication.

use super::{Engine, Profile, Target, dump_wrapper, sh};
use crate::config::{Job, Probe};
use crate::docker::ExecSpec;
use crate::domain::JobKind;

pub struct Postgres;

/// The scratch superuser of a cluster restore: a name no source cluster is likely to
/// have, so a `pg_dumpall` dump's `CREATE ROLE postgres` succeeds with errors fatal.
const SCRATCH_SUPERUSER: &str = "omk_restore";

/// `sed` program turning pg_dumpall's `CREATE ROLE x;` into a statement that tolerates
/// an existing role (only `duplicate_object` is caught; every other error stays fatal).
const ROLE_SED: &str = "s/^CREATE ROLE \\(.*\\);$/DO $omk$ BEGIN CREATE ROLE \\1; EXCEPTION WHEN duplicate_object THEN NULL; END $omk$;/";

/// Rows per user table of the current database, as `schema.table|rows` (quoted as
/// `quote_ident` does, like the fingerprint's keys).
const COUNTS: &str = "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";

/// The databases a cluster count visits.
const DATABASES: &str =
    "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template0' ORDER BY 1";

fn user(job: &Job) -> String {
    job.user.clone().unwrap_or_else(|| "postgres".into())
}

fn database(job: &Job) -> String {
    job.database.clone().unwrap_or_else(|| "postgres".into())
}

/// `psql` in unaligned tuples-only mode with errors fatal.
fn psql(user: &str, db: &str, sql: &str, separator: bool) -> Vec<String> {
    let mut v: Vec<String> = vec!["psql".into(), "-X".into(), "-At".into()];
    if separator {
        v.extend(["-F".into(), "|".into()]);
    }
    v.extend([
        "-v".into(),
        "ON_ERROR_STOP=1".into(),
        "--username".into(),
        user.into(),
        "--no-password".into(),
        "--dbname".into(),
        db.into(),
        "-c".into(),
        sql.into(),
    ]);
    v
}

impl Postgres {
    /// The role a scratch restore runs as. A single-database dump (pg_dump) sets owners
    /// to the dumping role: restore as that role. A cluster dump (pg_dumpall) creates
    /// its roles itself.
    fn scratch_superuser(job: &Job) -> String {
        if job.database.is_some() {
            user(job)
        } else {
            SCRATCH_SUPERUSER.into()
        }
    }
}

impl Engine for Postgres {
    fn kind(&self) -> JobKind {
        JobKind::Postgres
    }

    fn client(&self) -> &'static str {
        "psql"
    }

    fn password_var(&self) -> Option<&'static str> {
        Some("PGPASSWORD")
    }

    fn dump(&self, job: &Job, env: Vec<String>) -> anyhow::Result<ExecSpec> {
        let mut args: Vec<String> = match &job.database {
            Some(_) => vec!["pg_dump".into()],
            None => vec!["pg_dumpall".into()],
        };
        args.extend(["--username".into(), user(job), "--no-password".into()]);
        if let Some(db) = &job.database {
            args.extend(["--dbname".into(), db.clone()]);
        }
        Ok(ExecSpec {
            cmd: dump_wrapper("exec \"$@\"", args),
            env,
            user: None,
        })
    }

    /// pg_dumpall writes pg_dump's marker after *each* database, so a cluster dump cut
    /// between two databases ends with one: only the cluster marker proves it whole.
    fn end_marker(&self, job: &Job) -> &'static str {
        match job.database {
            Some(_) => "-- PostgreSQL database dump complete",
            None => "-- PostgreSQL database cluster dump complete",
        }
    }

    fn ends_complete(&self, job: &Job, tail: &[u8]) -> bool {
        let text = String::from_utf8_lossy(tail);
        let last = text
            .lines()
            .rev()
            .map(str::trim)
            // pg_dump ≥ 15.14/16.10/17.6 ends with `\unrestrict KEY` after the marker.
            .find(|l| !l.is_empty() && *l != "--" && !l.starts_with("\\unrestrict "))
            .unwrap_or("");
        last == self.end_marker(job)
    }

    fn scratch(&self, job: &Job, password: &str) -> Profile {
        Profile {
            env: vec![
                format!("POSTGRES_PASSWORD={password}"),
                format!("POSTGRES_USER={}", Self::scratch_superuser(job)),
                format!("POSTGRES_DB={}", database(job)),
            ],
            // The entrypoint chowns the (tmpfs) data folder and its socket folder to
            // `postgres`, then drops to that user with setpriv (docs/restore-tests.md).
            caps: vec!["CHOWN", "SETUID", "SETGID"],
            entrypoint: None,
            cmd: None,
            // TCP on loopback: the entrypoint's temporary init server listens on the
            // unix socket only, so this is the real server.
            ready: ExecSpec {
                cmd: vec![
                    "pg_isready".into(),
                    "-q".into(),
                    "-h".into(),
                    "127.0.0.1".into(),
                ],
                env: Vec::new(),
                user: None,
            },
        }
    }

    fn scratch_target(&self, job: &Job) -> Target {
        Target {
            db_user: Self::scratch_superuser(job),
            restored_file: None,
            env: Vec::new(),
            exec_user: None,
            live: false,
        }
    }

    fn live_target(&self, job: &Job, env: Vec<String>) -> Target {
        Target {
            db_user: user(job),
            restored_file: None,
            env,
            exec_user: None,
            live: true,
        }
    }

    fn load(&self, job: &Job, path: &str, target: &Target) -> ExecSpec {
        let db = database(job);
        if target.live && job.database.is_none() {
            // A live cluster already has roles: tolerate `CREATE ROLE` of an existing one.
            return target.exec(sh(
                "sed -e \"$2\" \"$1\" | psql -X -q -v ON_ERROR_STOP=1 --username \"$3\" --no-password --dbname \"$4\"",
                &[path, ROLE_SED, &target.db_user, &db],
            ));
        }
        target.exec(vec![
            "psql".into(),
            "-X".into(),
            "-q".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "--username".into(),
            target.db_user.clone(),
            "--no-password".into(),
            "--dbname".into(),
            db,
            "-f".into(),
            path.into(),
        ])
    }

    fn count_rows(&self, job: &Job, target: &Target) -> ExecSpec {
        if let Some(db) = &job.database {
            return target.exec(psql(&target.db_user, db, COUNTS, true));
        }
        // The cluster: every database, keys prefixed with its name.
        let per_db = COUNTS.replacen(
            "SELECT quote_ident",
            "SELECT current_database() || '.' || quote_ident",
            1,
        );
        target.exec(sh(
            "dbs=$(psql -X -At -v ON_ERROR_STOP=1 --username \"$1\" --no-password --dbname postgres -c \"$2\") || exit $?; printf '%s\\n' \"$dbs\" | while IFS= read -r db; do [ -n \"$db\" ] || continue; psql -X -At -F '|' -v ON_ERROR_STOP=1 --username \"$1\" --no-password --dbname \"$db\" -c \"$3\" || exit $?; done",
            &[&target.db_user, DATABASES, &per_db],
        ))
    }

    fn probe(&self, job: &Job, probe: &Probe, target: &Target) -> ExecSpec {
        let db = probe
            .database
            .clone()
            .or_else(|| job.database.clone())
            .unwrap_or_else(|| "postgres".into());
        target.exec(psql(&target.db_user, &db, &probe.sql, false))
    }
}
