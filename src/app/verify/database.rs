//! Restore tests of database jobs in scratch containers: the flow.
//!
//! For the newest good snapshot of a postgres / mariadb / sqlite job: start a scratch
//! container `omk-restore-<job>-<run>` from the *source container's image* (by image id),
//! isolated (network `none`, `no-new-privileges`, `CapDrop ALL` plus only what the
//! engine's entrypoint needs, memory/CPU/pids limits, the image's volumes on tmpfs, no
//! binds, no ports, a fresh random password in the create body only); wait until the
//! engine answers while the dump streams in (see [`super::deliver`]: digest and end
//! marker checked on the way); load it with errors fatal; recount rows per table and
//! compare with the fingerprint recorded at dump time; run the job's probes. The scratch
//! container is always removed: at the end, on failure, on error or cancellation (a
//! guard: `restore-test` abandons a test on SIGTERM/SIGINT), and by
//! [`remove_leftovers`] at the next locking command after a crash. What differs per
//! engine comes from [`crate::engine`]; the container's lifecycle from `scratch.rs`.

use super::common::{Running, pick};
use super::deliver::{self, DROP_DIR, short};
use super::scratch::{self, Guard};
use crate::app::reporter::Reporter;
use crate::app::session::Session;
use crate::catalog::Check;
use crate::catalog::DumpRow;
use crate::config::Job;
use crate::docker::{Docker, ScratchSpec};
use crate::engine::{self, Engine, Profile};
use crate::restic::Restic;
use std::time::Instant;

pub use super::scratch::remove_leftovers;

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
    let started = Instant::now();
    let engine = engine::for_job(job)?;
    // `snap` keys the catalog's digest; `in_repo` is its id in the repository tested.
    let Some((snap, in_repo)) = pick(ctx, job, t)? else {
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
    let Some((source, image, volumes)) = source_image(ctx, job, t).await else {
        return Ok(());
    };
    // The job's engine, or the restore lab (the image copied there when missing).
    let Some(docker) = scratch::engine_for(ctx, job, &source, &image, t, reporter).await else {
        return Ok(());
    };
    let password = crate::random::hex(24)?;
    let prof = engine.scratch(job, &password);
    let spec = scratch::spec(
        job,
        run_id,
        &image,
        &volumes,
        ctx.config.scratch_limits,
        &prof,
    );
    let name = spec.name.clone();
    reporter.note(&format!("{}: starting scratch container {name}", job.name));
    let Some(guard) = start(&docker, &spec, &prof, ctx, t).await else {
        return Ok(());
    };
    let scratch = Scratch {
        docker: &docker,
        name: &name,
        engine,
        prof: &prof,
    };
    let result = scratch.run(restic, job, &in_repo, &dump, t).await;
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

/// Start the scratch container (replacing one of the same name from an earlier attempt
/// of this run id): its guard, or `None` with a failed `scratch-container` check.
async fn start(
    docker: &Docker,
    spec: &ScratchSpec,
    prof: &Profile,
    ctx: &Session,
    t: &mut Running,
) -> Option<Guard> {
    let _ = docker.remove_force(&spec.name).await;
    // The guard exists before the create call: a signal or error at any point after it
    // removes whatever was created (removing a missing container is fine).
    let guard = Guard::new(docker, &spec.name);
    if let Err(e) = docker.start_scratch(spec).await {
        let _ = guard.remove().await;
        t.checks.push(Check::new(
            "scratch-container",
            false,
            format!(
                "cannot start a scratch container from image {}: {e}",
                short_image(&spec.image)
            ),
        ));
        return None;
    }
    let limits = ctx.config.scratch_limits;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    t.checks.push(Check::new(
        "scratch-container",
        true,
        format!(
            "{} from image {} (network none, no-new-privileges, capabilities: {}, {} MiB, {} CPU, {} pids, tmpfs: {})",
            spec.name,
            short_image(&spec.image),
            if prof.caps.is_empty() { "none".to_string() } else { prof.caps.join(",") },
            limits.memory_mb,
            limits.cpus,
            limits.pids,
            list(&spec.tmpfs)
        ),
    ));
    Some(guard)
}

/// Docker, the source container's image id and the volumes it declares; `None` (with a
/// failed `scratch-container` check) when one of them cannot be had.
async fn source_image(
    ctx: &Session,
    job: &Job,
    t: &mut Running,
) -> Option<(Docker, String, Vec<String>)> {
    let mut fail = |detail: String| {
        t.checks
            .push(Check::new("scratch-container", false, detail));
        None
    };
    let Some(source) = job.container.as_deref() else {
        return fail(format!(
            "{}: no container configured, so no image to restore into",
            job.name
        ));
    };
    let docker = match ctx.docker_for(job).await {
        Ok(d) => d,
        Err(e) => return fail(format!("{e:#}")),
    };
    let image = match docker.inspect(source).await {
        Ok(s) => s.image_id,
        Err(e) => {
            return fail(format!(
                "cannot read the image of container `{source}`: {e}; the scratch container starts from the source container's image, so the source must exist (it may be stopped)"
            ));
        }
    };
    match docker.image_volumes(&image).await {
        Ok(v) => Some((docker, image, v)),
        Err(e) => fail(e.to_string()),
    }
}

/// A started scratch container and the engine in it.
struct Scratch<'a> {
    docker: &'a Docker,
    name: &'a str,
    engine: &'static dyn Engine,
    prof: &'a Profile,
}

impl Scratch<'_> {
    /// Deliver (while the engine starts), load, compare, probe.
    async fn run(
        &self,
        restic: &Restic,
        job: &Job,
        snap: &str,
        dump: &DumpRow,
        t: &mut Running,
    ) -> anyhow::Result<()> {
        let (docker, name, engine) = (self.docker, self.name, self.engine);
        // The engine starts while the dump goes in (an archive PUT needs no running
        // engine), hashed on the way.
        let file = dump.filename.trim_start_matches('/').to_string();
        let ready_start = Instant::now();
        let ready = async {
            let r = scratch::wait_ready(docker, name, &self.prof.ready).await;
            (r, ready_start.elapsed())
        };
        let delivery = deliver::deliver(docker, restic, engine, job, name, snap, dump, &file);
        let ((ready, ready_after), delivered) = tokio::join!(ready, delivery);
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
        let ok = delivered.passed();
        t.checks.extend(delivered.checks);
        if !ok {
            return Ok(());
        }
        let target = engine.scratch_target(job);
        let path = format!("{DROP_DIR}/{file}");
        let loaded = deliver::load(docker, name, engine, job, &path, &target).await;
        let ok = loaded.passed;
        t.checks.push(loaded);
        if !ok {
            return Ok(());
        }
        // The catalog parsed the fingerprint on read (a damaged one is an error there).
        match &dump.fingerprint {
            Some(fp) => t
                .checks
                .push(deliver::rows(docker, name, engine, job, &target, fp).await),
            None => t.checks.push(Check::new(
                "fingerprint",
                false,
                "no content fingerprint was recorded at dump time: rows cannot be compared",
            )),
        }
        if !job.probes.is_empty() {
            t.checks
                .push(deliver::probes(docker, name, engine, job, &target).await);
        }
        Ok(())
    }
}

fn short_image(id: &str) -> String {
    let s = id.trim_start_matches("sha256:");
    format!("sha256:{}", &s[..12.min(s.len())])
}
