//! [`RunRecorder`]: the one way a command records a run. Starting it inserts the
//! `running` row and sends the start notifications; steps go through it; closing it
//! writes the result, sends success/fail notifications (global targets, and each
//! backed-up job's own) and refreshes the metrics textfile. Dropped without a close (an
//! early `?`, a panic, a task cancelled by a signal), it records the run `interrupted`,
//! so no run is ever left `running` by a live process.
//!
//! Notifications and the metrics file never fail a run (they log and carry on).

use super::session::Session;
use super::{new_run_id, now_ms};
use crate::catalog::StepDetail;
use crate::domain::RunStatus;
use crate::notify::Kind;
use std::sync::Mutex;

/// Why a run dropped without a close is interrupted: the daemon names the signal here
/// before it drops the task, so the run says what stopped it.
static STOP_REASON: Mutex<Option<String>> = Mutex::new(None);

/// Name what is stopping this process's runs (e.g. "SIGTERM").
pub fn stopping_because(signal: &str) {
    if let Ok(mut r) = STOP_REASON.lock() {
        *r = Some(format!(
            "interrupted: omk-backup was stopped by {signal} during the run"
        ));
    }
}

/// One step being recorded.
#[derive(Debug)]
pub struct Step {
    id: i64,
    job: Option<String>,
    kind: &'static str,
}

/// A job's result, for its own notification targets.
#[derive(Debug, Clone)]
struct JobEnd {
    job: String,
    status: RunStatus,
    error: Option<String>,
}

/// The run being recorded; see the module doc.
pub struct RunRecorder<'s> {
    session: &'s Session,
    id: String,
    command: &'static str,
    jobs: Mutex<Vec<JobEnd>>,
    closed: bool,
}

impl<'s> RunRecorder<'s> {
    pub async fn start(
        session: &'s Session,
        command: &'static str,
        jobs: &[String],
    ) -> anyhow::Result<RunRecorder<'s>> {
        let id = new_run_id()?;
        let trigger = session.globals.trigger.as_str();
        session.catalog.start_run(&id, command, trigger, now_ms())?;
        session.count_run();
        let rec = RunRecorder {
            session,
            id,
            command,
            jobs: Mutex::new(Vec::new()),
            closed: false,
        };
        if session.notifies() {
            let config = &session.config;
            crate::notify::send_all(config, None, Kind::Start, command, None).await;
            // A job's own ping URL hears /start too (healthchecks measures the duration).
            for j in jobs {
                crate::notify::send_all(config, Some(j), Kind::Start, command, None).await;
            }
        }
        Ok(rec)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Record the start of a step (`job` None for run-wide steps such as prune).
    pub fn step(&self, job: Option<&str>, kind: &'static str) -> anyhow::Result<Step> {
        let id = self
            .session
            .catalog
            .start_step(&self.id, job, kind, now_ms())?;
        Ok(Step {
            id,
            job: job.map(str::to_string),
            kind,
        })
    }

    /// Record how a step ended. A backup step's result also goes to its job's own
    /// notification targets when the run closes.
    pub fn finish_step(
        &self,
        step: Step,
        status: RunStatus,
        detail: Option<&StepDetail>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        self.session
            .catalog
            .finish_step(step.id, status, detail, error, now_ms())?;
        if step.kind == "backup"
            && let Some(job) = step.job
            && let Ok(mut jobs) = self.jobs.lock()
        {
            jobs.push(JobEnd {
                job,
                status,
                error: error.map(str::to_string),
            });
        }
        Ok(())
    }

    /// Record a job's backup outcome for its notifications without a catalog step (a
    /// job not attempted after a repository-wide failure).
    pub fn job_not_attempted(&self, job: &str, why: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(JobEnd {
                job: job.to_string(),
                status: RunStatus::Skipped,
                error: Some(why.to_string()),
            });
        }
    }

    /// Close the run with a command's result: `Ok` with the status (and first error)
    /// `judge` reads from it, `Err` as failed with the error's words. The result is
    /// handed back unchanged.
    pub async fn close<T>(
        self,
        res: anyhow::Result<T>,
        judge: impl FnOnce(&T) -> (RunStatus, Option<String>),
    ) -> anyhow::Result<T> {
        let (status, error) = match &res {
            Ok(t) => judge(t),
            Err(e) => (RunStatus::Failed, Some(format!("{e:#}"))),
        };
        self.finish(status, error.as_deref()).await?;
        res
    }

    /// Close the run as `status`, then notify and refresh the metrics.
    pub async fn finish(mut self, status: RunStatus, error: Option<&str>) -> anyhow::Result<()> {
        self.closed = true;
        let s = self.session;
        s.catalog.finish_run(&self.id, status, error, now_ms())?;
        if s.notifies() {
            let kind = match status {
                RunStatus::Success | RunStatus::Skipped => Kind::Success,
                _ => Kind::Fail,
            };
            crate::notify::send_all(&s.config, None, kind, self.command, error).await;
            let jobs = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
            for j in &jobs {
                let k = if j.status == RunStatus::Success {
                    Kind::Success
                } else {
                    Kind::Fail
                };
                let (cfg, cmd, err) = (&s.config, self.command, j.error.as_deref());
                crate::notify::send_all(cfg, Some(&j.job), k, cmd, err).await;
            }
        }
        refresh_metrics(s);
        Ok(())
    }

    /// Close the run (and its open steps) as interrupted, saying why.
    pub fn interrupt(mut self, why: &str) -> anyhow::Result<()> {
        self.closed = true;
        self.session
            .catalog
            .interrupt_run(&self.id, why, now_ms())?;
        refresh_metrics(self.session);
        Ok(())
    }
}

impl Drop for RunRecorder<'_> {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let why = STOP_REASON
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| {
                "interrupted: the run stopped before it finished (an error or a cancelled task)"
                    .into()
            });
        match self.session.catalog.interrupt_run(&self.id, &why, now_ms()) {
            Ok(()) => tracing::warn!("run {} recorded as interrupted: {why}", self.id),
            Err(e) => tracing::error!("cannot record run {} as interrupted: {e}", self.id),
        }
        refresh_metrics(self.session);
    }
}

/// Rewrite the metrics textfile (when configured) from the catalog. Never fails a run.
pub fn refresh_metrics(s: &Session) {
    if let Err(e) = crate::metrics::update(&s.config, &s.catalog, now_ms()) {
        tracing::warn!("metrics not written: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Globals;

    fn session(dir: &std::path::Path) -> Session {
        std::fs::write(dir.join("pw"), "x\n").unwrap();
        let cfg = dir.join("c.toml");
        std::fs::write(
            &cfg,
            "[repository]\nurl = \"r\"\npassword_file = \"pw\"\n[catalog]\npath = \"cat/c.db\"\n",
        )
        .unwrap();
        let g = Globals {
            config: Some(cfg),
            no_notify: true,
            ..Default::default()
        };
        Session::open_undiscovered(&g).unwrap()
    }

    #[tokio::test]
    async fn dropped_recorder_closes_the_run_interrupted_with_its_open_steps() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path());
        let id = {
            let rec = RunRecorder::start(&s, "backup", &[]).await.unwrap();
            let _step = rec.step(Some("photos"), "backup").unwrap();
            assert_eq!(
                s.catalog.run(rec.id()).unwrap().unwrap().status,
                RunStatus::Running
            );
            rec.id().to_string()
        };
        let run = s.catalog.run(&id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Interrupted);
        assert!(run.error.unwrap().contains("before it finished"));
        let step = s.catalog.last_step("photos", "backup").unwrap().unwrap();
        assert_eq!(step.status, RunStatus::Interrupted);
        assert!(s.catalog.running_runs().unwrap().is_empty());
    }

    #[tokio::test]
    async fn close_records_an_error_as_failed_and_hands_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path());
        let rec = RunRecorder::start(&s, "forget", &[]).await.unwrap();
        let id = rec.id().to_string();
        let res: anyhow::Result<()> = Err(anyhow::anyhow!("restic exited 1"));
        let back = rec.close(res, |_| (RunStatus::Success, None)).await;
        assert!(back.is_err());
        let run = s.catalog.run(&id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.error.as_deref(), Some("restic exited 1"));
    }
}
