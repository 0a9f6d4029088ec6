//! Database jobs: dump inside the container through `docker exec` (via the socket
//! proxy), stream stdout straight into `restic backup --stdin`, and compute the SHA-256,
//! byte count and content fingerprint on the way. No plaintext touches the disk.
//!
//! Invariants: a dump counts only when the exec exited 0, produced bytes, and the stream
//! ended cleanly; otherwise restic is aborted before it can write a snapshot (or the
//! snapshot it wrote is forgotten by the caller), and the dump process in the container
//! is stopped. Secrets reach the dump through exec `Env` or the container's own
//! environment (referenced by variable name), never through argv.

use crate::config::Job;
use crate::docker::{ContainerInfo, Docker, ExecSpec, PID_MARKER};
use crate::domain::JobKind;
use crate::fingerprint::Fingerprint;
use crate::restic::{BackupDone, Restic, ResticError};
use crate::secret::read_password_file;
use anyhow::{Context, anyhow};
use std::time::Duration;

mod pump;

/// Longest silence we accept from a dump (haproxy proxies cut at 10 min anyway).
const IDLE: Duration = Duration::from_secs(15 * 60);
/// Longest a write into restic may block (restic stuck, not dead).
const WRITE_DEADLINE: Duration = Duration::from_secs(5 * 60);
/// How long the exec may take to report its exit code after its output ended.
const EXIT_WAIT: Duration = Duration::from_secs(120);

/// What a finished, verified dump produced.
#[derive(Debug)]
pub struct DumpDone {
    pub backup: BackupDone,
    pub filename: String,
    pub sha256: String,
    pub bytes: u64,
    pub fingerprint: Fingerprint,
}

/// A dump that failed; `snapshot_id` is set when restic wrote a snapshot anyway (it must
/// be discarded).
#[derive(Debug)]
pub struct DumpFailed {
    pub error: anyhow::Error,
    pub snapshot_id: Option<String>,
}

impl<E: Into<anyhow::Error>> From<E> for DumpFailed {
    fn from(e: E) -> Self {
        DumpFailed {
            error: e.into(),
            snapshot_id: None,
        }
    }
}

/// The file name inside the snapshot: `<job>.sql` at the root. (restic 0.18.0 fails a
/// `--stdin-filename` with a folder, "unable to save snapshot: open /job: no such file
/// or directory", while 0.14 accepts it: keep it flat so both work.)
pub fn filename(job: &Job) -> String {
    format!("{}.sql", job.name)
}

/// The command that dumps `job` in `container` (argv holds no secret).
pub fn dump_spec(job: &Job, container: &ContainerInfo) -> anyhow::Result<ExecSpec> {
    let pid_line = format!("printf '{PID_MARKER}%s\\n' $$ >&2");
    let mut env = Vec::new();
    let password = match &job.password_file {
        Some(p) => Some(
            read_password_file(p)
                .with_context(|| format!("{}: password_file {}", job.name, p.display()))?,
        ),
        None => None,
    };
    let spec = match job.kind {
        JobKind::Postgres => {
            let user = job.user.clone().unwrap_or_else(|| "postgres".into());
            if let Some(pw) = password {
                env.push(format!("PGPASSWORD={}", pw.expose()));
            }
            let mut cmd = vec![
                "sh".into(),
                "-c".into(),
                format!("{pid_line}; exec \"$@\""),
                "omk-dump".into(),
            ];
            match &job.database {
                Some(db) => cmd.extend([
                    "pg_dump".into(),
                    "--username".into(),
                    user,
                    "--no-password".into(),
                    "--dbname".into(),
                    db.clone(),
                ]),
                None => cmd.extend([
                    "pg_dumpall".into(),
                    "--username".into(),
                    user,
                    "--no-password".into(),
                ]),
            }
            ExecSpec {
                cmd,
                env,
                user: None,
            }
        }
        JobKind::Mariadb => {
            let user = job.user.clone().unwrap_or_else(|| "root".into());
            let pw_setup = if let Some(pw) = password {
                env.push(format!("MYSQL_PWD={}", pw.expose()));
                String::new()
            } else if container.has_env("MARIADB_ROOT_PASSWORD") {
                "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\"; export MYSQL_PWD; ".into()
            } else if container.has_env("MYSQL_ROOT_PASSWORD") {
                "MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\"; export MYSQL_PWD; ".into()
            } else {
                String::new()
            };
            let mut cmd = vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "{pw_setup}{pid_line}; if command -v mariadb-dump >/dev/null 2>&1; then exec mariadb-dump \"$@\"; else exec mysqldump \"$@\"; fi"
                ),
                "omk-dump".into(),
                format!("--user={user}"),
                "--single-transaction".into(),
                "--routines".into(),
                "--events".into(),
            ];
            match &job.database {
                Some(db) => cmd.extend(["--databases".into(), db.clone()]),
                None => cmd.push("--all-databases".into()),
            }
            ExecSpec {
                cmd,
                env,
                user: None,
            }
        }
        JobKind::Sqlite => {
            let db = job.database.clone().ok_or_else(|| {
                anyhow!(
                    "{}: sqlite jobs need database = \"/path/in/container.db\"",
                    job.name
                )
            })?;
            ExecSpec {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    format!(
                        "[ -f \"$1\" ] || {{ echo \"no SQLite database file at $1 in the container\" >&2; exit 2; }}; {pid_line}; exec sqlite3 -readonly \"$1\" .dump"
                    ),
                    "omk-dump".into(),
                    db,
                ],
                env,
                user: job.user.clone(),
            }
        }
        JobKind::Files => anyhow::bail!("{}: a files job has no dump", job.name),
    };
    Ok(spec)
}

/// Dump `job` into a new restic snapshot.
pub async fn dump_job(
    docker: &Docker,
    restic: &Restic,
    job: &Job,
    tags: &[String],
) -> Result<DumpDone, DumpFailed> {
    let container_name = job
        .container
        .as_deref()
        .ok_or_else(|| anyhow!("{}: no container configured", job.name))?;
    let container = docker.inspect(container_name).await?;
    if container.status != "running" {
        return Err(anyhow!(
            "{}: container `{container_name}` is {}, not running: a dump needs the database up; start it (`docker start {container_name}`)",
            job.name,
            container.status
        )
        .into());
    }
    let spec = dump_spec(job, &container)?;
    let filename = filename(job);
    let mut backup = restic.backup_stdin(&filename, tags)?;
    let stream = match docker.exec(&container.id, &spec).await {
        Ok(s) => s,
        Err(e) => {
            backup.abort().await;
            return Err(e.into());
        }
    };
    let limits = pump::Limits {
        idle: IDLE,
        write: WRITE_DEADLINE,
    };
    let (stream, stdin, pumped) = pump::pump(stream, backup.stdin.take(), job.kind, limits).await;
    let tail = |s: &crate::docker::ExecStream| {
        let t = s.stderr_tail();
        if t.is_empty() {
            String::new()
        } else {
            format!("; the dump's stderr ends with: {t}")
        }
    };
    let digest = match pumped {
        pump::Pumped::Done(d) => d,
        pump::Pumped::Failed { error: e, bytes } => {
            backup.abort().await;
            stop_dump(docker, &container.id, stream.pid()).await;
            return Err(anyhow!(
                "{}: the dump stream failed after {bytes} bytes: {e:#}{}",
                job.name,
                tail(&stream)
            )
            .into());
        }
    };
    let bytes = digest.bytes;
    let code = match docker.exec_wait(stream.exec_id(), EXIT_WAIT).await {
        Ok(c) => c,
        Err(e) => {
            backup.abort().await;
            stop_dump(docker, &container.id, stream.pid()).await;
            return Err(e.into());
        }
    };
    if code != 0 || bytes == 0 {
        backup.abort().await;
        let why = if code != 0 {
            format!("the dump command exited with code {code}")
        } else {
            "the dump produced no data".to_string()
        };
        return Err(anyhow!(
            "{}: {why} ({bytes} bytes streamed){}",
            job.name,
            tail(&stream)
        )
        .into());
    }
    backup.stdin = stdin;
    let done = match backup.finish().await {
        Ok(d) => d,
        Err(e) => {
            let snapshot_id = match &e {
                ResticError::SourceUnreadable { snapshot_id, .. } => snapshot_id.clone(),
                _ => None,
            };
            return Err(DumpFailed {
                error: e.into(),
                snapshot_id,
            });
        }
    };
    Ok(DumpDone {
        backup: done,
        filename,
        sha256: digest.sha256,
        bytes,
        fingerprint: digest.fingerprint,
    })
}

/// Stop a dump still running in the container (restic died, the stream broke): `kill`
/// its process, whose id the wrapper printed. Best effort: the broken stream usually
/// ends it by SIGPIPE anyway.
async fn stop_dump(docker: &Docker, container: &str, pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let spec = ExecSpec {
        cmd: vec!["kill".into(), "-TERM".into(), pid.to_string()],
        env: Vec::new(),
        user: None,
    };
    if let Err(e) = docker
        .exec_output(container, &spec, Duration::from_secs(30))
        .await
    {
        tracing::warn!("could not stop the dump (pid {pid}) in container {container}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JobOrigin;

    fn job(kind: JobKind, password_file: Option<std::path::PathBuf>) -> Job {
        Job {
            name: "db".into(),
            kind,
            paths: Vec::new(),
            exclude: Vec::new(),
            quiesce: None,
            container: Some("db".into()),
            user: None,
            password_file,
            database: Some("/data/app.db".into()),
            retention: None,
            notify: None,
            origin: JobOrigin::Config { line: 1 },
            probes: Vec::new(),
        }
    }

    fn container(env: &[&str]) -> ContainerInfo {
        ContainerInfo {
            id: "id".into(),
            name: "db".into(),
            status: "running".into(),
            exit_code: None,
            image_id: String::new(),
            image: "x".into(),
            labels: Default::default(),
            env_names: env.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn secrets_never_reach_argv() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("pw");
        std::fs::write(&pf, "s3cr3t-value\n").unwrap();
        for kind in [JobKind::Postgres, JobKind::Mariadb] {
            let spec = dump_spec(&job(kind, Some(pf.clone())), &container(&[])).unwrap();
            assert!(
                !spec.cmd.join(" ").contains("s3cr3t"),
                "{kind}: {:?}",
                spec.cmd
            );
            assert!(
                spec.env.iter().any(|e| e.ends_with("=s3cr3t-value")),
                "{kind}"
            );
            assert!(!format!("{spec:?}").contains("s3cr3t"), "Debug redacts");
        }
        // MariaDB without a password file: the container's own variable, by name.
        let spec = dump_spec(
            &job(JobKind::Mariadb, None),
            &container(&["MARIADB_ROOT_PASSWORD"]),
        )
        .unwrap();
        assert!(spec.cmd[2].contains("MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\""));
        assert!(spec.env.is_empty());
        let spec = dump_spec(
            &job(JobKind::Mariadb, None),
            &container(&["MYSQL_ROOT_PASSWORD"]),
        )
        .unwrap();
        assert!(spec.cmd[2].contains("\"$MYSQL_ROOT_PASSWORD\""));
    }

    #[test]
    fn dump_commands() {
        let pg = dump_spec(&job(JobKind::Postgres, None), &container(&[])).unwrap();
        assert!(pg.cmd.contains(&"pg_dump".to_string()));
        assert!(
            pg.cmd.contains(&"/data/app.db".to_string()),
            "database → pg_dump --dbname"
        );
        let mut all = job(JobKind::Postgres, None);
        all.database = None;
        let pg = dump_spec(&all, &container(&[])).unwrap();
        assert!(pg.cmd.contains(&"pg_dumpall".to_string()));
        let lite = dump_spec(&job(JobKind::Sqlite, None), &container(&[])).unwrap();
        assert!(lite.cmd[2].contains("sqlite3 -readonly"));
        assert_eq!(lite.cmd.last().unwrap(), "/data/app.db");
        assert_eq!(filename(&all), "db.sql");
    }
}
