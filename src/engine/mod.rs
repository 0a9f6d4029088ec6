//! Database engines: the only module that knows Postgres, MariaDB and SQLite.
//!
//! Code map. [`Engine`] is one trait with one file per engine ([`postgres`],
//! [`mariadb`], [`sqlite`]); [`for_kind`] picks one for a job's kind, so a new engine
//! (MongoDB, Redis) is one file plus one line there. An engine knows, for its kind:
//! the dump command and its wrapper ([`Engine::dump`], via [`dump_wrapper`]), which
//! password variable its clients read ([`Engine::password_var`]; [`client_env`] is the
//! one place credentials are put together), the dump tool's end marker
//! ([`Engine::ends_complete`]), the scratch container's profile (environment,
//! capabilities, entrypoint, readiness probe: [`Engine::scratch`]), where a dump is
//! loaded ([`Target`]: a scratch container or a live one), the load command
//! ([`Engine::load`]), the row-count query and its parser ([`Engine::count_rows`],
//! [`Engine::parse_counts`]), which tables the engine keeps itself
//! ([`Engine::system_table`]), probes ([`Engine::probe`]) and the comparison of a
//! restored database with the dump's fingerprint ([`compare`]).
//!
//! It must never talk to Docker or restic: it builds [`ExecSpec`] values and parses
//! outputs; `app` runs them (`app::dump`, `app::verify::deliver`). Still outside it:
//! the streaming row counter that reads each engine's dump text (`crate::fingerprint`).
//!
//! Invariants:
//! - A secret is never in argv: a password from `password_file` travels in the exec's
//!   `Env` under the engine's variable; without one, a client reads the container's own
//!   variable by name inside the shell; `Debug` of a spec, profile or target shows
//!   variable names only (tests `engine::tests::secrets_travel_in_env_never_argv`,
//!   `engine::tests::scratch_profiles_keep_the_password_out_of_argv`).
//! - A dump counts as complete only when it ends with its tool's own marker, a
//!   pg_dumpall dump only with the *cluster* marker (it writes pg_dump's after every
//!   database); cut dumps are found on real tool output (tests
//!   `engine::tests::end_markers_on_real_dumps`, `engine::tests::end_markers_on_cut_dumps`,
//!   samples in `src/engine/testdata/`; end to end
//!   `docker_restore_test::cut_dumps_fail_and_scratch_containers_never_stay`).
//! - Loads run with errors fatal (`ON_ERROR_STOP=1`, `-bail`, the MariaDB client's
//!   default) and a live Postgres load tolerates only an existing role
//!   (`engine::tests::loads_are_fatal_on_error`,
//!   `engine::tests::live_cluster_load_tolerates_only_existing_roles`, which runs the
//!   real `sed` over the real pg_dumpall sample).

pub mod mariadb;
pub mod postgres;
pub mod sqlite;

use crate::config::{Job, Probe};
use crate::docker::{ExecSpec, PID_MARKER, env_names};
use crate::domain::JobKind;
use crate::fingerprint::Fingerprint;
use crate::secret::read_password_file;
use anyhow::Context;
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;

/// What one database engine knows. Implementations build commands and parse outputs;
/// they never run anything.
pub trait Engine: Send + Sync {
    fn kind(&self) -> JobKind;

    /// The client program, as messages name it (`psql exited with 1`).
    fn client(&self) -> &'static str;

    /// The environment variable this engine's clients read a password from, if any.
    fn password_var(&self) -> Option<&'static str>;

    /// The command that dumps `job` to stdout; `env` holds the credentials
    /// ([`client_env`]). Its argv holds no secret.
    fn dump(&self, job: &Job, env: Vec<String>) -> anyhow::Result<ExecSpec>;

    /// The line the dump tool ends a whole dump of `job` with (what a cut dump lacks).
    fn end_marker(&self, job: &Job) -> &'static str;

    /// Whether the dump's last bytes (at least [`TAIL`] of them) end with the marker.
    fn ends_complete(&self, job: &Job, tail: &[u8]) -> bool;

    /// How a scratch container of the source image is started, with `password` (fresh,
    /// random) as its superuser password (in the create body only).
    fn scratch(&self, job: &Job, password: &str) -> Profile;

    /// Where the dump is loaded in a scratch container.
    fn scratch_target(&self, job: &Job) -> Target;

    /// Where the dump is loaded in the live container (`restore --into-container`),
    /// with the credentials `env`.
    fn live_target(&self, job: &Job, env: Vec<String>) -> Target;

    /// The command that loads the dump at `path` with errors fatal.
    fn load(&self, job: &Job, path: &str, target: &Target) -> ExecSpec;

    /// One command printing `table<sep>rows` per table of the restored database, keyed
    /// like the fingerprint.
    fn count_rows(&self, job: &Job, target: &Target) -> ExecSpec;

    /// Parse [`Engine::count_rows`]'s output.
    fn parse_counts(&self, out: &str) -> BTreeMap<String, u64> {
        parse_counts(out, '|')
    }

    /// A probe's query on the restored copy.
    fn probe(&self, job: &Job, probe: &Probe, target: &Target) -> ExecSpec;

    /// Tables the engine maintains itself: not compared.
    fn system_table(&self, _key: &str) -> bool {
        false
    }
}

/// The engine of a database kind; `None` for files jobs.
pub fn for_kind(kind: JobKind) -> Option<&'static dyn Engine> {
    match kind {
        JobKind::Postgres => Some(&postgres::Postgres),
        JobKind::Mariadb => Some(&mariadb::Mariadb),
        JobKind::Sqlite => Some(&sqlite::Sqlite),
        JobKind::Files => None,
    }
}

/// The engine of a database job, or an error naming the job.
pub fn for_job(job: &Job) -> anyhow::Result<&'static dyn Engine> {
    for_kind(job.kind)
        .ok_or_else(|| anyhow::anyhow!("{}: a {} job has no database engine", job.name, job.kind))
}

/// The credentials a job's clients use (dump, load, counts, probes), as exec `Env`
/// entries: the job's `password_file` under the engine's password variable. Without a
/// `password_file` nothing is sent, and the client falls back to what the container
/// holds (MariaDB: its root-password variable, read by name inside the shell; Postgres:
/// its local authentication). This is the one place credentials are put together.
pub fn client_env(engine: &dyn Engine, job: &Job) -> anyhow::Result<Vec<String>> {
    let (Some(path), Some(var)) = (&job.password_file, engine.password_var()) else {
        return Ok(Vec::new());
    };
    let pw = read_password_file(path)
        .with_context(|| format!("{}: password_file {}", job.name, path.display()))?;
    Ok(vec![format!("{var}={}", pw.expose())])
}

/// How a scratch container is started for one engine. `Debug` shows the names of
/// `env`, never its values.
#[derive(Clone)]
pub struct Profile {
    /// `NAME=value` for the create body (holds the scratch password).
    pub env: Vec<String>,
    /// Capabilities kept (all others are dropped).
    pub caps: Vec<&'static str>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Succeeds once the engine accepts connections.
    pub ready: ExecSpec,
}

/// Where a dump is loaded: a scratch container, or (`restore --into-container`) a live
/// one. Secrets travel in `env` (exec `Env`), never argv; `Debug` shows only names.
#[derive(Clone)]
pub struct Target {
    /// Postgres role or MariaDB user the load, the counts and the probes run as.
    pub db_user: String,
    /// SQLite: the database file the load creates (None for server engines).
    pub restored_file: Option<String>,
    pub env: Vec<String>,
    /// The exec's user (None: the image's).
    pub exec_user: Option<String>,
    /// A live database already has roles and users (see [`Engine::load`]).
    pub live: bool,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("env", &env_names(&self.env))
            .field("caps", &self.caps)
            .field("entrypoint", &self.entrypoint)
            .field("cmd", &self.cmd)
            .field("ready", &self.ready)
            .finish()
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("db_user", &self.db_user)
            .field("restored_file", &self.restored_file)
            .field("env", &env_names(&self.env))
            .field("exec_user", &self.exec_user)
            .field("live", &self.live)
            .finish()
    }
}

impl Target {
    /// An exec of `cmd` as this target's user, with its credentials.
    pub fn exec(&self, cmd: Vec<String>) -> ExecSpec {
        ExecSpec {
            cmd,
            env: self.env.clone(),
            user: self.exec_user.clone(),
        }
    }
}

/// `sh -c SCRIPT omk-restore ARGS...`: values reach the script as `$1`, `$2`, ... and
/// are never parsed by the shell.
pub fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".into(),
        script.into(),
        "omk-restore".into(),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// The dump wrapper: prints the shell's pid after [`PID_MARKER`] on stderr (so a dump
/// can be stopped when restic dies), then runs `script` with `args` as `$@`.
pub fn dump_wrapper(script: &str, args: Vec<String>) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".into(),
        format!("printf '{PID_MARKER}%s\\n' $$ >&2; {script}"),
        "omk-dump".into(),
    ];
    v.extend(args);
    v
}

/// Bytes of a dump's end kept to find its end marker.
pub const TAIL: usize = 512;

/// Keep the last [`TAIL`] bytes of a stream, one chunk at a time.
pub fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    tail.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
    if tail.len() > TAIL {
        tail.drain(..tail.len() - TAIL);
    }
}

/// `key<sep>count` lines (the count after the last separator); other lines are skipped.
pub fn parse_counts(text: &str, sep: char) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.rsplit_once(sep)
            && let Ok(n) = v.trim().parse::<u64>()
        {
            out.insert(k.to_string(), n);
        }
    }
    out
}

/// A restored database against the dump's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub passed: bool,
    /// What matched, or the differences (at most 20 named).
    pub detail: String,
}

/// Compare the restored row counts with the fingerprint, leaving out the engine's own
/// tables.
pub fn compare(
    engine: &dyn Engine,
    fp: &Fingerprint,
    restored: &BTreeMap<String, u64>,
) -> Comparison {
    let mut problems = Vec::new();
    let (mut tables, mut rows) = (0, 0u64);
    for (table, &want) in fp.tables.iter().filter(|(k, _)| !engine.system_table(k)) {
        tables += 1;
        rows += want;
        match restored.get(table) {
            None => problems.push(format!("{table}: missing (dumped with {want} rows)")),
            Some(&got) if got != want => {
                problems.push(format!("{table}: {got} rows restored, {want} dumped"))
            }
            _ => {}
        }
    }
    for (table, &got) in restored {
        if got > 0 && !fp.tables.contains_key(table) && !engine.system_table(table) {
            problems.push(format!(
                "{table}: {got} rows restored but not in the dump's fingerprint"
            ));
        }
    }
    if problems.is_empty() {
        return Comparison {
            passed: true,
            detail: format!("{tables} tables, {rows} rows: the same per table as at dump time"),
        };
    }
    let n = problems.len();
    problems.truncate(20);
    Comparison {
        passed: false,
        detail: format!(
            "{n} table(s) differ from the dump's fingerprint: {}",
            problems.join("; ")
        ),
    }
}
