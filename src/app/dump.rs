//! Database jobs: dump inside the container through `docker exec` (via the socket
//! proxy), stream stdout straight into `restic backup --stdin`, and compute the SHA-256,
//! byte count and content fingerprint on the way. No plaintext touches the disk.
//!
//! Invariants: a dump counts only when the exec exited 0, produced bytes, the stream
//! ended cleanly and its last bytes hold the engine's end marker (the same
//! `Engine::ends_complete` restore tests use); otherwise restic is aborted before it can write a snapshot (or the
//! snapshot it wrote is forgotten by the caller), and the dump process in the container
//! is stopped. The dump command and its credentials come from [`crate::engine`]
//! (secrets in exec `Env` or the container's own environment, never argv).

use crate::config::Job;
use crate::docker::{ContainerState, Docker, ExecSpec};
use crate::engine;
use crate::fingerprint::Fingerprint;
use crate::restic::{BackupDone, Restic, ResticError};
use anyhow::anyhow;
use std::time::Duration;

pub mod leftover;
mod pump;

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

/// Dump `job` into a new restic snapshot.
pub async fn dump_job(
    docker: &Docker,
    restic: &Restic,
    job: &Job,
    tags: &[String],
) -> Result<DumpDone, DumpFailed> {
    let container_name = running_container(docker, job).await?;
    let engine = engine::for_job(job)?;
    let mut spec = engine.dump(job, engine::client_env(engine, job)?)?;
    // Marks the dump process as this run's, for the next command after a crash.
    let run = crate::domain::parse_tags(tags).1;
    if let Some(run) = &run {
        spec.env.push(leftover::marker(run));
    }
    let filename = filename(job);
    let mut backup = restic.backup_stdin(&filename, tags)?;
    // By name, as inspected just now: proxy rules name the containers they allow.
    let stream = match docker.exec(container_name, &spec).await {
        Ok(s) => s,
        Err(e) => {
            backup.abort().await;
            return Err(e.into());
        }
    };
    let limits = pump::Limits {
        // A silent dump is a stall like a silent restic (haproxy cuts at 10 min anyway).
        idle: restic.stall_timeout(),
        write: WRITE_DEADLINE,
    };
    let (stream, stdin, pumped) = pump::pump(stream, backup.stdin.take(), job.kind, limits).await;
    let digest = match pumped {
        pump::Pumped::Done(d) => d,
        pump::Pumped::Failed { error: e, bytes } => {
            backup.abort().await;
            let (pid, tail) = (stream.pid(), tail(&stream));
            // Close the dump's stream first: dockerd handles an exec's exit only after
            // its output is drained, and meanwhile the next exec (our kill) hangs.
            drop(stream);
            // A dump that was writing dies on the broken pipe (1-5 s, measured); a
            // stalled one writes nothing and gets none: stop it. (Killing a writing
            // dump as well made the next exec in its container hang under load.)
            if e.downcast_ref::<pump::Stalled>().is_some() {
                stop_dump(docker, container_name, run.as_deref(), pid).await;
            }
            return Err(anyhow!(
                "{}: the dump stream failed after {bytes} bytes: {e:#}{tail}",
                job.name,
            )
            .into());
        }
    };
    let bytes = digest.bytes;
    let code = match docker.exec_wait(stream.exec_id(), EXIT_WAIT).await {
        Ok(c) => c,
        Err(e) => {
            backup.abort().await;
            let pid = stream.pid();
            drop(stream);
            stop_dump(docker, container_name, run.as_deref(), pid).await;
            return Err(e.into());
        }
    };
    let why = unusable(code, bytes).or_else(|| cut_short(engine, job, &digest.tail));
    if let Some(why) = why {
        backup.abort().await;
        return Err(anyhow!(
            "{}: {why} ({bytes} bytes streamed){}",
            job.name,
            tail(&stream)
        )
        .into());
    }
    backup.stdin = stdin;
    let done = backup.finish().await.map_err(|e| {
        let snapshot_id = match &e {
            ResticError::SourceUnreadable { snapshot_id, .. } => snapshot_id.clone(),
            _ => None,
        };
        DumpFailed {
            error: e.into(),
            snapshot_id,
        }
    })?;
    Ok(DumpDone {
        backup: done,
        filename,
        sha256: digest.sha256,
        bytes,
        fingerprint: digest.fingerprint,
    })
}

/// The job's container, which must be running: a dump needs the database up.
async fn running_container<'j>(docker: &Docker, job: &'j Job) -> Result<&'j str, DumpFailed> {
    let container_name = job
        .container
        .as_deref()
        .ok_or_else(|| anyhow!("{}: no container configured", job.name))?;
    let container = docker.inspect(container_name).await?;
    if container.state != ContainerState::Running {
        return Err(anyhow!(
            "{}: container `{container_name}` is {}, not running: a dump needs the database up; start it (`docker start {container_name}`)",
            job.name,
            container.state
        )
        .into());
    }
    Ok(container_name)
}

/// Why a dump that ended with exit `code` after `bytes` bytes does not count, if so.
fn unusable(code: i64, bytes: u64) -> Option<String> {
    if code != 0 {
        Some(format!("the dump command exited with code {code}"))
    } else if bytes == 0 {
        Some("the dump produced no data".to_string())
    } else {
        None
    }
}

/// Why a dump that exited 0 is still not whole: it lacks its tool's end marker (checked
/// on the streamed bytes, with the engine's own test, before restic may keep them).
fn cut_short(engine: &dyn engine::Engine, job: &Job, tail: &[u8]) -> Option<String> {
    if engine.ends_complete(job, tail) {
        return None;
    }
    Some(format!(
        "the dump does not end with its tool's end marker {:?}: it was cut short, so no snapshot was kept (it ends with {:?}); check the container's disk and the dump tool, then back up again",
        engine.end_marker(job),
        String::from_utf8_lossy(&tail[tail.len().saturating_sub(60)..])
    ))
}

/// The end of the dump's stderr, as a suffix for an error message (empty if none).
fn tail(s: &crate::docker::ExecStream) -> String {
    let t = s.stderr_tail();
    if t.is_empty() {
        String::new()
    } else {
        format!("; the dump's stderr ends with: {t}")
    }
}

/// Stop a dump still running in the container (restic died, the stream broke, the
/// dump stalled). By this run's marker when known: every process of the dump, also the
/// `pg_dump` children a `pg_dumpall` starts (killing only the pid the wrapper printed
/// leaves them running); else by that pid. Best effort: a broken stream usually ends
/// the dump by SIGPIPE anyway, but a dump blocked on a lock writes nothing.
async fn stop_dump(docker: &Docker, container: &str, run: Option<&str>, pid: Option<u32>) {
    if let Some(run) = run {
        if let Err(e) = leftover::stop(docker, container, run).await {
            tracing::warn!("could not stop the dump in container {container}: {e:#}");
        }
        return;
    }
    let Some(pid) = pid else { return };
    // The shell's builtin: database images often have no `kill` binary (no procps).
    let spec = ExecSpec {
        cmd: vec!["sh".into(), "-c".into(), format!("kill -TERM {pid}")],
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
    use crate::domain::JobKind;

    #[test]
    fn the_dump_is_one_flat_file_named_after_the_job() {
        let job = Job {
            name: "db".into(),
            kind: JobKind::Postgres,
            engine: crate::config::LOCAL_ENGINE.to_string(),
            paths: Vec::new(),
            exclude: Vec::new(),
            quiesce: None,
            container: Some("db".into()),
            user: None,
            password_file: None,
            database: None,
            retention: None,
            notify: None,
            origin: JobOrigin::Config { line: 1 },
            probes: Vec::new(),
            shrink_limit: crate::config::DEFAULT_SHRINK_LIMIT,
        };
        assert_eq!(filename(&job), "db.sql");
    }
}
