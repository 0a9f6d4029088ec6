//! `omk-backup restore latest|ID --job J --target DIR`: put a job's data back.
//!
//! The snapshot comes from the catalog (the newest *good* one for `latest`); when the
//! catalog knows none — a fresh machine with only the repository — restic is asked by
//! tag. A non-empty target is refused unless `--overwrite`; a files job restores only its
//! own paths, under the target (so `/srv/photos` lands in `DIR/srv/photos`).

use super::reporter::Reporter;
use super::session::Session;
use crate::catalog::SnapshotRow;
use crate::domain::{JobKind, SnapshotState, job_tag, parse_tags};
use crate::exit::usage;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub job: String,
    pub snapshot_id: String,
    pub target: String,
    pub restored: Vec<String>,
    pub duration_ms: i64,
}

pub struct RestoreArgs<'a> {
    pub snapshot: &'a str,
    pub job: Option<&'a str>,
    pub target: &'a Path,
    pub overwrite: bool,
}

pub async fn run(
    ctx: &Session,
    a: RestoreArgs<'_>,
    reporter: &dyn Reporter,
) -> anyhow::Result<RestoreReport> {
    check_target(a.target, a.overwrite)?;
    let restic = ctx.restic().await?;
    let (job_name, snap) = pick_snapshot(ctx, &restic, a.snapshot, a.job).await?;
    let job = ctx.config.jobs.get(&job_name).ok_or_else(|| {
        usage(format!(
            "snapshot {} belongs to job `{job_name}`, which {} does not define; add the job back to the config to restore it",
            &snap[..8.min(snap.len())],
            ctx.config.file.display()
        ))
    })?;
    std::fs::create_dir_all(a.target)
        .with_context(|| format!("cannot create the restore target {}", a.target.display()))?;
    let started = super::now_ms();
    reporter.note(&format!(
        "{job_name}: restoring snapshot {} into {}",
        &snap[..8.min(snap.len())],
        a.target.display()
    ));
    let restored = match job.kind {
        JobKind::Files => {
            restic
                .restore(&snap, a.target, &job.paths)
                .await
                .with_context(|| format!("restoring {job_name}"))?;
            job.paths
                .iter()
                .map(|p| under(a.target, p).display().to_string())
                .collect()
        }
        _ => {
            let dump = ctx
                .catalog
                .dump(&snap)?
                .map(|d| d.filename)
                .unwrap_or_else(|| format!("/{job_name}"));
            restic
                .restore(&snap, a.target, &[])
                .await
                .with_context(|| format!("restoring {job_name}"))?;
            vec![under(a.target, Path::new(&dump)).display().to_string()]
        }
    };
    reporter.step_done();
    Ok(RestoreReport {
        job: job_name,
        snapshot_id: snap,
        target: a.target.display().to_string(),
        restored,
        duration_ms: super::now_ms() - started,
    })
}

fn under(target: &Path, p: &Path) -> PathBuf {
    target.join(p.strip_prefix("/").unwrap_or(p))
}

fn check_target(target: &Path, overwrite: bool) -> anyhow::Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() && !overwrite {
                return Err(usage(format!(
                    "the restore target {} is not empty; choose an empty folder, or pass --overwrite to restore over its files",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(usage(format!(
            "the restore target {} is a file, not a folder",
            target.display()
        ))),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the restore target {}: {e}",
            target.display()
        )),
    }
}

/// Resolve `latest` or an id (prefix) to (job, full snapshot id).
async fn pick_snapshot(
    ctx: &Session,
    restic: &crate::restic::Restic,
    which: &str,
    job: Option<&str>,
) -> anyhow::Result<(String, String)> {
    if which == "latest" {
        let job = match job {
            Some(j) => {
                ctx.config.select_jobs(&[j.to_string()])?;
                j.to_string()
            }
            None if ctx.config.jobs.len() == 1 => {
                ctx.config.jobs.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(usage(format!(
                    "`restore latest` needs --job when the config has several jobs ({})",
                    ctx.config.job_names()
                )));
            }
        };
        if let Some(s) = ctx.catalog.latest_good(&job)? {
            return Ok((job, s.snapshot_id));
        }
        // The catalog may be new or lost: ask the repository itself.
        let mut found = restic.snapshots(&[job_tag(&job)]).await?;
        found.sort_by(|a, b| a.time.cmp(&b.time));
        return match found.pop() {
            Some(s) => Ok((job, s.id)),
            None => Err(anyhow::anyhow!(
                "job `{job}` has no snapshot, neither in the catalog nor in the repository {}; run `omk-backup backup {job}` first",
                restic.url()
            )),
        };
    }
    let matches: Vec<SnapshotRow> = ctx.catalog.find_snapshot(which)?;
    match matches.as_slice() {
        [one] => {
            if one.state == SnapshotState::Forgotten {
                anyhow::bail!(
                    "snapshot {which} was forgotten ({}); pick another with `omk-backup snapshots`",
                    one.note.as_deref().unwrap_or("retention")
                );
            }
            if let Some(j) = job
                && j != one.job
            {
                return Err(usage(format!(
                    "snapshot {which} belongs to job `{}`, not `{j}`",
                    one.job
                )));
            }
            Ok((one.job.clone(), one.snapshot_id.clone()))
        }
        [] => {
            // Not in the catalog: maybe in the repository.
            let all = restic.snapshots(&[]).await?;
            let hits: Vec<_> = all
                .into_iter()
                .filter(|s| s.id.starts_with(which))
                .collect();
            match hits.as_slice() {
                [s] => match (parse_tags(&s.tags).0, job) {
                    (Some(j), _) => Ok((j, s.id.clone())),
                    (None, Some(j)) => Ok((j.to_string(), s.id.clone())),
                    (None, None) => Err(usage(format!(
                        "snapshot {which} carries no omk:job tag; pass --job"
                    ))),
                },
                [] => Err(usage(format!(
                    "no snapshot {which}; list them with `omk-backup snapshots`"
                ))),
                _ => Err(usage(format!(
                    "snapshot id {which} is ambiguous; give more characters"
                ))),
            }
        }
        _ => Err(usage(format!(
            "snapshot id {which} is ambiguous; give more characters"
        ))),
    }
}

/// `restore latest|ID --job J --into-container NAME --yes-overwrite-live-database`.
pub struct IntoContainerArgs<'a> {
    pub snapshot: &'a str,
    pub job: Option<&'a str>,
    pub container: &'a str,
    pub confirmed: bool,
}

/// What a restore into a running database container did.
#[derive(Debug, Clone, Serialize)]
pub struct IntoContainerReport {
    pub job: String,
    pub snapshot_id: String,
    pub container: String,
    pub passed: bool,
    /// SQLite: the restored file beside the live one (the app keeps its file open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_file: Option<String>,
    pub checks: Vec<crate::catalog::Check>,
    pub duration_ms: i64,
}

/// Load a database job's dump into a running container (the disaster path). The dump is
/// delivered with an archive PUT into the container's /tmp (checked against the digest
/// and end marker recorded at dump time before anything is loaded), loaded with errors
/// fatal, removed again, and the restored rows are compared with the fingerprint.
pub async fn into_container(
    ctx: &Session,
    a: IntoContainerArgs<'_>,
    reporter: &dyn Reporter,
) -> anyhow::Result<IntoContainerReport> {
    use crate::app::verify::database::{Target, compare, count_rows, deliver, restore_spec};
    use crate::catalog::Check;
    if !a.confirmed {
        return Err(usage(format!(
            "`restore --into-container {c}` loads the dump into the database running in `{c}`: existing tables, roles and rows in it are replaced and this cannot be undone; pass --yes-overwrite-live-database to confirm (prove the snapshot first with `omk-backup restore-test{job}`)",
            c = a.container,
            job = a.job.map(|j| format!(" {j}")).unwrap_or_default()
        )));
    }
    let restic = ctx.restic().await?;
    let (job_name, snap) = pick_snapshot(ctx, &restic, a.snapshot, a.job).await?;
    let job = ctx
        .config
        .jobs
        .get(&job_name)
        .ok_or_else(|| usage(format!("job `{job_name}` is not in the config")))?
        .clone();
    if !job.kind.is_database() {
        return Err(usage(format!(
            "`{job_name}` is a {} job: --into-container restores database dumps; use --target DIR",
            job.kind
        )));
    }
    let Some(dump) = ctx.catalog.dump(&snap)? else {
        anyhow::bail!(
            "the catalog holds no digest of snapshot {} (found by `catalog rebuild`?), so it cannot be checked before it replaces a live database; restore it with `--target DIR` and load it by hand",
            &snap[..8.min(snap.len())]
        );
    };
    let docker = ctx.docker().await?;
    let info = docker.inspect(a.container).await?;
    if info.status != "running" {
        anyhow::bail!(
            "container `{}` is {}: the database must run to load the dump; start it (`docker start {}`) and wait until it accepts connections",
            a.container,
            info.status,
            a.container
        );
    }
    let started = super::now_ms();
    let password = match &job.password_file {
        Some(p) => Some(
            crate::secret::read_password_file(p)
                .with_context(|| format!("{job_name}: password_file {}", p.display()))?,
        ),
        None => None,
    };
    let mut env = Vec::new();
    let db_user = match job.kind {
        JobKind::Postgres => {
            if let Some(pw) = &password {
                env.push(format!("PGPASSWORD={}", pw.expose()));
            }
            job.user.clone().unwrap_or_else(|| "postgres".into())
        }
        _ => {
            if let Some(pw) = &password {
                env.push(format!("MYSQL_PWD={}", pw.expose()));
            }
            job.user.clone().unwrap_or_else(|| "root".into())
        }
    };
    let sqlite_path = job
        .database
        .as_ref()
        .map(|d| format!("{d}.restored"))
        .unwrap_or_else(|| "/tmp/omk-restored.db".into());
    let target = Target {
        db_user,
        sqlite_path: sqlite_path.clone(),
        env,
        exec_user: if job.kind == JobKind::Sqlite {
            job.user.clone()
        } else {
            None
        },
        live: true,
    };
    // The drop file carries omk-restore in its name: easy to spot if anything is left.
    let file = format!("omk-restore-{}.sql", super::new_run_id()?);
    reporter.note(&format!(
        "{job_name}: delivering snapshot {} into {}:/tmp/{file}",
        &snap[..8.min(snap.len())],
        a.container
    ));
    let delivered = deliver(&docker, &restic, job.kind, &info.name, &snap, &dump, &file).await;
    let remove_file = || async {
        let rm = crate::docker::ExecSpec {
            cmd: vec!["rm".into(), "-f".into(), format!("/tmp/{file}")],
            env: Vec::new(),
            user: Some("0".into()),
        };
        if let Err(e) = docker
            .exec_output(&info.id, &rm, std::time::Duration::from_secs(60))
            .await
        {
            tracing::warn!("could not remove /tmp/{file} from {}: {e}", a.container);
        }
    };
    let mut checks: Vec<Check> = match delivered {
        Ok(c) => c,
        Err(e) => {
            remove_file().await;
            return Err(e);
        }
    };
    let report = |checks: Vec<Check>| IntoContainerReport {
        job: job_name.clone(),
        snapshot_id: snap.clone(),
        container: a.container.to_string(),
        passed: checks.iter().all(|c| c.passed),
        restored_file: (job.kind == JobKind::Sqlite).then(|| sqlite_path.clone()),
        checks,
        duration_ms: super::now_ms() - started,
    };
    if let Some(refused) = checks
        .iter()
        .find(|c| !c.passed && c.name == "dump-delivery")
        && refused.detail.contains("HTTP 403")
    {
        remove_file().await;
        anyhow::bail!(
            "{}. A least-privilege proxy allows archive uploads only into omk-restore-* scratch containers: for this restore, allow `PUT /containers/{}/archive` temporarily (or point [docker] host / DOCKER_HOST at the plain socket for this one command), then take the rule away again; docs/runbook-restore.md has the steps",
            refused.detail,
            a.container
        );
    }
    if !checks.iter().all(|c| c.passed) {
        remove_file().await;
        return Ok(report(checks));
    }
    reporter.note(&format!(
        "{job_name}: loading the dump into {}",
        a.container
    ));
    let spec = restore_spec(&job, &format!("/tmp/{file}"), &target);
    let loaded = crate::app::verify::database::run_long(
        &docker,
        &info.id,
        &spec,
        std::time::Duration::from_secs(6 * 3600),
    )
    .await;
    remove_file().await;
    match loaded {
        Ok((0, _)) => checks.push(Check::new("restore", true, "loaded with errors fatal")),
        Ok((code, err)) => {
            checks.push(Check::new(
                "restore",
                false,
                format!("loading the dump failed (exit code {code}): {}", err.trim()),
            ));
            return Ok(report(checks));
        }
        Err(e) => {
            checks.push(Check::new(
                "restore",
                false,
                format!("loading the dump failed: {e}"),
            ));
            return Ok(report(checks));
        }
    }
    match dump.fingerprint.clone() {
        Some(fp) => match count_rows(&docker, &info.id, &job, &target).await {
            Ok(rows) => checks.push(compare(job.kind, &fp, &rows)),
            Err(e) => checks.push(Check::new(
                "fingerprint",
                false,
                format!("cannot count the restored rows: {e:#}"),
            )),
        },
        None => checks.push(Check::skipped(
            "fingerprint",
            "no fingerprint was recorded at dump time: rows not compared",
        )),
    }
    if !job.probes.is_empty() {
        checks
            .push(crate::app::verify::database::run_probes(&docker, &info.id, &job, &target).await);
    }
    reporter.step_done();
    Ok(report(checks))
}
