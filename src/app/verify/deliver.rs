//! Put a dump into a container and prove what it restores: shared by the restore test
//! (a scratch container) and `restore --into-container` (a live one).
//!
//! [`deliver`] streams the dump from restic into the container with an archive PUT,
//! hashing it on the way (size and SHA-256 must be the ones recorded at dump time) and
//! checking the dump tool's end marker; [`load`] runs the engine's load command with
//! errors fatal; [`rows`] recounts rows per table and compares them with the dump's
//! fingerprint; [`probes`] runs the job's probe queries. The engine (see
//! [`crate::engine`]) builds every command; this module only runs them.

use crate::catalog::Check;
use crate::catalog::DumpRow;
use crate::config::Job;
use crate::docker::exec::{NotRun, not_run};
use crate::docker::{Docker, DockerError, ExecSpec};
use crate::engine::{Engine, TAIL, Target, compare, keep_tail};
use crate::fingerprint::Fingerprint;
use crate::restic::Restic;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Where a dump is put in the container (a scratch container's writable layer: `PUT
/// archive` cannot write into a tmpfs mount).
pub const DROP_DIR: &str = "/tmp";
/// How long loading the dump may take.
const LOAD_WITHIN: Duration = Duration::from_secs(6 * 3600);
/// Short queries (row counts, probes).
const QUERY_WITHIN: Duration = Duration::from_secs(600);
/// How often a query Docker could not run is tried, and the first pause between tries
/// (doubled each time: 0.5 s, 1 s, 2 s).
const QUERY_TRIES: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The name of the check an infrastructure error is reported under: the data check it
/// interrupted (`fingerprint`, `probes`, `restore`) is not recorded failed.
pub const INFRA_CHECK: &str = "infrastructure";

/// What a delivery found. `refused` holds the proxy's refusal of the archive PUT (also
/// reported as the failed `dump-delivery` check), for callers that treat it as a set-up
/// problem.
pub struct Delivered {
    pub checks: Vec<Check>,
    pub refused: Option<DockerError>,
}

impl Delivered {
    /// Whether the dump may be loaded.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn failed(check: Check) -> Delivered {
        Delivered {
            checks: vec![check],
            refused: None,
        }
    }
}

/// Stream the dump of snapshot `snap` into `name:/tmp/<dest>` (archive PUT), hashing
/// it on the way; checks `dump-digest` (size and SHA-256 as recorded at dump time) and
/// `dump-complete` (the dump tool's end marker). A failed check means: do not load it.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    docker: &Docker,
    restic: &Restic,
    engine: &dyn Engine,
    job: &Job,
    name: &str,
    snap: &str,
    dump: &DumpRow,
    dest: &str,
) -> anyhow::Result<Delivered> {
    let file = dump.filename.trim_start_matches('/');
    let expected = u64::try_from(dump.bytes).unwrap_or(0);
    let mut child = restic.dump(snap, &format!("/{file}"))?;
    let Some(mut out) = child.stdout.take() else {
        anyhow::bail!("restic dump has no stdout");
    };
    let streamed = stream_in(docker, name, dest, expected, &mut out).await;
    drop(out);
    let dumped = restic.finish_dump(child).await;
    let Streamed {
        put,
        digest,
        extra,
        tail,
    } = streamed;
    let digest_failed =
        |detail: String| Delivered::failed(Check::new("dump-digest", false, detail));
    match (put, &dumped) {
        (Err(DockerError::ShortSource { .. }), Err(e)) | (Ok(()), Err(e)) => {
            return Ok(digest_failed(format!(
                "restic could not read {file} from snapshot {}: {e}",
                short(snap)
            )));
        }
        (Err(DockerError::ShortSource { got, .. }), Ok(())) => {
            return Ok(digest_failed(format!(
                "the snapshot's {file} has {got} bytes, but {expected} were recorded at dump time: the stored dump is truncated"
            )));
        }
        (Err(e), _) => {
            let check = Check::new(
                "dump-delivery",
                false,
                format!("cannot copy the dump into {name}: {e}"),
            );
            return Ok(Delivered {
                checks: vec![check],
                refused: matches!(e, DockerError::Refused { .. }).then_some(e),
            });
        }
        (Ok(()), Ok(())) => {}
    }
    if extra > 0 || digest != dump.sha256 {
        return Ok(digest_failed(format!(
            "the snapshot's {file} ({} bytes) has SHA-256 {}, but {} ({expected} bytes) was recorded at dump time: the stored dump is not the one that was made",
            expected + extra,
            &digest[..16],
            &dump.sha256[..16.min(dump.sha256.len())]
        )));
    }
    let mut checks = vec![Check::new(
        "dump-digest",
        true,
        format!(
            "{expected} bytes streamed from the repository into {name}:{DROP_DIR}/{dest}; SHA-256 {}… matches the dump's",
            &digest[..16]
        ),
    )];
    checks.push(end_marker_check(engine, job, &tail));
    Ok(Delivered {
        checks,
        refused: None,
    })
}

/// What went into the container, and what the stream held.
struct Streamed {
    put: Result<(), DockerError>,
    /// SHA-256 (hex) of every byte restic gave, including any beyond the recorded size.
    digest: String,
    /// Bytes beyond the recorded size.
    extra: u64,
    tail: Vec<u8>,
}

/// The archive PUT of `expected` bytes from `out` into `name:DROP_DIR/dest`, hashed
/// on the way; then the rest of `out` (bytes beyond the recorded size mean the stored
/// dump is not the recorded one).
async fn stream_in(
    docker: &Docker,
    name: &str,
    dest: &str,
    expected: u64,
    out: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Streamed {
    let mut hasher = Sha256::new();
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TAIL);
    let put = docker
        .put_file(name, DROP_DIR, dest, expected, out, |c| {
            hasher.update(c);
            keep_tail(&mut tail, c);
        })
        .await;
    let mut extra = 0u64;
    if put.is_ok() {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    extra += n as u64;
                    hasher.update(&buf[..n]);
                    keep_tail(&mut tail, &buf[..n]);
                }
            }
        }
    }
    Streamed {
        put,
        digest: hex::encode(hasher.finalize()),
        extra,
        tail,
    }
}

/// The dump tool's own end marker: a dump cut short (and recorded as if whole) ends
/// without it, whatever its digest says.
fn end_marker_check(engine: &dyn Engine, job: &Job, tail: &[u8]) -> Check {
    let marker = engine.end_marker(job);
    if engine.ends_complete(job, tail) {
        return Check::new(
            "dump-complete",
            true,
            format!("the dump ends with {marker:?}"),
        );
    }
    Check::new(
        "dump-complete",
        false,
        format!(
            "the dump does not end with {marker:?}: it was cut short when it was made (it ends with {:?}); it cannot restore the whole database — fix the dump and back up again",
            String::from_utf8_lossy(&tail[tail.len().saturating_sub(60)..])
        ),
    )
}

/// Load the delivered dump (`path` in `container`) with errors fatal: the `restore`
/// check.
pub async fn load(
    docker: &Docker,
    container: &str,
    engine: &dyn Engine,
    job: &Job,
    path: &str,
    target: &Target,
) -> Check {
    let spec = engine.load(job, path, target);
    let started = Instant::now();
    match run_long(docker, container, &spec, LOAD_WITHIN).await {
        Ok((0, _, _)) => Check::new(
            "restore",
            true,
            format!(
                "loaded with errors fatal in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
        ),
        // Not retried: a load that was cut may have run part-way.
        Ok((code, out, tail)) => match not_run(code, &out, &tail) {
            Some(n) => infra(
                "restore",
                &could_not_run(engine.client(), container, &n.to_string(), 1),
            ),
            None => failed_load(code, &tail),
        },
        Err(e) => infra(
            "restore",
            &could_not_run(engine.client(), container, &e.to_string(), 1),
        ),
    }
}

/// The `restore` check of a load that ran and exited `code`.
fn failed_load(code: i64, tail: &str) -> Check {
    Check::new(
        "restore",
        false,
        format!(
            "loading the dump failed (exit code {code}){}",
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", last_lines(tail, 5))
            }
        ),
    )
}

/// A check interrupted by an infrastructure error: reported as the failed
/// [`INFRA_CHECK`], naming the data check it stopped.
fn infra(check: &str, why: &str) -> Check {
    Check::new(INFRA_CHECK, false, format!("{check}: {why}"))
}

/// `could not run psql in omk-restore-…: …`, saying it is not a data failure.
fn could_not_run(client: &str, container: &str, why: &str, tries: u32) -> String {
    format!(
        "could not run {client} in {container}: {why} ({tries} attempt(s)); an infrastructure error, not a failed data check: the restored data was not judged; check the Docker host and socket proxy (docs/socket-proxy.md) and run the restore test again"
    )
}

/// An exec that may run long and silently: read its output while it comes; if a proxy
/// cuts the silent stream, wait for the exit code by polling.
async fn run_long(
    docker: &Docker,
    name: &str,
    spec: &ExecSpec,
    within: Duration,
) -> Result<(i64, String, String), DockerError> {
    let mut s = docker.exec(name, spec).await?;
    let mut buf = vec![0u8; 64 * 1024];
    // The first few KiB of stdout: where Docker puts "OCI runtime exec failed: …".
    let mut head = Vec::new();
    let read = tokio::time::timeout(within, async {
        loop {
            match s.next_stdout(&mut buf).await {
                Ok(Some(n)) => {
                    let keep = n.min(4096usize.saturating_sub(head.len()));
                    head.extend_from_slice(&buf[..keep]);
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    if let Ok(Err(e)) = &read {
        tracing::debug!("the load's output stream ended early ({e}); polling its state");
    }
    let code = docker.exec_wait(s.exec_id(), within).await?;
    Ok((
        code,
        String::from_utf8_lossy(&head).into_owned(),
        s.stderr_tail(),
    ))
}

/// Why a query gave no answer.
enum QueryError {
    /// Docker could not run it (after retrying what a retry can fix): the message.
    NotRun(String),
    /// It ran and failed (`psql exited with 1: …`): a failed data check.
    Failed(String),
}

/// A short query's stdout. An exec Docker could not run — a transport error, a cut
/// stream, the runtime's 126 — is tried again ([`QUERY_TRIES`] in all, with backoff:
/// these queries only read) and then reported as [`QueryError::NotRun`]; a command that
/// ran and exited non-zero is [`QueryError::Failed`] at once, never retried.
async fn query(
    docker: &Docker,
    name: &str,
    engine: &dyn Engine,
    spec: &ExecSpec,
) -> Result<String, QueryError> {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        let why = match docker.exec_output(name, spec, QUERY_WITHIN).await {
            Ok((0, out, _)) => return Ok(out),
            Ok((code, out, err)) => match not_run(code, &out, &err) {
                None => return Err(QueryError::Failed(exited(engine.client(), code, &err))),
                Some(
                    n @ NotRun::Runtime {
                        permanent: true, ..
                    },
                ) => {
                    return Err(QueryError::NotRun(could_not_run(
                        engine.client(),
                        name,
                        &n.to_string(),
                        attempt,
                    )));
                }
                Some(n) => n.to_string(),
            },
            Err(e) if e.is_transient() || matches!(e, DockerError::Stream { .. }) => e.to_string(),
            Err(e) => {
                return Err(QueryError::NotRun(could_not_run(
                    engine.client(),
                    name,
                    &e.to_string(),
                    attempt,
                )));
            }
        };
        if attempt >= QUERY_TRIES {
            return Err(QueryError::NotRun(could_not_run(
                engine.client(),
                name,
                &why,
                attempt,
            )));
        }
        tracing::debug!(
            "{} in {name} did not run ({why}); trying again in {pause:?}",
            engine.client()
        );
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
    }
}

/// `psql exited with 1: <last stderr lines>`.
fn exited(client: &str, code: i64, stderr: &str) -> String {
    format!("{client} exited with {code}: {}", last_lines(stderr, 3))
}

/// Rows per table in the restored database against the fingerprint: the `fingerprint`
/// check.
pub async fn rows(
    docker: &Docker,
    container: &str,
    engine: &dyn Engine,
    job: &Job,
    target: &Target,
    fp: &Fingerprint,
) -> Check {
    let spec = engine.count_rows(job, target);
    match query(docker, container, engine, &spec).await {
        Ok(out) => {
            let c = compare(engine, fp, &engine.parse_counts(&out));
            Check::new("fingerprint", c.passed, c.detail)
        }
        Err(QueryError::NotRun(why)) => infra("fingerprint", &why),
        Err(QueryError::Failed(why)) => Check::new(
            "fingerprint",
            false,
            format!("cannot count the restored rows: {why}"),
        ),
    }
}

/// The job's probes on the restored copy: each query's output (trimmed) must equal its
/// `expect`.
pub async fn probes(
    docker: &Docker,
    container: &str,
    engine: &dyn Engine,
    job: &Job,
    target: &Target,
) -> Check {
    let mut failures = Vec::new();
    for (i, p) in job.probes.iter().enumerate() {
        let spec = engine.probe(job, p, target);
        match query(docker, container, engine, &spec).await {
            Ok(out) if out.trim() == p.expect.trim() => {}
            Ok(out) => failures.push(format!(
                "probe {} `{}`: got {:?}, expected {:?}",
                i + 1,
                p.sql,
                out.trim(),
                p.expect.trim()
            )),
            Err(QueryError::NotRun(why)) => {
                return infra("probes", &format!("probe {} `{}`: {why}", i + 1, p.sql));
            }
            Err(QueryError::Failed(why)) => {
                failures.push(format!("probe {} `{}` failed: {why}", i + 1, p.sql))
            }
        }
    }
    if failures.is_empty() {
        Check::new(
            "probes",
            true,
            format!("{} probe(s) returned what was expected", job.probes.len()),
        )
    } else {
        Check::new("probes", false, failures.join("; "))
    }
}

/// The first 8 characters of a snapshot id.
pub fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

/// The last `n` non-blank lines of `s`, joined with ` | `.
pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: messages showed `Some("psql") exited with 126`.
    #[test]
    fn messages_name_the_program() {
        let pg = crate::engine::for_kind(crate::domain::JobKind::Postgres).unwrap();
        assert_eq!(
            exited(pg.client(), 126, "psql: error: x\n\npermission denied\n"),
            "psql exited with 126: psql: error: x | permission denied"
        );
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }
}
