//! MariaDB (and MySQL images): `mariadb-dump` (or `mysqldump`) with
//! `--single-transaction`, loaded with the `mariadb` (or `mysql`) client, whose errors
//! are fatal by default. Clients read a password from `MYSQL_PWD`; without a
//! `password_file` the shell takes the container's own `MARIADB_ROOT_PASSWORD` or
//! `MYSQL_ROOT_PASSWORD`, by name (the value never reaches argv).

use super::{Engine, Profile, Target, dump_wrapper, parse_counts, sh};
use crate::config::{Job, Probe};
use crate::docker::ExecSpec;
use crate::domain::JobKind;
use std::collections::BTreeMap;

pub struct Mariadb;

/// Shell prefix for every client command: the password from `MYSQL_PWD` (exec Env), else
/// from the container's root-password variable; `$c` is the client (mariadb or mysql).
const CLIENT: &str = "p=\"${MYSQL_PWD:-${MARIADB_ROOT_PASSWORD:-$MYSQL_ROOT_PASSWORD}}\"; if [ -n \"$p\" ]; then MYSQL_PWD=\"$p\"; export MYSQL_PWD; fi; unset p; if command -v mariadb >/dev/null 2>&1; then c=mariadb; else c=mysql; fi; ";

/// The schemas the server keeps itself.
const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// A query that writes the row-count query: one `SELECT 'db.t', COUNT(*)` per base
/// table outside the system schemas.
const COUNT_GEN: &str = "SET SESSION group_concat_max_len = 16777216; SELECT GROUP_CONCAT(CONCAT('SELECT ', QUOTE(CONCAT(table_schema, '.', table_name)), ', COUNT(*) FROM `', REPLACE(table_schema, '`', '``'), '`.`', REPLACE(table_name, '`', '``'), '`') SEPARATOR ' UNION ALL ') FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";

fn user(job: &Job) -> String {
    job.user.clone().unwrap_or_else(|| "root".into())
}

fn target(db_user: String, env: Vec<String>, live: bool) -> Target {
    Target {
        db_user,
        restored_file: None,
        env,
        exec_user: None,
        live,
    }
}

impl Engine for Mariadb {
    fn kind(&self) -> JobKind {
        JobKind::Mariadb
    }

    fn client(&self) -> &'static str {
        "mariadb"
    }

    fn password_var(&self) -> Option<&'static str> {
        Some("MYSQL_PWD")
    }

    fn dump(&self, job: &Job, env: Vec<String>) -> anyhow::Result<ExecSpec> {
        let mut args = vec![
            format!("--user={}", user(job)),
            "--single-transaction".into(),
            "--routines".into(),
            "--events".into(),
        ];
        match &job.database {
            Some(db) => args.extend(["--databases".into(), db.clone()]),
            None => args.push("--all-databases".into()),
        }
        let script = format!(
            "{CLIENT}if command -v mariadb-dump >/dev/null 2>&1; then exec mariadb-dump \"$@\"; else exec mysqldump \"$@\"; fi"
        );
        Ok(ExecSpec {
            cmd: dump_wrapper(&script, args),
            env,
            user: None,
        })
    }

    fn end_marker(&self, _job: &Job) -> &'static str {
        "-- Dump completed"
    }

    fn ends_complete(&self, _job: &Job, tail: &[u8]) -> bool {
        String::from_utf8_lossy(tail)
            .trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("-- Dump completed"))
    }

    fn scratch(&self, _job: &Job, password: &str) -> Profile {
        Profile {
            env: vec![
                format!("MARIADB_ROOT_PASSWORD={password}"),
                format!("MYSQL_ROOT_PASSWORD={password}"),
            ],
            caps: vec!["CHOWN", "SETUID", "SETGID"],
            entrypoint: None,
            cmd: None,
            // TCP: the temporary init server runs with --skip-networking.
            ready: ExecSpec {
                cmd: sh(
                    &format!(
                        "{CLIENT}if command -v mariadb-admin >/dev/null 2>&1; then a=mariadb-admin; else a=mysqladmin; fi; exec $a --protocol=tcp -h127.0.0.1 -uroot ping"
                    ),
                    &[],
                ),
                env: Vec::new(),
                user: None,
            },
        }
    }

    fn scratch_target(&self, _job: &Job) -> Target {
        target("root".into(), Vec::new(), false)
    }

    fn live_target(&self, job: &Job, env: Vec<String>) -> Target {
        target(user(job), env, true)
    }

    fn load(&self, _job: &Job, path: &str, target: &Target) -> ExecSpec {
        target.exec(sh(
            &format!("{CLIENT}exec $c --user=\"$2\" --binary-mode < \"$1\""),
            &[path, &target.db_user],
        ))
    }

    fn count_rows(&self, _job: &Job, target: &Target) -> ExecSpec {
        target.exec(sh(
            &format!(
                "{CLIENT}q=$($c --user=\"$2\" -N -B -e \"$1\") || exit $?; if [ -z \"$q\" ] || [ \"$q\" = NULL ]; then exit 0; fi; exec $c --user=\"$2\" -N -B -e \"$q\""
            ),
            &[COUNT_GEN, &target.db_user],
        ))
    }

    fn parse_counts(&self, out: &str) -> BTreeMap<String, u64> {
        parse_counts(out, '\t')
    }

    fn probe(&self, job: &Job, probe: &Probe, target: &Target) -> ExecSpec {
        let db = probe
            .database
            .as_deref()
            .or(job.database.as_deref())
            .unwrap_or("");
        target.exec(sh(
            &format!(
                "{CLIENT}if [ -n \"$3\" ]; then exec $c --user=\"$2\" -N -B -D \"$3\" -e \"$1\"; else exec $c --user=\"$2\" -N -B -e \"$1\"; fi"
            ),
            &[&probe.sql, &target.db_user, db],
        ))
    }

    fn system_table(&self, key: &str) -> bool {
        SYSTEM_SCHEMAS.contains(&key.split('.').next().unwrap_or(""))
    }
}
