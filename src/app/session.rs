//! One [`Session`] per command: the validated config with label-discovered jobs merged
//! once, the catalog, the run lock when the command needs it, one lazily connected
//! Docker per engine and one lazily detected restic per repository. Commands take
//! `&Session`; none opens the config or connects to Docker by itself, and runs are recorded
//! through `recorder::RunRecorder`, one layer up.
//!
//! Opening a session for a command that changes things (crash recovery first) is
//! `startup`'s job, one layer up; this module knows nothing about commands.

use super::Globals;
use super::reporter::Reporter;
use crate::catalog::Catalog;
use crate::config::{self, Config, Job};
use crate::docker::{Docker, DockerError};
use crate::lock::RunLock;
use crate::restic::Restic;
use anyhow::Context;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use tokio::sync::{Mutex, OnceCell};

/// The name of the Docker engine the config's `[docker] host` (or `$DOCKER_HOST`, or
/// the local socket) points at; `[engines.NAME]` adds more names.
pub use crate::config::LOCAL_ENGINE;

/// The key of the restore lab (`[restore_test] docker`) in the engine map: not a valid
/// engine name, so it never meets one.
pub const LAB_ENGINE: &str = "[restore_test] docker";

/// One Docker engine's connection: tried on first use, then kept. A failure is kept
/// too: the first use gets the whole sentence (what failed, what to do), later uses a
/// short reminder, so the command says it once.
enum Engine {
    Untried,
    Up(Docker),
    Down {
        full: String,
        short: String,
        /// Whether the full sentence reached somebody (see `docker_failure_unsaid`).
        said: bool,
    },
}

/// What label discovery found besides jobs: containers whose labels were refused (one
/// line each naming the container and label) and a discovery that could not run.
/// Either fails the runs that record a result.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub problems: Vec<String>,
    pub failed: Option<String>,
}

impl Discovery {
    /// Everything wrong, one line each (empty when discovery went fine).
    pub fn errors(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .failed
            .iter()
            .map(|e| format!("label discovery failed: {e}"))
            .collect();
        v.extend(self.problems.iter().cloned());
        v
    }
}

/// Everything one command works with.
pub struct Session {
    pub globals: Globals,
    /// The config with label-discovered jobs merged in (once, at open).
    pub config: Config,
    pub catalog: Catalog,
    lock: Option<RunLock>,
    engines: BTreeMap<String, Mutex<Engine>>,
    restic: OnceCell<Restic>,
    runs_started: Cell<u32>,
    /// Refused labels and discovery failures (see [`Discovery`]).
    pub discovery: Discovery,
}

impl Session {
    /// Read the config, open the catalog (creating its folder), merge label-discovered
    /// jobs. No lock: `startup` adds it for the commands that need it.
    pub async fn open(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<Session> {
        let mut s = Session::open_undiscovered(g)?;
        s.discover(reporter).await;
        Ok(s)
    }

    /// Config and catalog only: no Docker contact at all (daemon bookkeeping, tests).
    pub fn open_undiscovered(g: &Globals) -> anyhow::Result<Session> {
        Session::from_config(g, load_config(g)?)
    }

    /// A session over an already loaded config (no discovery yet).
    pub fn from_config(g: &Globals, config: Config) -> anyhow::Result<Session> {
        let catalog = open_catalog(&config)?;
        let mut engines: BTreeMap<String, Mutex<Engine>> = config
            .engine_names()
            .into_iter()
            .map(|n| (n, Mutex::new(Engine::Untried)))
            .collect();
        if config.restore_test_docker.is_some() {
            engines.insert(LAB_ENGINE.to_string(), Mutex::new(Engine::Untried));
        }
        Ok(Session {
            globals: g.clone(),
            config,
            catalog,
            lock: None,
            engines,
            restic: OnceCell::new(),
            runs_started: Cell::new(0),
            discovery: Discovery::default(),
        })
    }

    /// Hold the run lock for the rest of the session.
    pub fn hold(&mut self, lock: RunLock) {
        self.lock = Some(lock);
    }

    /// Give the run lock back early (a read-only command that reconciled).
    pub fn release(&mut self) {
        self.lock = None;
        // restic detected under the lock may clear stale restic locks: not any more.
        self.restic = OnceCell::new();
    }

    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }

    /// Add jobs from container labels, on every engine (the local one when a Docker
    /// host is configured). A Docker failure is one warning here, naming the engine; the
    /// jobs that need that engine fail on their own, the others run.
    pub(super) async fn discover(&mut self, reporter: &dyn Reporter) {
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for engine in super::discover::engines(&self.config) {
            match self.docker_on(&engine).await {
                Ok(d) => match super::discover::list(&engine, &d).await {
                    Ok(f) => found.push(f),
                    Err(e) => failed.push(format!("engine `{engine}`: {e:#}")),
                },
                Err(e) => failed.push(format!("engine `{engine}`: {e:#}")),
            }
        }
        let problems = super::discover::merge(&mut self.config, found, reporter);
        for p in &problems {
            reporter.note(&format!("refused: {p}"));
        }
        self.discovery.problems = problems;
        if !failed.is_empty() {
            let e = failed.join("; ");
            reporter.note(&format!("label discovery failed: {e}"));
            self.discovery.failed = Some(e);
        }
    }

    /// The jobs `names` select (all when empty), label-discovered ones included.
    pub fn jobs(&self, names: &[String]) -> anyhow::Result<Vec<Job>> {
        Ok(self
            .config
            .select_jobs(names)?
            .into_iter()
            .cloned()
            .collect())
    }

    /// The local Docker engine, connected (and its API version negotiated) on first use.
    pub async fn docker(&self) -> anyhow::Result<Docker> {
        self.docker_on(LOCAL_ENGINE).await
    }

    /// A named Docker engine, connected on first use; a failed connection is remembered
    /// so the command meets it once, not once per job.
    pub async fn docker_on(&self, engine: &str) -> anyhow::Result<Docker> {
        let cell = self.engines.get(engine).ok_or_else(|| {
            anyhow::anyhow!(
                "no Docker engine named `{engine}` in {}",
                self.config.file.display()
            )
        })?;
        let mut state = cell.lock().await;
        match &*state {
            Engine::Up(d) => return Ok(d.clone()),
            Engine::Down { full, short, said } => {
                let msg = if *said { short.clone() } else { full.clone() };
                if let Engine::Down { said, .. } = &mut *state {
                    *said = true;
                }
                anyhow::bail!("{msg}")
            }
            Engine::Untried => {}
        }
        let host = if engine == LAB_ENGINE {
            self.config.restore_test_docker.as_deref()
        } else {
            self.config.engine_host(engine)
        };
        let key = if engine == LAB_ENGINE {
            "[restore_test] docker".to_string()
        } else {
            self.config.engine_key(engine)
        };
        match Docker::connect_timed(host, self.config.docker_timeout).await {
            Ok(d) => {
                *state = Engine::Up(d.clone());
                Ok(d)
            }
            Err(DockerError::Unreachable { host, detail, .. }) => {
                // Plain words: the last cause of the transport's chain, not the chain.
                let why = detail.rsplit(": ").next().unwrap_or(&detail).to_lowercase();
                let short = if engine == LOCAL_ENGINE {
                    format!("cannot reach Docker at {host} ({why})")
                } else {
                    format!("cannot reach Docker engine `{engine}` at {host} ({why})")
                };
                let full = format!(
                    "{short}; check that dockerd (or the socket proxy) runs there, or set {key} in {}",
                    self.config.file.display()
                );
                *state = Engine::Down {
                    full: full.clone(),
                    short,
                    said: true,
                };
                anyhow::bail!("{full}")
            }
            Err(e) => {
                *state = Engine::Down {
                    full: e.to_string(),
                    short: e.to_string(),
                    said: true,
                };
                Err(e.into())
            }
        }
    }

    /// The engine a job's container runs on.
    pub async fn docker_for(&self, job: &Job) -> anyhow::Result<Docker> {
        self.docker_on(&job.engine).await
    }

    /// The engine scratch containers run on: the restore lab when `[restore_test] docker`
    /// is set, else the job's own engine.
    pub async fn scratch_docker(&self, job: &Job) -> anyhow::Result<Docker> {
        if self.config.restore_test_docker.is_some() {
            self.docker_on(LAB_ENGINE).await
        } else {
            self.docker_for(job).await
        }
    }

    /// Every engine scratch containers may run on (the lab, or every job engine).
    pub fn scratch_engines(&self) -> Vec<String> {
        if self.config.restore_test_docker.is_some() {
            vec![LAB_ENGINE.to_string()]
        } else {
            self.config.engine_names()
        }
    }

    /// Whether `engine` was tried and could not be reached.
    pub fn docker_down(&self, engine: &str) -> bool {
        self.engines
            .get(engine)
            .and_then(|e| e.try_lock().ok().map(|e| matches!(*e, Engine::Down { .. })))
            .unwrap_or(false)
    }

    /// The last failure of `engine` was only logged at debug level: the next use says it
    /// in full.
    pub fn docker_failure_unsaid(&self, engine: &str) {
        if let Some(e) = self.engines.get(engine)
            && let Ok(mut e) = e.try_lock()
            && let Engine::Down { said, .. } = &mut *e
        {
            *said = false;
        }
    }

    /// restic bound to the repository, detected on first use; it may clear stale restic
    /// locks only while we hold ours.
    pub async fn restic(&self) -> anyhow::Result<Restic> {
        let may_unlock = self.lock.is_some();
        let r = self
            .restic
            .get_or_try_init(|| Restic::detect(&self.config.repository, may_unlock))
            .await?;
        Ok(r.clone())
    }

    /// A run was started in this session (the recorder counts them).
    pub(super) fn count_run(&self) {
        self.runs_started.set(self.runs_started.get() + 1);
    }

    /// How many runs this session recorded (each one reported itself).
    pub fn runs_started(&self) -> u32 {
        self.runs_started.get()
    }

    /// Whether notifications are sent for this session's runs (`--no-notify` quiets).
    pub fn notifies(&self) -> bool {
        !self.globals.no_notify
    }
}

/// Read and validate the config only.
pub fn load_config(g: &Globals) -> anyhow::Result<Config> {
    let path = config::locate(g.config.as_deref());
    Ok(config::load(&path)?)
}

fn open_catalog(config: &Config) -> anyhow::Result<Catalog> {
    ensure_dir(&config.catalog_path, &config.file)?;
    Ok(Catalog::open(&config.catalog_path)?)
}

/// The catalog's folder exists (the lock file lives beside the catalog).
pub fn ensure_dir(catalog: &Path, config_file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = catalog.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the catalog's folder {} (catalog.path in {})",
                dir.display(),
                config_file.display()
            )
        })?;
    }
    Ok(())
}
