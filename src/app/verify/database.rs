//! Restore tests of database jobs in scratch containers.
//!
//! For the newest good snapshot of a postgres / mariadb / sqlite job: start a scratch
//! container `omk-restore-<job>-<run>` from the *source container's image* (by image id),
//! isolated (network `none`, `no-new-privileges`, `CapDrop ALL` plus only what the
//! engine's entrypoint needs, memory/CPU/pids limits, the image's volumes on tmpfs, no
//! binds, no ports, a fresh random password in the create body only); wait until the
//! engine answers; stream `restic dump` into it as a one-entry tar through `PUT
//! /containers/{name}/archive` (no exec stdin: haproxy proxies cannot carry it), hashing
//! the bytes on the way (they must match the SHA-256 and size recorded at dump time);
//! load the dump with errors fatal; recount rows per table and compare with the
//! fingerprint recorded at dump time. The scratch container is always removed: at the
//! end, on failure, on error or cancellation (a guard: `restore-test` abandons a test on
//! SIGTERM/SIGINT), and by [`remove_leftovers`] at the next locking command after a crash.

use super::common::{Running, pick};
use crate::app::reporter::Reporter;
use crate::app::session::Session;
use crate::catalog::Check;
use crate::config::Job;
use crate::docker::{Docker, DockerError, ExecSpec, ScratchSpec};
use crate::domain::JobKind;
use crate::fingerprint::Fingerprint;
use crate::restic::Restic;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// The label every scratch container carries (and leftovers are found by).
pub const SCRATCH_LABEL: &str = "omk-backup.scratch";
/// The label naming the run that made a scratch container.
pub const RUN_LABEL: &str = "omk-backup.run";
/// Where the dump is put in the scratch container (its writable layer: `PUT archive`
/// cannot write into a tmpfs mount).
const DROP_DIR: &str = "/tmp";
/// The scratch Postgres superuser: a name no source cluster is likely to have, so a
/// `pg_dumpall` dump's `CREATE ROLE postgres` succeeds with errors fatal.
const PG_SCRATCH_SUPERUSER: &str = "omk_restore";
/// How long the engine may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(180);
/// How long loading the dump may take.
const RESTORE_WITHIN: Duration = Duration::from_secs(6 * 3600);
/// Short queries (row counts).
const QUERY_WITHIN: Duration = Duration::from_secs(600);

/// The scratch container's name: `omk-restore-<job>-<run>`, with characters Docker (and
/// the proxy rule `omk-restore-[a-zA-Z0-9_.-]+`) accept.
pub fn scratch_name(job: &str, run_id: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("omk-restore-{}-{}", clean(job), clean(run_id))
}

/// Removes the scratch container when dropped (error paths, panics, cancellation) on a
/// helper thread; the normal path calls [`Guard::remove`].
struct Guard {
    docker: Docker,
    name: String,
    done: bool,
}

impl Guard {
    async fn remove(mut self) -> Result<(), DockerError> {
        self.done = true;
        remove_with_retries(&self.docker, &self.name).await
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (docker, name) = (self.docker.clone(), self.name.clone());
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(remove_with_retries(&docker, &name)).is_ok(),
                Err(_) => false,
            }
        });
        let ok = worker.join().unwrap_or(false);
        if !ok {
            tracing::warn!(
                "could not remove the scratch container {}: the next locking command retries",
                self.name
            );
        }
    }
}

async fn remove_with_retries(docker: &Docker, name: &str) -> Result<(), DockerError> {
    let mut last = None;
    for i in 0..3 {
        match docker.remove_force(name).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(300 * (i + 1))).await;
    }
    Err(last.unwrap_or(DockerError::Transport {
        method: "DELETE".into(),
        path: format!("/containers/{name}"),
        detail: "unknown".into(),
    }))
}

/// Remove scratch containers left by our own runs (killed mid-test). Called with the
/// run lock held, so none of this catalog's runs is alive; containers of runs this
/// catalog does not know belong to another installation and are left alone.
pub async fn remove_leftovers(ctx: &Session, reporter: &dyn Reporter) -> anyhow::Result<usize> {
    let docker = ctx.docker().await?;
    let found = docker.list_labelled(&format!("{SCRATCH_LABEL}=1")).await?;
    let mut removed = 0;
    for c in found {
        let Some(run) = c.labels.get(RUN_LABEL) else {
            continue;
        };
        if ctx.catalog.run(run)?.is_none() {
            continue;
        }
        reporter.note(&format!(
            "removing scratch container {} (left behind by interrupted run {run})",
            c.name
        ));
        remove_with_retries(&docker, &c.name).await?;
        removed += 1;
    }
    Ok(removed)
}

/// What differs between engines.
struct Profile {
    env: Vec<String>,
    caps: Vec<&'static str>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    /// Succeeds once the engine accepts connections.
    ready: ExecSpec,
}

fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".into(),
        script.into(),
        "omk-restore".into(),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// MariaDB client commands with the root password from the container's environment
/// (by variable name: the value never reaches argv).
const MARIA_PWD: &str = "MYSQL_PWD=\"${MYSQL_PWD:-${MARIADB_ROOT_PASSWORD:-$MYSQL_ROOT_PASSWORD}}\"; export MYSQL_PWD; if command -v mariadb >/dev/null 2>&1; then c=mariadb; else c=mysql; fi; ";

fn profile(job: &Job, password: &str) -> Profile {
    let exec = |cmd: Vec<String>, env: Vec<String>| ExecSpec {
        cmd,
        env,
        user: None,
    };
    match job.kind {
        JobKind::Postgres => Profile {
            env: vec![
                format!("POSTGRES_PASSWORD={password}"),
                format!("POSTGRES_USER={}", pg_superuser(job)),
                format!(
                    "POSTGRES_DB={}",
                    job.database.clone().unwrap_or_else(|| "postgres".into())
                ),
            ],
            // The entrypoint chowns the (tmpfs) data folder and its socket folder to
            // `postgres`, then drops to that user with setpriv (docs/restore-tests.md).
            caps: vec!["CHOWN", "SETUID", "SETGID"],
            entrypoint: None,
            cmd: None,
            // TCP on loopback: the entrypoint's temporary init server listens on the
            // unix socket only, so this is the real server.
            ready: exec(
                vec![
                    "pg_isready".into(),
                    "-q".into(),
                    "-h".into(),
                    "127.0.0.1".into(),
                ],
                vec![],
            ),
        },
        JobKind::Mariadb => Profile {
            env: vec![
                format!("MARIADB_ROOT_PASSWORD={password}"),
                format!("MYSQL_ROOT_PASSWORD={password}"),
            ],
            caps: vec!["CHOWN", "SETUID", "SETGID"],
            entrypoint: None,
            cmd: None,
            // TCP: the temporary init server runs with --skip-networking.
            ready: exec(
                sh(
                    &format!(
                        "{MARIA_PWD}if command -v mariadb-admin >/dev/null 2>&1; then a=mariadb-admin; else a=mysqladmin; fi; exec $a --protocol=tcp -h127.0.0.1 -uroot ping"
                    ),
                    &[],
                ),
                vec![],
            ),
        },
        // An app image that holds a SQLite file: do not run the app; keep a shell alive.
        _ => Profile {
            env: vec![],
            caps: vec![],
            entrypoint: Some(sh("trap 'exit 0' TERM INT; while :; do sleep 1; done", &[])),
            cmd: Some(vec![]),
            ready: exec(sh("command -v sqlite3 >/dev/null", &[]), vec![]),
        },
    }
}

fn pg_superuser(job: &Job) -> String {
    // A single-database dump (pg_dump) sets owners to the dumping role: restore as that
    // role. A cluster dump (pg_dumpall) creates its roles itself.
    if job.database.is_some() {
        job.user.clone().unwrap_or_else(|| "postgres".into())
    } else {
        PG_SCRATCH_SUPERUSER.into()
    }
}

/// Run the restore test of one database job; checks are pushed onto `t`.
/// Run the restore test of one database job; checks are pushed onto `t`. The caller
/// abandons it on SIGTERM/SIGINT (dropping it removes the scratch container).
pub(super) async fn test(
    ctx: &Session,
    restic: &Restic,
    job: &Job,
    run_id: &str,
    t: &mut Running,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    test_inner(ctx, restic, job, run_id, t, reporter, Instant::now()).await
}

async fn test_inner(
    ctx: &Session,
    restic: &Restic,
    job: &Job,
    run_id: &str,
    t: &mut Running,
    reporter: &dyn Reporter,
    started: Instant,
) -> anyhow::Result<()> {
    let Some((snap, _)) = pick(ctx, job, t)? else {
        return Ok(());
    };
    let Some(dump) = ctx.catalog.dump(&snap)? else {
        t.checks.push(Check::new(
            "dump-digest",
            false,
            format!(
                "the catalog holds no digest of snapshot {} (made before digests, or found by `catalog rebuild`): its completeness cannot be proven; run `omk-backup backup {}` for a fresh dump",
                short(&snap),
                job.name
            ),
        ));
        return Ok(());
    };
    let fingerprint: Option<Fingerprint> = dump.fingerprint.clone();
    let Some(source) = job.container.as_deref() else {
        t.checks.push(Check::new(
            "scratch-container",
            false,
            format!(
                "{}: no container configured, so no image to restore into",
                job.name
            ),
        ));
        return Ok(());
    };
    let docker = match ctx.docker().await {
        Ok(d) => d,
        Err(e) => {
            t.checks
                .push(Check::new("scratch-container", false, format!("{e:#}")));
            return Ok(());
        }
    };
    let image = match docker.inspect(source).await {
        Ok(s) => s.image_id,
        Err(e) => {
            t.checks.push(Check::new(
                "scratch-container",
                false,
                format!("cannot read the image of container `{source}`: {e}; the scratch container starts from the source container's image, so the source must exist (it may be stopped)"),
            ));
            return Ok(());
        }
    };
    let volumes = match docker.image_volumes(&image).await {
        Ok(v) => v,
        Err(e) => {
            t.checks
                .push(Check::new("scratch-container", false, e.to_string()));
            return Ok(());
        }
    };
    let password = crate::random::hex(24)?;
    let prof = profile(job, &password);
    let limits = ctx.config.scratch_limits;
    let name = scratch_name(&job.name, run_id);
    let mut labels = HashMap::new();
    labels.insert(SCRATCH_LABEL.to_string(), "1".to_string());
    labels.insert(RUN_LABEL.to_string(), run_id.to_string());
    labels.insert("omk-backup.job".to_string(), job.name.clone());
    let spec = ScratchSpec {
        name: name.clone(),
        image: image.clone(),
        env: prof.env.clone(),
        labels,
        entrypoint: prof.entrypoint.clone(),
        cmd: prof.cmd.clone(),
        tmpfs: volumes.clone(),
        cap_add: prof.caps.iter().map(|c| c.to_string()).collect(),
        memory_bytes: limits.memory_mb << 20,
        nano_cpus: (limits.cpus * 1e9) as i64,
        pids_limit: limits.pids,
    };
    // A container of the same name from an earlier attempt of this run id: replace it.
    let _ = docker.remove_force(&name).await;
    reporter.note(&format!("{}: starting scratch container {name}", job.name));
    // The guard exists before the create call: a signal or error at any point after it
    // removes whatever was created (removing a missing container is fine).
    let guard = Guard {
        docker: docker.clone(),
        name: name.clone(),
        done: false,
    };
    if let Err(e) = docker.start_scratch(&spec).await {
        let _ = guard.remove().await;
        t.checks.push(Check::new(
            "scratch-container",
            false,
            format!(
                "cannot start a scratch container from image {}: {e}",
                short_image(&image)
            ),
        ));
        return Ok(());
    }
    t.checks.push(Check::new(
        "scratch-container",
        true,
        format!(
            "{name} from image {} (network none, no-new-privileges, capabilities: {}, {} MiB, {} CPU, {} pids, tmpfs: {})",
            short_image(&image),
            if prof.caps.is_empty() { "none".to_string() } else { prof.caps.join(",") },
            limits.memory_mb,
            limits.cpus,
            limits.pids,
            if volumes.is_empty() { "-".to_string() } else { volumes.join(",") }
        ),
    ));
    let result = run_in_scratch(
        &docker,
        restic,
        job,
        &name,
        &snap,
        &dump,
        fingerprint,
        &prof,
        t,
    )
    .await;
    // Verified (or not) before the clean-up: RTO ends at the verified restore.
    let elapsed = started.elapsed().as_secs_f64();
    let removed = guard.remove().await;
    // An error is this job's failure; the other jobs still run.
    if let Err(e) = result {
        t.checks.push(Check::new(
            "restore",
            false,
            format!("the restore test stopped: {e:#}"),
        ));
    }
    if let Err(e) = removed {
        t.checks.push(Check::new(
            "cleanup",
            false,
            format!("the scratch container {name} could not be removed: {e}; the next locking omk-backup command retries"),
        ));
    }
    if t.checks.iter().all(|c| c.passed) {
        t.rto_seconds = Some((elapsed * 1000.0).round() / 1000.0);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_in_scratch(
    docker: &Docker,
    restic: &Restic,
    job: &Job,
    name: &str,
    snap: &str,
    dump: &crate::catalog::DumpRow,
    fingerprint: Option<Fingerprint>,
    prof: &Profile,
    t: &mut Running,
) -> anyhow::Result<()> {
    // 1 and 2 at once: the engine starts while the dump goes in (an archive PUT needs no
    // running engine), hashed on the way.
    let file = dump.filename.trim_start_matches('/').to_string();
    let ready_start = Instant::now();
    let ready = async {
        let r = wait_ready(docker, name, &prof.ready).await;
        (r, ready_start.elapsed())
    };
    let ((ready, ready_after), delivered) = tokio::join!(
        ready,
        deliver(docker, restic, job.kind, name, snap, dump, &file)
    );
    match ready {
        Ok(()) => t.checks.push(Check::new(
            "engine-ready",
            true,
            format!(
                "{} accepted connections after {:.1} s",
                job.kind,
                ready_after.as_secs_f64()
            ),
        )),
        Err(why) => {
            t.checks.push(Check::new("engine-ready", false, why));
            return Ok(());
        }
    }
    let delivered = delivered?;
    let ok = delivered.iter().all(|c| c.passed);
    t.checks.extend(delivered);
    if !ok {
        return Ok(());
    }

    // 3. Load it, errors fatal.
    let path = format!("{DROP_DIR}/{file}");
    let target = Target::scratch(job);
    let restore = restore_spec(job, &path, &target);
    let load_start = Instant::now();
    match run_long(docker, name, &restore, RESTORE_WITHIN).await {
        Ok((0, _)) => t.checks.push(Check::new(
            "restore",
            true,
            format!(
                "loaded with errors fatal in {:.1} s",
                load_start.elapsed().as_secs_f64()
            ),
        )),
        Ok((code, tail)) => {
            t.checks.push(Check::new(
                "restore",
                false,
                format!(
                    "loading the dump failed (exit code {code}){}",
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", last_lines(&tail, 5))
                    }
                ),
            ));
            return Ok(());
        }
        Err(e) => {
            t.checks.push(Check::new(
                "restore",
                false,
                format!("loading the dump failed: {e}"),
            ));
            return Ok(());
        }
    }

    // 4. Same rows per table as at dump time.
    let Some(fp) = fingerprint else {
        t.checks.push(Check::new(
            "fingerprint",
            false,
            "no content fingerprint was recorded at dump time: rows cannot be compared",
        ));
        return Ok(());
    };
    match count_rows(docker, name, job, &target).await {
        Ok(restored) => t.checks.push(compare(job.kind, &fp, &restored)),
        Err(e) => t.checks.push(Check::new(
            "fingerprint",
            false,
            format!("cannot count the restored rows: {e:#}"),
        )),
    }
    if !job.probes.is_empty() {
        t.checks.push(run_probes(docker, name, job, &target).await);
    }
    Ok(())
}

/// The job's probes on the restored copy: each query's output (trimmed) must equal its
/// `expect`.
pub async fn run_probes(docker: &Docker, name: &str, job: &Job, target: &Target) -> Check {
    let mut failures = Vec::new();
    for (i, p) in job.probes.iter().enumerate() {
        let spec = match job.kind {
            JobKind::Postgres => target.exec(vec![
                "psql".into(),
                "-X".into(),
                "-At".into(),
                "-v".into(),
                "ON_ERROR_STOP=1".into(),
                "--username".into(),
                target.db_user.clone(),
                "--no-password".into(),
                "--dbname".into(),
                p.database
                    .clone()
                    .or_else(|| job.database.clone())
                    .unwrap_or_else(|| "postgres".into()),
                "-c".into(),
                p.sql.clone(),
            ]),
            JobKind::Mariadb => target.exec(sh(
                &format!(
                    "{MARIA_PWD}if [ -n \"$3\" ]; then exec $c --user=\"$2\" -N -B -D \"$3\" -e \"$1\"; else exec $c --user=\"$2\" -N -B -e \"$1\"; fi"
                ),
                &[
                    &p.sql,
                    &target.db_user,
                    p.database.as_deref().or(job.database.as_deref()).unwrap_or(""),
                ],
            )),
            _ => target.exec(vec![
                "sqlite3".into(),
                "-bail".into(),
                target.sqlite_path.clone(),
                p.sql.clone(),
            ]),
        };
        match query(docker, name, &spec).await {
            Ok(out) if out.trim() == p.expect.trim() => {}
            Ok(out) => failures.push(format!(
                "probe {} `{}`: got {:?}, expected {:?}",
                i + 1,
                p.sql,
                out.trim(),
                p.expect.trim()
            )),
            Err(e) => failures.push(format!("probe {} `{}` failed: {e:#}", i + 1, p.sql)),
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

/// Stream `file` of snapshot `snap` into `name:/tmp/<file>` (archive PUT), hashing it on
/// the way; checks `dump-digest` (size and SHA-256 as recorded at dump time) and
/// `dump-complete` (the dump tool's end marker). The last check failing means: do not
/// load it.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    docker: &Docker,
    restic: &Restic,
    kind: JobKind,
    name: &str,
    snap: &str,
    dump: &crate::catalog::DumpRow,
    dest: &str,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let file = dump.filename.trim_start_matches('/');
    let expected = u64::try_from(dump.bytes).unwrap_or(0);
    let mut child = restic.dump(snap, &format!("/{file}"))?;
    let Some(mut out) = child.stdout.take() else {
        anyhow::bail!("restic dump has no stdout");
    };
    let mut hasher = Sha256::new();
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TAIL);
    let put = docker
        .put_file(name, DROP_DIR, dest, expected, &mut out, |c| {
            hasher.update(c);
            keep_tail(&mut tail, c);
        })
        .await;
    // Bytes beyond the recorded size mean the stored dump is not the recorded one.
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
    drop(out);
    let dumped = restic.finish_dump(child).await;
    let digest = hex::encode(hasher.finalize());
    let restic_failed = |e: &crate::restic::ResticError| {
        Check::new(
            "dump-digest",
            false,
            format!(
                "restic could not read {file} from snapshot {}: {e}",
                short(snap)
            ),
        )
    };
    match (&put, &dumped) {
        (Err(DockerError::ShortSource { .. }), Err(e)) | (Ok(()), Err(e)) => {
            checks.push(restic_failed(e));
            return Ok(checks);
        }
        (Err(DockerError::ShortSource { got, .. }), Ok(())) => {
            checks.push(Check::new(
                "dump-digest",
                false,
                format!(
                    "the snapshot's {file} has {got} bytes, but {expected} were recorded at dump time: the stored dump is truncated"
                ),
            ));
            return Ok(checks);
        }
        (Err(e), _) => {
            checks.push(Check::new(
                "dump-delivery",
                false,
                format!("cannot copy the dump into {name}: {e}"),
            ));
            return Ok(checks);
        }
        (Ok(()), Ok(())) => {}
    }
    if extra > 0 || digest != dump.sha256 {
        checks.push(Check::new(
            "dump-digest",
            false,
            format!(
                "the snapshot's {file} ({} bytes) has SHA-256 {}, but {} ({expected} bytes) was recorded at dump time: the stored dump is not the one that was made",
                expected + extra,
                &digest[..16],
                &dump.sha256[..16.min(dump.sha256.len())]
            ),
        ));
        return Ok(checks);
    }
    checks.push(Check::new(
        "dump-digest",
        true,
        format!(
            "{expected} bytes streamed from the repository into {name}:{DROP_DIR}/{dest}; SHA-256 {}… matches the dump's",
            &digest[..16]
        ),
    ));

    // The dump tool's own end marker: a dump cut short (and recorded as if whole) ends
    // without it, whatever its digest says.
    let (complete, marker) = ends_complete(kind, &tail);
    if !complete {
        checks.push(Check::new(
            "dump-complete",
            false,
            format!(
                "the dump does not end with {marker:?}: it was cut short when it was made (it ends with {:?}); it cannot restore the whole database — fix the dump and back up again",
                String::from_utf8_lossy(&tail[tail.len().saturating_sub(60)..])
            ),
        ));
        return Ok(checks);
    }
    checks.push(Check::new(
        "dump-complete",
        true,
        format!("the dump ends with {marker:?}"),
    ));

    Ok(checks)
}

/// Bytes of the dump's end kept to find its end marker.
const TAIL: usize = 512;

fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    tail.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
    if tail.len() > TAIL {
        tail.drain(..tail.len() - TAIL);
    }
}

/// Whether a dump ends with its tool's completion marker (pg_dump / pg_dumpall:
/// `-- PostgreSQL database [cluster ]dump complete`; mariadb-dump/mysqldump: `-- Dump
/// completed on ...`; sqlite3 `.dump`: `COMMIT;`), and the marker looked for.
pub fn ends_complete(kind: JobKind, tail: &[u8]) -> (bool, &'static str) {
    let text = String::from_utf8_lossy(tail);
    let end = text.trim_end();
    match kind {
        JobKind::Postgres => {
            let last = end
                .lines()
                .rev()
                .map(str::trim)
                // pg_dump ≥ 15.14/16.10/17.6 ends with `\unrestrict KEY` after the marker.
                .find(|l| !l.is_empty() && *l != "--" && !l.starts_with("\\unrestrict "))
                .unwrap_or("");
            (
                last.starts_with("-- PostgreSQL database") && last.ends_with("dump complete"),
                "-- PostgreSQL database dump complete",
            )
        }
        JobKind::Mariadb => (
            end.lines()
                .last()
                .is_some_and(|l| l.starts_with("-- Dump completed")),
            "-- Dump completed",
        ),
        _ => (end.ends_with("COMMIT;"), "COMMIT;"),
    }
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

fn short_image(id: &str) -> String {
    let s = id.trim_start_matches("sha256:");
    format!("sha256:{}", &s[..12.min(s.len())])
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

async fn wait_ready(docker: &Docker, name: &str, ready: &ExecSpec) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut last: String;
    loop {
        match docker.inspect(name).await {
            Ok(s) if s.status != "running" => {
                return Err(format!(
                    "the scratch container {name} is {} (exit code {}) instead of running: the engine did not start with these limits; run the image by hand with the same settings (docs/restore-tests.md) to see why",
                    s.status,
                    s.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "?".into())
                ));
            }
            Err(e) => return Err(format!("cannot inspect {name}: {e}")),
            Ok(_) => {}
        }
        match docker
            .exec_output(name, ready, Duration::from_secs(30))
            .await
        {
            Ok((0, _, _)) => return Ok(()),
            Ok((code, _, err)) => last = format!("exit code {code}: {}", last_lines(&err, 2)),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the engine in {name} did not accept connections within {} s (last answer: {last})",
                READY_WITHIN.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where a dump is loaded: the scratch container, or (`restore --into-container`) a
/// live one. Secrets travel in `env` (exec `Env`), never argv.
#[derive(Clone)]
pub struct Target {
    /// Postgres role or MariaDB user the load and the counts run as.
    pub db_user: String,
    /// SQLite: the database file to create.
    pub sqlite_path: String,
    pub env: Vec<String>,
    /// The exec's user (None: the image's).
    pub exec_user: Option<String>,
    /// A live cluster already has roles: a `pg_dumpall` dump's `CREATE ROLE x;` lines
    /// are wrapped to tolerate an existing role (and only that).
    pub live: bool,
}

impl Target {
    fn scratch(job: &Job) -> Target {
        Target {
            db_user: match job.kind {
                JobKind::Postgres => pg_superuser(job),
                _ => "root".into(),
            },
            sqlite_path: SQLITE_RESTORED.into(),
            env: Vec::new(),
            exec_user: None,
            live: false,
        }
    }

    fn exec(&self, cmd: Vec<String>) -> ExecSpec {
        ExecSpec {
            cmd,
            env: self.env.clone(),
            user: self.exec_user.clone(),
        }
    }
}

/// `sed` program turning pg_dumpall's `CREATE ROLE x;` into a statement that tolerates
/// an existing role (only `duplicate_object` is caught; every other error stays fatal).
const PG_ROLE_SED: &str = "s/^CREATE ROLE \\(.*\\);$/DO $omk$ BEGIN CREATE ROLE \\1; EXCEPTION WHEN duplicate_object THEN NULL; END $omk$;/";

/// The command that loads the dump at `path` with errors fatal.
pub fn restore_spec(job: &Job, path: &str, target: &Target) -> ExecSpec {
    match job.kind {
        JobKind::Postgres => {
            let db = job.database.clone().unwrap_or_else(|| "postgres".into());
            if target.live && job.database.is_none() {
                target.exec(sh(
                    "sed -e \"$2\" \"$1\" | psql -X -q -v ON_ERROR_STOP=1 --username \"$3\" --no-password --dbname \"$4\"",
                    &[path, PG_ROLE_SED, &target.db_user, &db],
                ))
            } else {
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
        }
        JobKind::Mariadb => target.exec(sh(
            &format!("{MARIA_PWD}exec $c --user=\"$2\" --binary-mode < \"$1\""),
            &[path, &target.db_user],
        )),
        _ => target.exec(sh(
            "rm -f \"$1\"; exec sqlite3 -bail \"$1\" < \"$2\"",
            &[&target.sqlite_path, path],
        )),
    }
}

const SQLITE_RESTORED: &str = "/tmp/omk-restored.db";

/// An exec that may run long and silently: read its output while it comes; if a proxy
/// cuts the silent stream, wait for the exit code by polling.
pub async fn run_long(
    docker: &Docker,
    name: &str,
    spec: &ExecSpec,
    within: Duration,
) -> Result<(i64, String), DockerError> {
    let mut s = docker.exec(name, spec).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(within, async {
        loop {
            match s.next_stdout(&mut buf).await {
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    if let Ok(Err(e)) = &read {
        tracing::debug!("the restore's output stream ended early ({e}); polling its state");
    }
    let code = docker.exec_wait(s.exec_id(), within).await?;
    Ok((code, s.stderr_tail()))
}

async fn query(docker: &Docker, name: &str, spec: &ExecSpec) -> anyhow::Result<String> {
    let (code, out, err) = docker.exec_output(name, spec, QUERY_WITHIN).await?;
    if code != 0 {
        anyhow::bail!(
            "{:?} exited with {code}: {}",
            spec.cmd.first(),
            last_lines(&err, 3)
        );
    }
    Ok(out)
}

/// Rows per table in the restored database, keyed like the fingerprint.
pub async fn count_rows(
    docker: &Docker,
    name: &str,
    job: &Job,
    target: &Target,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let parse = |text: &str, prefix: &str, sep: char, out: &mut BTreeMap<String, u64>| {
        for line in text.lines() {
            if let Some((k, v)) = line.rsplit_once(sep)
                && let Ok(n) = v.trim().parse::<u64>()
            {
                out.insert(format!("{prefix}{k}"), n);
            }
        }
    };
    match job.kind {
        JobKind::Postgres => {
            let su = target.db_user.clone();
            let psql = |db: &str, sql: &str| {
                target.exec(vec![
                    "psql".into(),
                    "-X".into(),
                    "-At".into(),
                    "-F".into(),
                    "|".into(),
                    "-v".into(),
                    "ON_ERROR_STOP=1".into(),
                    "--username".into(),
                    su.clone(),
                    "--no-password".into(),
                    "--dbname".into(),
                    db.into(),
                    "-c".into(),
                    sql.into(),
                ])
            };
            const COUNTS: &str = "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
            match &job.database {
                Some(db) => {
                    let text = query(docker, name, &psql(db, COUNTS)).await?;
                    parse(&text, "", '|', &mut out);
                }
                None => {
                    let dbs = query(
                        docker,
                        name,
                        &psql(
                            "postgres",
                            "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template0' ORDER BY 1",
                        ),
                    )
                    .await?;
                    for db in dbs.lines().map(str::trim).filter(|d| !d.is_empty()) {
                        let text = query(docker, name, &psql(db, COUNTS)).await?;
                        parse(&text, &format!("{db}."), '|', &mut out);
                    }
                }
            }
        }
        JobKind::Mariadb => {
            const GEN: &str = "SET SESSION group_concat_max_len = 16777216; SELECT GROUP_CONCAT(CONCAT('SELECT ', QUOTE(CONCAT(table_schema, '.', table_name)), ', COUNT(*) FROM `', REPLACE(table_schema, '`', '``'), '`.`', REPLACE(table_name, '`', '``'), '`') SEPARATOR ' UNION ALL ') FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";
            let spec = target.exec(sh(
                &format!(
                    "{MARIA_PWD}q=$($c --user=\"$2\" -N -B -e \"$1\") || exit $?; if [ -z \"$q\" ] || [ \"$q\" = NULL ]; then exit 0; fi; exec $c --user=\"$2\" -N -B -e \"$q\""
                ),
                &[GEN, &target.db_user],
            ));
            let text = query(docker, name, &spec).await?;
            parse(&text, "", '\t', &mut out);
        }
        _ => {
            let list = target.exec(vec![
                "sqlite3".into(),
                "-bail".into(),
                target.sqlite_path.clone(),
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1".into(),
            ]);
            let names = query(docker, name, &list).await?;
            let parts: Vec<String> = names
                .lines()
                .filter(|l| !l.is_empty())
                .map(|t| {
                    format!(
                        "SELECT '{}', count(*) FROM \"{}\"",
                        t.replace('\'', "''"),
                        t.replace('"', "\"\"")
                    )
                })
                .collect();
            if !parts.is_empty() {
                let spec = target.exec(vec![
                    "sqlite3".into(),
                    "-bail".into(),
                    "-separator".into(),
                    "|".into(),
                    target.sqlite_path.clone(),
                    parts.join(" UNION ALL "),
                ]);
                let text = query(docker, name, &spec).await?;
                parse(&text, "", '|', &mut out);
            }
        }
    }
    Ok(out)
}

/// Tables the engine maintains itself: not compared.
fn system_table(kind: JobKind, key: &str) -> bool {
    match kind {
        JobKind::Mariadb => {
            let db = key.split('.').next().unwrap_or("");
            ["mysql", "information_schema", "performance_schema", "sys"].contains(&db)
        }
        JobKind::Sqlite => key.starts_with("sqlite_"),
        _ => false,
    }
}

/// Compare the restored row counts with the fingerprint.
pub fn compare(kind: JobKind, fp: &Fingerprint, restored: &BTreeMap<String, u64>) -> Check {
    let mut problems = Vec::new();
    let mut tables = 0;
    let mut rows = 0u64;
    for (table, &want) in fp.tables.iter().filter(|(k, _)| !system_table(kind, k)) {
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
        if got > 0 && !fp.tables.contains_key(table) && !system_table(kind, table) {
            problems.push(format!(
                "{table}: {got} rows restored but not in the dump's fingerprint"
            ));
        }
    }
    if problems.is_empty() {
        Check::new(
            "fingerprint",
            true,
            format!("{tables} tables, {rows} rows: the same per table as at dump time"),
        )
    } else {
        let n = problems.len();
        problems.truncate(20);
        Check::new(
            "fingerprint",
            false,
            format!(
                "{n} table(s) differ from the dump's fingerprint: {}",
                problems.join("; ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_markers() {
        let pg = b"COPY x FROM stdin;\n1\n\\.\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n";
        assert!(ends_complete(JobKind::Postgres, pg).0);
        assert!(
            ends_complete(
                JobKind::Postgres,
                b"--\n-- PostgreSQL database dump complete\n--\n\n"
            )
            .0
        );
        assert!(!ends_complete(JobKind::Postgres, b"COPY x FROM stdin;\n1\n2\n").0);
        // pg_dump 15.14+: `\unrestrict KEY` follows the marker.
        assert!(
            ends_complete(
                JobKind::Postgres,
                b"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict t8oy3PrpuyNcaaJ\n\n"
            )
            .0
        );
        assert!(
            !ends_complete(
                JobKind::Postgres,
                b"COPY x FROM stdin;\n1\n\\.\n\n\\unrestrict t8oy3PrpuyNcaaJ\n\n"
            )
            .0
        );
        assert!(
            ends_complete(
                JobKind::Mariadb,
                b"UNLOCK TABLES;\n-- Dump completed on 2026-11-27 23:50:00\n"
            )
            .0
        );
        assert!(!ends_complete(JobKind::Mariadb, b"INSERT INTO `t` VALUES (1),\n(2),\n").0);
        assert!(ends_complete(JobKind::Sqlite, b"INSERT INTO t VALUES(1);\nCOMMIT;\n").0);
        assert!(!ends_complete(JobKind::Sqlite, b"INSERT INTO t VALUES(1);\n").0);
        let mut tail = Vec::new();
        for _ in 0..100 {
            keep_tail(&mut tail, b"0123456789");
        }
        keep_tail(&mut tail, b"COMMIT;\n");
        assert_eq!(tail.len(), TAIL);
        assert!(ends_complete(JobKind::Sqlite, &tail).0);
    }

    #[test]
    fn names_fit_the_proxy_rule() {
        assert_eq!(
            scratch_name("immich db", "20261127T2345Z-ab12"),
            "omk-restore-immich-db-20261127T2345Z-ab12"
        );
    }

    #[test]
    fn comparison_lists_mismatches() {
        let fp = Fingerprint {
            engine: "mariadb".into(),
            tables: [
                ("app.a".to_string(), 3),
                ("app.b".to_string(), 5),
                ("mysql.user".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            rows: 10,
        };
        let mut got: BTreeMap<String, u64> = [("app.a".to_string(), 3), ("app.b".to_string(), 5)]
            .into_iter()
            .collect();
        let c = compare(JobKind::Mariadb, &fp, &got);
        assert!(c.passed, "{}", c.detail);
        got.insert("app.b".into(), 2);
        got.insert("app.c".into(), 1);
        let c = compare(JobKind::Mariadb, &fp, &got);
        assert!(!c.passed);
        assert!(
            c.detail.contains("app.b: 2 rows restored, 5 dumped"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("app.c"), "{}", c.detail);
    }

    #[test]
    fn passwords_stay_out_of_argv() {
        let job = Job {
            name: "m".into(),
            kind: JobKind::Mariadb,
            paths: Vec::new(),
            exclude: Vec::new(),
            quiesce: None,
            container: Some("db".into()),
            user: None,
            password_file: None,
            database: None,
            retention: None,
            notify: None,
            origin: crate::config::JobOrigin::Config { line: 1 },
            probes: Vec::new(),
        };
        for kind in [JobKind::Postgres, JobKind::Mariadb, JobKind::Sqlite] {
            let j = Job {
                kind,
                ..job.clone()
            };
            let p = profile(&j, "topsecret123");
            assert!(!p.ready.cmd.join(" ").contains("topsecret123"));
            assert!(
                !restore_spec(&j, "/tmp/x.sql", &Target::scratch(&j))
                    .cmd
                    .join(" ")
                    .contains("topsecret123")
            );
        }
    }
}
