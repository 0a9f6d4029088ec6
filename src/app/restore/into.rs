//! `restore … --into-container NAME`: a database job's dump loaded into a running
//! container (the disaster path), checked before and after like a restore test.

use super::*;

/// `restore latest|ID --job J --into-container NAME --yes-overwrite-live-database`.
pub struct IntoContainerArgs<'a> {
    pub snapshot: &'a str,
    pub job: Option<&'a str>,
    pub container: &'a str,
    pub confirmed: bool,
    /// Hand out a snapshot nobody vouched for (`--allow-unverified`).
    pub allow_unverified: bool,
    /// `--host`: another host's dump (disaster recovery on another machine).
    pub host: Option<&'a str>,
    /// `--engine`: the engine running `container` (default: the job's).
    pub engine: Option<&'a str>,
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
    pub checks: Vec<Check>,
    pub duration_ms: i64,
}

/// Load a database job's dump into a running container (the disaster path). The dump is
/// delivered with an archive PUT into the container's /tmp (checked against the digest
/// and end marker recorded at dump time before anything is loaded), loaded with errors
/// fatal, removed again, and the restored rows are compared with the fingerprint. A
/// proxy refusing the upload is a set-up problem (exit 2) whose message says which rule
/// to allow for this one restore.
pub async fn into_container(
    ctx: &Session,
    a: IntoContainerArgs<'_>,
    reporter: &dyn Reporter,
) -> anyhow::Result<IntoContainerReport> {
    if !a.confirmed {
        return Err(usage(format!(
            "`restore --into-container {c}` loads the dump into the database running in `{c}`: existing tables, roles and rows in it are replaced and this cannot be undone; pass --yes-overwrite-live-database to confirm (prove the snapshot first with `omk-backup restore-test{job}`)",
            c = a.container,
            job = a.job.map(|j| format!(" {j}")).unwrap_or_default()
        )));
    }
    let (restic, foreign) = restic_for_host(ctx.restic().await?, a.host)?;
    let pick = Pick {
        foreign,
        allow_unverified: a.allow_unverified,
    };
    let (job_name, snap) = pick_snapshot(ctx, &restic, a.snapshot, a.job, pick).await?;
    let job = ctx
        .config
        .jobs
        .get(&job_name)
        .ok_or_else(|| usage(format!("job `{job_name}` is not in the config")))?
        .clone();
    let Some(engine) = engine::for_kind(job.kind) else {
        return Err(usage(format!(
            "`{job_name}` is a {} job: --into-container restores database dumps; use --target DIR",
            job.kind
        )));
    };
    let Some(dump) = ctx.catalog.dump(&snap)? else {
        anyhow::bail!(
            "the catalog holds no digest of snapshot {} (found by `catalog rebuild`?), so it cannot be checked before it replaces a live database; restore it with `--target DIR` and load it by hand",
            short(&snap)
        );
    };
    let (docker, info) = live_container(ctx, a.engine.unwrap_or(&job.engine), a.container).await?;
    if info.state != ContainerState::Running {
        anyhow::bail!(
            "container `{}` is {}: the database must run to load the dump; start it (`docker start {}`) and wait until it accepts connections",
            a.container,
            info.state,
            a.container
        );
    }
    let started = super::super::now_ms();
    let live = Live {
        docker: &docker,
        info: &info,
        engine,
        target: engine.live_target(&job, engine::client_env(engine, &job)?),
        // The drop file carries omk-restore in its name: easy to spot if anything is left.
        file: format!("omk-restore-{}.sql", super::super::new_run_id()?),
    };
    reporter.note(&format!(
        "{job_name}: delivering snapshot {} into {}:{DROP_DIR}/{}",
        short(&snap),
        a.container,
        live.file
    ));
    let checks = live.restore(&restic, &job, &snap, &dump, reporter).await;
    live.remove_file().await;
    let checks = checks?;
    reporter.step_done();
    Ok(IntoContainerReport {
        job: job_name,
        snapshot_id: snap,
        container: a.container.to_string(),
        passed: checks.iter().all(|c| c.passed),
        restored_file: live.target.restored_file.clone(),
        checks,
        duration_ms: super::super::now_ms() - started,
    })
}

/// The engine `engine` (`--engine`, else the job's) and `container` inspected on it.
async fn live_container(
    ctx: &Session,
    engine: &str,
    container: &str,
) -> anyhow::Result<(Docker, ContainerInfo)> {
    if !ctx.config.engine_names().iter().any(|e| e == engine) {
        return Err(usage(format!(
            "--engine {engine}: {} defines no such engine (the engines are: {}); add [engines.{engine}] with docker = \"tcp://HOST:PORT\"",
            ctx.config.file.display(),
            ctx.config.engine_names().join(", ")
        )));
    }
    let docker = ctx.docker_on(engine).await?;
    let info = docker.inspect(container).await.map_err(|e| {
        anyhow::Error::new(e).context(format!("container `{container}` on engine `{engine}`"))
    })?;
    Ok((docker, info))
}

/// A live database container a dump is loaded into.
struct Live<'a> {
    docker: &'a Docker,
    info: &'a ContainerInfo,
    engine: &'static dyn Engine,
    target: Target,
    /// The drop file's name under [`DROP_DIR`].
    file: String,
}

impl Live<'_> {
    /// Deliver, load, compare, probe; stops at the first failed step.
    async fn restore(
        &self,
        restic: &Restic,
        job: &Job,
        snap: &str,
        dump: &DumpRow,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Vec<Check>> {
        let (docker, engine, target) = (self.docker, self.engine, &self.target);
        let name = &self.info.name;
        let delivered =
            deliver::deliver(docker, restic, engine, job, name, snap, dump, &self.file).await?;
        if let Some(refused) = delivered.refused {
            return Err(anyhow::Error::new(refused).context(format!(
                "a least-privilege proxy allows archive uploads only into omk-restore-* scratch containers: for this restore, allow `PUT /containers/{name}/archive` temporarily (or point [docker] host / DOCKER_HOST at the plain socket for this one command), then take the rule away again; docs/runbook-restore.md has the steps"
            )));
        }
        let mut checks = delivered.checks;
        if !checks.iter().all(|c| c.passed) {
            return Ok(checks);
        }
        reporter.note(&format!("{}: loading the dump into {name}", job.name));
        let id = &self.info.id;
        let path = format!("{DROP_DIR}/{}", self.file);
        let loaded = deliver::load(docker, id, engine, job, &path, target).await;
        let ok = loaded.passed;
        checks.push(loaded);
        if !ok {
            return Ok(checks);
        }
        // The catalog parsed the fingerprint on read (a damaged one is an error there).
        checks.push(match &dump.fingerprint {
            Some(fp) => deliver::rows(docker, id, engine, job, target, fp).await,
            None => Check::skipped(
                "fingerprint",
                "no fingerprint was recorded at dump time: rows not compared",
            ),
        });
        if !job.probes.is_empty() {
            checks.push(deliver::probes(docker, id, engine, job, target).await);
        }
        Ok(checks)
    }

    /// Remove the drop file (best effort: a warning names it when it stays).
    async fn remove_file(&self) {
        let rm = ExecSpec {
            cmd: vec![
                "rm".into(),
                "-f".into(),
                format!("{DROP_DIR}/{}", self.file),
            ],
            env: Vec::new(),
            user: Some("0".into()),
        };
        let within = std::time::Duration::from_secs(60);
        if let Err(e) = self.docker.exec_output(&self.info.id, &rm, within).await {
            tracing::warn!(
                "could not remove {DROP_DIR}/{} from {}: {e}",
                self.file,
                self.info.name
            );
        }
    }
}
