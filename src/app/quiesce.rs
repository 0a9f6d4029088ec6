//! Quiesce around a files job (pause/unpause or stop/start a container) and recovery of
//! containers a crashed run left quiesced.
//!
//! Invariants: the journal row is committed *before* the container is touched, and its
//! `state_before` is recorded before we pause or stop; only a container that was
//! `running` is quiesced (one already paused or stopped is left as it was); it is
//! resumed as soon as restic has captured the data and on every error path. Drop does
//! not run on SIGKILL, so recovery (at the start of every locking command and in
//! `omk-backup recover`) resumes what the journal says is still quiesced — only when the
//! container by that name is still the one we quiesced (same id): a recreated container
//! is reported, never started or unpaused blindly. The journal names the engine the
//! container runs on, so recovery resumes it there.

use super::now_ms;
use super::reporter::Reporter;
use super::session::Session;
use crate::catalog::QuiesceRow;
use crate::config::{Job, Quiesce};
use crate::docker::{ContainerInfo, ContainerState, Docker, DockerError};
use crate::domain::QuiesceMode;
use crate::fault;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How often a transient Docker error is retried when resuming.
const RESUME_TRIES: u32 = 5;

/// A container we may have quiesced; give it back to [`resume`]. If it is dropped
/// without that (a panic, a cancelled future), its `Drop` resumes the container on a
/// helper thread; the journal stays open and the next recovery closes it.
#[derive(Debug)]
pub struct Quiesced {
    journal: i64,
    name: String,
    mode: QuiesceMode,
    touched: bool,
    since: Instant,
    docker: Docker,
}

impl Drop for Quiesced {
    fn drop(&mut self) {
        if !self.touched {
            return;
        }
        // By name: least-privilege proxy rules name the containers (`proxy-rules`).
        let (docker, id, mode) = (self.docker.clone(), self.name.clone(), self.mode);
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(resume_with_retries(&docker, &id, mode)).is_ok(),
                Err(_) => false,
            }
        });
        let ok = worker.join().unwrap_or(false);
        tracing::warn!(
            "container {} was still quiesced when its guard was dropped; resumed: {ok}",
            self.name
        );
    }
}

/// Quiesce `q.container` for `job` (a no-op, journaled, when it is not running).
pub async fn quiesce(
    ctx: &Session,
    docker: &Docker,
    run_id: &str,
    job: &Job,
    q: &Quiesce,
    reporter: &dyn Reporter,
) -> anyhow::Result<Quiesced> {
    let journal = ctx.catalog.journal_quiesce(
        run_id,
        &job.name,
        &job.engine,
        &q.container,
        q.mode.as_str(),
        now_ms(),
    )?;
    let info = inspect_to_quiesce(ctx, docker, journal, job, q).await?;
    ctx.catalog
        .journal_before(journal, &info.id, info.state.as_str())?;
    let mut qd = Quiesced {
        journal,
        name: q.container.clone(),
        mode: q.mode,
        touched: false,
        since: Instant::now(),
        docker: docker.clone(),
    };
    if info.state != ContainerState::Running {
        let note = format!("was {} before the run: left as it was", info.state);
        ctx.catalog
            .journal_state(journal, "untouched", None, Some(&note), now_ms())?;
        reporter.note(&format!("{}: container {} {note}", job.name, q.container));
        return Ok(qd);
    }
    qd.touched = true;
    qd.since = Instant::now();
    let done = match q.mode {
        // By name, as inspected just now: proxy rules name the containers they allow.
        QuiesceMode::Pause => docker.pause(&q.container).await,
        QuiesceMode::Stop => docker.stop(&q.container, 60).await,
    };
    if let Err(e) = done {
        let msg = e.to_string();
        if matches!(
            e,
            DockerError::Refused { .. } | DockerError::NotFound { .. }
        ) {
            // Refused before anything happened: the container was not touched.
            qd.touched = false;
            ctx.catalog
                .journal_state(journal, "failed", None, Some(&msg), now_ms())?;
        } else {
            // A stop may have half-happened: try to bring it back before failing.
            let _ = resume(ctx, docker, qd, reporter).await;
        }
        // The refusal's own words (with the rule to allow) follow once, as the cause.
        return Err(anyhow::Error::new(e).context(format!(
            "cannot {} container {}",
            q.mode.as_str(),
            q.container
        )));
    }
    ctx.catalog
        .journal_state(journal, "quiesced", None, None, now_ms())?;
    reporter.note(&format!(
        "{}: {} container {}",
        job.name,
        quiesced_word(q.mode),
        q.container
    ));
    fault::point(fault::WHILE_QUIESCED);
    Ok(qd)
}

/// Inspect the container about to be quiesced; a failure closes its journal entry.
async fn inspect_to_quiesce(
    ctx: &Session,
    docker: &Docker,
    journal: i64,
    job: &Job,
    q: &Quiesce,
) -> anyhow::Result<ContainerInfo> {
    match docker.inspect(&q.container).await {
        Ok(i) => Ok(i),
        Err(e) => {
            let msg = e.to_string();
            ctx.catalog
                .journal_state(journal, "failed", None, Some(&msg), now_ms())?;
            Err(anyhow::Error::new(e).context(format!(
                "{}: cannot inspect the container to quiesce",
                job.name
            )))
        }
    }
}

/// What a quiesced container is: "paused" or "stopped".
fn quiesced_word(mode: QuiesceMode) -> &'static str {
    if mode == QuiesceMode::Pause {
        "paused"
    } else {
        "stopped"
    }
}

/// Give the container back; returns the quiesce window in milliseconds.
pub async fn resume(
    ctx: &Session,
    docker: &Docker,
    mut q: Quiesced,
    reporter: &dyn Reporter,
) -> anyhow::Result<Option<i64>> {
    if !q.touched {
        return Ok(None);
    }
    // From here on this function owns the outcome: the guard stands down.
    q.touched = false;
    match resume_with_retries(docker, &q.name, q.mode).await {
        Ok(()) => {
            let window = q.since.elapsed().as_millis() as i64;
            ctx.catalog
                .journal_state(q.journal, "resumed", Some(window), None, now_ms())?;
            reporter.note(&format!("resumed container {} after {window} ms", q.name));
            Ok(Some(window))
        }
        Err(e) => {
            let note = format!("resume failed: {e}");
            ctx.catalog
                .journal_state(q.journal, "quiesced", None, Some(&note), now_ms())?;
            Err(anyhow::Error::new(e).context(format!(
                "container {} is still {}: run `omk-backup recover` once Docker answers",
                q.name,
                quiesced_word(q.mode)
            )))
        }
    }
}

async fn resume_with_retries(
    docker: &Docker,
    id: &str,
    mode: QuiesceMode,
) -> Result<(), DockerError> {
    let mut attempt = 0;
    loop {
        let r = match mode {
            QuiesceMode::Pause => docker.unpause(id).await,
            QuiesceMode::Stop => docker.start(id).await,
        };
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && attempt + 1 < RESUME_TRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What recovery did with one journal entry.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub job: String,
    pub container: String,
    pub run_id: String,
    /// resumed, untouched, already-running, recreated, gone, failed
    pub action: String,
    pub detail: String,
}

/// Resume containers that dead runs left quiesced, each on the engine its journal entry
/// names. Without open journal entries this does not contact Docker at all; an engine
/// that cannot be reached leaves its entries open (the error names it) and the other
/// engines' containers are still resumed.
pub async fn recover(ctx: &Session, reporter: &dyn Reporter) -> anyhow::Result<Vec<Recovered>> {
    let open = ctx.catalog.open_quiesces()?;
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_engine: std::collections::BTreeMap<String, Vec<QuiesceRow>> = Default::default();
    for row in open {
        by_engine.entry(row.engine.clone()).or_default().push(row);
    }
    let mut out = Vec::new();
    let mut down = Vec::new();
    for (engine, rows) in by_engine {
        let docker = match ctx.docker_on(&engine).await {
            Ok(d) => d,
            Err(e) => {
                down.push(e.context(format!(
                    "{} container(s) on engine `{engine}` may still be paused or stopped by an interrupted run",
                    rows.len()
                )));
                continue;
            }
        };
        for row in rows {
            let r = recover_one(ctx, &docker, &row).await?;
            reporter.note(&format!(
                "recover: {} ({}): {} — {}",
                r.container, r.job, r.action, r.detail
            ));
            out.push(r);
        }
    }
    match down.into_iter().next() {
        // Said after the reachable engines' containers are back.
        Some(e) if out.is_empty() => Err(e),
        Some(e) => {
            reporter.note(&format!("warning: {e:#}"));
            Ok(out)
        }
        None => Ok(out),
    }
}

async fn recover_one(
    ctx: &Session,
    docker: &Docker,
    row: &QuiesceRow,
) -> anyhow::Result<Recovered> {
    let mk = |action: &str, detail: String| recovered(row, action, detail);
    let close = |state: &str, note: &str, window: Option<i64>| {
        ctx.catalog
            .journal_state(row.id, state, window, Some(note), now_ms())
    };
    let (Some(before), Some(old_id)) = (&row.state_before, &row.container_id) else {
        let note = "the run ended before it inspected the container: never touched";
        close("untouched", note, None)?;
        return Ok(mk("untouched", note.into()));
    };
    if ContainerState::parse(before) != ContainerState::Running {
        let note = format!("was {before} before the run: left as it was");
        close("untouched", &note, None)?;
        return Ok(mk("untouched", note));
    }
    let info = match docker.inspect(&row.container).await {
        Ok(i) => i,
        Err(DockerError::NotFound { .. }) => {
            let note = "the container no longer exists: nothing to resume";
            close("failed", note, None)?;
            return Ok(mk("gone", note.into()));
        }
        Err(e) => return Err(e.into()),
    };
    if &info.id != old_id {
        let note = format!(
            "a different container now has this name (id {} instead of {}): not touched; check it by hand",
            &info.id[..12.min(info.id.len())],
            &old_id[..12.min(old_id.len())]
        );
        close("failed", &note, None)?;
        return Ok(mk("recreated", note));
    }
    let mode = if row.mode == "stop" {
        QuiesceMode::Stop
    } else {
        QuiesceMode::Pause
    };
    let needs = match (mode, info.state) {
        (_, ContainerState::Running) => false,
        (QuiesceMode::Pause, ContainerState::Paused) => true,
        (QuiesceMode::Stop, ContainerState::Exited | ContainerState::Created) => true,
        (_, other) => {
            let note = format!(
                "is {other}, which a {} does not explain: left as it is",
                row.mode
            );
            close("failed", &note, None)?;
            return Ok(mk("failed", note));
        }
    };
    if !needs {
        let note = "was already running again";
        close("resumed", note, None)?;
        return Ok(mk("already-running", note.into()));
    }
    // The name still points at the container we quiesced (checked above).
    resume_recovered(ctx, docker, row, mode).await
}

/// A journal entry's outcome.
fn recovered(row: &QuiesceRow, action: &str, detail: String) -> Recovered {
    Recovered {
        job: row.job.clone(),
        container: row.container.clone(),
        run_id: row.run_id.clone(),
        action: action.into(),
        detail,
    }
}

/// Resume a container a dead run left quiesced, and close its journal entry.
async fn resume_recovered(
    ctx: &Session,
    docker: &Docker,
    row: &QuiesceRow,
    mode: QuiesceMode,
) -> anyhow::Result<Recovered> {
    let mk = |action: &str, detail: String| recovered(row, action, detail);
    match resume_with_retries(docker, &row.container, mode).await {
        Ok(()) => {
            let note = format!(
                "{} after the run {} was interrupted",
                if mode == QuiesceMode::Pause {
                    "unpaused"
                } else {
                    "started"
                },
                row.run_id
            );
            ctx.catalog
                .journal_state(row.id, "resumed", None, Some(&note), now_ms())?;
            Ok(mk("resumed", note))
        }
        Err(e) => {
            let note = format!("resume failed: {e}");
            ctx.catalog
                .journal_state(row.id, "quiesced", None, Some(&note), now_ms())?;
            Ok(mk("failed", note))
        }
    }
}

/// `omk-backup recover`: the report of what was resumed.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    pub containers: Vec<Recovered>,
}

impl RecoverReport {
    pub fn outcome(&self) -> crate::exit::Outcome {
        super::outcome_of(&self.containers, |r| {
            matches!(r.action.as_str(), "failed" | "recreated")
        })
    }
}
