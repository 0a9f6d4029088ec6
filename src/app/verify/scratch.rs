//! Scratch containers' lifecycle: their name and labels, the create spec built from an
//! engine's [`Profile`], a guard that removes the container on every path (end, error,
//! panic, cancellation), leftovers of crashed runs removed at the next locking command,
//! the wait until the engine inside accepts connections, and the restore lab: scratch
//! containers on a separate engine, the source image copied there when missing.

use crate::app::reporter::Reporter;
use crate::app::session::{LAB_ENGINE, Session};
use crate::catalog::Check;
use crate::config::{Job, ScratchLimits};
use crate::docker::{ContainerState, Docker, DockerError, ExecSpec, ScratchSpec};
use crate::engine::Profile;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The label every scratch container carries (and leftovers are found by).
pub const SCRATCH_LABEL: &str = "omk-backup.scratch";
/// The label naming the run that made a scratch container.
pub const RUN_LABEL: &str = "omk-backup.run";
/// How long the engine may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(180);

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

/// The create spec of job's scratch container: the source image, the engine's profile,
/// the configured limits, the image's volumes on tmpfs, labels naming run and job.
pub fn spec(
    job: &Job,
    run_id: &str,
    image: &str,
    volumes: &[String],
    limits: ScratchLimits,
    prof: &Profile,
) -> ScratchSpec {
    let mut labels = HashMap::new();
    labels.insert(SCRATCH_LABEL.to_string(), "1".to_string());
    labels.insert(RUN_LABEL.to_string(), run_id.to_string());
    labels.insert("omk-backup.job".to_string(), job.name.clone());
    ScratchSpec {
        name: scratch_name(&job.name, run_id),
        image: image.to_string(),
        env: prof.env.clone(),
        labels,
        entrypoint: prof.entrypoint.clone(),
        cmd: prof.cmd.clone(),
        tmpfs: volumes.to_vec(),
        cap_add: prof.caps.iter().map(|c| c.to_string()).collect(),
        memory_bytes: limits.memory_mb << 20,
        nano_cpus: (limits.cpus * 1e9) as i64,
        pids_limit: limits.pids,
    }
}

/// Removes the scratch container when dropped (error paths, panics, cancellation) on a
/// helper thread; the normal path calls [`Guard::remove`]. Made before the create call:
/// removing a container that was never made is fine.
pub struct Guard {
    docker: Docker,
    name: String,
    done: bool,
}

impl Guard {
    pub fn new(docker: &Docker, name: &str) -> Guard {
        Guard {
            docker: docker.clone(),
            name: name.to_string(),
            done: false,
        }
    }

    pub async fn remove(mut self) -> Result<(), DockerError> {
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

/// Remove scratch containers left by our own runs (killed mid-test) on `engine` (the
/// lab, or a job engine: [`Session::scratch_engines`]). Called with the run lock held, so none of this catalog's runs is alive; containers of runs this
/// catalog does not know belong to another installation and are left alone.
pub async fn remove_leftovers(
    ctx: &Session,
    engine: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<usize> {
    let docker = ctx.docker_on(engine).await?;
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

/// The engine `job`'s scratch container runs on: the job's own (`source`), or the
/// restore lab (`[restore_test] docker`), which gets the source image copied over when
/// it lacks it (exported from the job's engine, a read, and loaded into the lab), so
/// the production proxy needs no create, start, delete or archive rights. `None` with a
/// failed check when the lab cannot be had.
pub(super) async fn engine_for(
    ctx: &Session,
    job: &Job,
    source: &Docker,
    image: &str,
    t: &mut super::common::Running,
    reporter: &dyn Reporter,
) -> Option<Docker> {
    if ctx.config.restore_test_docker.is_none() {
        return Some(source.clone());
    }
    let mut fail = |name: &str, detail: String| {
        t.checks.push(Check::new(name, false, detail));
        None
    };
    let lab = match ctx.docker_on(LAB_ENGINE).await {
        Ok(d) => d,
        Err(e) => return fail("scratch-container", format!("the restore lab: {e:#}")),
    };
    let short = image.trim_start_matches("sha256:");
    let short = &short[..12.min(short.len())];
    match lab.has_image(image).await {
        Ok(true) => {
            t.checks.push(Check::new(
                "lab-image",
                true,
                format!("image {short} is already on the restore lab {}", lab.host()),
            ));
            return Some(lab);
        }
        Ok(false) => {}
        Err(e) => return fail("lab-image", format!("the restore lab {}: {e}", lab.host())),
    }
    reporter.note(&format!(
        "{}: copying image {short} from engine `{}` to the restore lab {}",
        job.name,
        job.engine,
        lab.host()
    ));
    let started = Instant::now();
    match source.copy_image_to(image, &lab).await {
        Ok(bytes) => {
            t.checks.push(Check::new(
                "lab-image",
                true,
                format!(
                    "image {short} copied from engine `{}` to the restore lab {} ({:.1} MB in {:.1} s)",
                    job.engine,
                    lab.host(),
                    bytes as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                ),
            ));
            Some(lab)
        }
        Err(e) => fail(
            "lab-image",
            format!(
                "cannot copy image {short} from engine `{}` to the restore lab: {e}; the job engine's proxy must allow GET /images/{{id}}/get and the lab's POST /images/load (docs/engines.md)",
                job.engine
            ),
        ),
    }
}

/// Wait until `ready` succeeds in `name`; the error says why not (the container
/// stopped, or the engine never answered).
pub async fn wait_ready(docker: &Docker, name: &str, ready: &ExecSpec) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut last: String;
    loop {
        match docker.inspect(name).await {
            Ok(s) if s.state != ContainerState::Running => {
                return Err(format!(
                    "the scratch container {name} is {} (exit code {}) instead of running: the engine did not start with these limits; run the image by hand with the same settings (docs/restore-tests.md) to see why",
                    s.state,
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
            Ok((code, _, err)) => {
                last = format!("exit code {code}: {}", super::deliver::last_lines(&err, 2))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_proxy_rule() {
        assert_eq!(
            scratch_name("immich db", "20261127T2345Z-ab12"),
            "omk-restore-immich-db-20261127T2345Z-ab12"
        );
    }
}
