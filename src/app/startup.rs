//! Opening the [`Session`] a command needs, with what a crashed run left behind put
//! right first: containers it left paused or stopped are resumed, its run is closed as
//! interrupted (its snapshots recorded `unverified`), and scratch containers of a killed
//! restore test are removed. Commands never open a session themselves: the `cli` (or
//! the scheduler's task runner) opens one with the access the command needs.

use super::quiesce::{self, Recovered};
use super::reporter::Reporter;
use super::session::{Session, ensure_dir, load_config};
use super::{Globals, reconcile, verify};
use crate::lock;

/// A session holding the run lock (commands that change things), after crash recovery.
pub async fn locked(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<Session> {
    Ok(locked_recovering(g, reporter).await?.0)
}

/// [`locked`], also handing back the containers recovery resumed (`omk-backup recover`).
pub async fn locked_recovering(
    g: &Globals,
    reporter: &dyn Reporter,
) -> anyhow::Result<(Session, Vec<Recovered>)> {
    let config = load_config(g)?;
    ensure_dir(&config.catalog_path, &config.file)?;
    let lock = lock::acquire(&config.catalog_path)?;
    let mut s = Session::from_config(g, config)?;
    s.hold(lock);
    let recovered = after_crash(&s, reporter).await?;
    s.discover(reporter).await;
    Ok((s, recovered))
}

/// A session without the run lock (a running backup does not block readers or a
/// restore). If a crashed run is pending and nobody holds the lock, take it for a moment
/// and reconcile first, so what we show is true; if somebody holds it, that run is alive
/// and nothing needs reconciling: never wait, never fail for it.
pub async fn reconciled(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<Session> {
    let mut s = Session::from_config(g, load_config(g)?)?;
    if !s.catalog.running_runs()?.is_empty()
        && let Ok(lock) = lock::try_acquire(&s.config.catalog_path)?
    {
        s.hold(lock);
        after_crash(&s, reporter).await?;
        s.release();
    }
    s.discover(reporter).await;
    Ok(s)
}

/// What a SIGKILLed run left behind, put right at `daemon` start and by every
/// `run-due` (even with nothing due), so a paused app does not wait for the next
/// scheduled run. A live run holding the lock owns its containers: skip. Never fails
/// the caller: a problem is a warning, and the journal stays open for the next try.
pub async fn recover_now(g: &Globals, reporter: &dyn Reporter) {
    if let Err(e) = try_recover(g, reporter).await {
        tracing::warn!("crash recovery at start: {e:#}");
    }
}

async fn try_recover(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<()> {
    let config = load_config(g)?;
    ensure_dir(&config.catalog_path, &config.file)?;
    let Ok(lock) = lock::try_acquire(&config.catalog_path)? else {
        tracing::debug!("crash recovery skipped: a live run holds the lock");
        return Ok(());
    };
    let mut s = Session::from_config(g, config)?;
    s.hold(lock);
    let pending = !s.catalog.open_quiesces()?.is_empty() || !s.catalog.running_runs()?.is_empty();
    if pending {
        after_crash(&s, reporter).await?;
    }
    s.release();
    Ok(())
}

/// Whether any Docker endpoint is known: `[docker] host`, `$DOCKER_HOST`, database or
/// quiesce jobs (they need Docker), label discovery.
fn docker_known(config: &crate::config::Config) -> bool {
    let env_host = std::env::var_os("DOCKER_HOST").is_some_and(|h| !h.is_empty());
    let jobs = config
        .jobs
        .values()
        .any(|j| j.kind.is_database() || j.quiesce.is_some());
    config.docker_host.is_some() || env_host || jobs || super::discover::wanted(config)
}

/// Put right what a crashed run left behind; only with the run lock held.
async fn after_crash(s: &Session, reporter: &dyn Reporter) -> anyhow::Result<Vec<Recovered>> {
    // Containers left paused/stopped by a crashed run come back first, before anything
    // that may fail (restic, the catalog). Docker being unreachable must not block
    // commands that do not need it: warn, and leave the journal open for the next
    // command or `omk-backup recover`.
    let recovered = match quiesce::recover(s, reporter).await {
        Ok(done) => done,
        Err(e) => {
            reporter.note(&format!("warning: {e:#}"));
            Vec::new()
        }
    };
    reconcile::after_crash(s, reporter).await?;
    // Scratch containers of restore tests a killed run left behind. Only when the
    // config has database jobs or asks for Docker (others may have no Docker at all);
    // a failure here must not block the command.
    // Every engine scratch containers run on (the lab, or each job engine).
    for engine in s.scratch_engines() {
        if engine == super::session::LOCAL_ENGINE && !docker_known(&s.config) {
            continue;
        }
        if let Err(e) = verify::database::remove_leftovers(s, &engine, reporter).await {
            // An unreachable Docker is said once, by discovery or the jobs that need it.
            if s.docker_down(&engine) {
                tracing::debug!(
                    "could not look for leftover scratch containers on {engine}: {e:#}"
                );
                s.docker_failure_unsaid(&engine);
            } else {
                tracing::warn!("could not look for leftover scratch containers on {engine}: {e:#}");
            }
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::reporter::Silent;
    use crate::domain::RunStatus;

    #[tokio::test]
    async fn a_reader_beside_a_live_run_neither_fails_nor_reconciles_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "x\n").unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "[repository]\nurl = \"r\"\npassword_file = \"pw\"\n[docker]\ndiscover = false\n",
        )
        .unwrap();
        let g = Globals {
            config: Some(cfg),
            no_notify: true,
            ..Default::default()
        };
        // A live run: its row says running and its process holds the lock.
        let writer = Session::open_undiscovered(&g).unwrap();
        let held = lock::acquire(&writer.config.catalog_path).unwrap();
        writer.catalog.start_run("r1", "backup", "cli", 1).unwrap();
        let reader = reconciled(&g, &Silent)
            .await
            .expect("a reader never fails for the lock");
        assert!(!reader.holds_lock());
        assert_eq!(
            reader.catalog.run("r1").unwrap().unwrap().status,
            RunStatus::Running,
            "a live run is not reconciled"
        );
        drop(held);
    }
}
