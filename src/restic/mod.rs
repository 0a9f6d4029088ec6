//! The restic driver: the only module that starts restic and knows its output.
//!
//! Every restic process is built by [`Restic::command`], which puts the repository and
//! the password source in the child's environment (`RESTIC_REPOSITORY`,
//! `RESTIC_PASSWORD_FILE` / `RESTIC_PASSWORD_COMMAND`) and never on its argv, and drops
//! any inherited `RESTIC_*` variables that could point restic elsewhere. Errors are typed
//! ([`ResticError`]) from both 0.14's messages and 0.17+'s exit codes. A stale lock left
//! by a killed restic is removed with plain `restic unlock` (never `--remove-all`, which
//! would break a live lock) when the caller holds omk-backup's own run lock, and a live
//! lock of another process or host is waited for, bounded (see [`lockwait`]).
//! The repository's [`Transfer`] settings (`--limit-upload`, `--limit-download`,
//! `--compression`, `--cacert`) go on every restic call, so every call that moves data
//! (backup, restore, dump, check --read-data*, prune, forget --prune) honours them.

mod copy;
mod error;
mod finish;
mod giveup;
pub mod json;
mod lockwait;
mod shared;
mod stall;
mod stdin;
mod transfer;
mod version;

pub use copy::CopiedSnapshot;
pub use error::{ResticError, short_duration, tail};
use finish::finish_backup;
pub use json::{BackupStatus, BackupSummary, ForgetGroup, LsNode, Snapshot};
pub use lockwait::DEFAULT_LOCK_WAIT;
use stall::{StallWatch, stop_child};
pub use stdin::StdinBackup;
use transfer::transfer_flags;
pub use version::Version;
use version::binary_for;

use crate::config::{PasswordSource, Repository, Transfer};
use crate::domain::Retention;
use crate::redact::RepoUrl;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// A restic binary bound to one repository.
#[derive(Debug, Clone)]
pub struct Restic {
    binary: PathBuf,
    url: RepoUrl,
    /// restic `--host` of every snapshot made and every snapshot listed or forgotten.
    host: String,
    /// A backup whose progress does not move for this long is stopped.
    stall_timeout: Option<Duration>,
    password: PasswordSource,
    cache_dir: Option<PathBuf>,
    /// Bandwidth limits, compression and the TLS CA, for every call.
    transfer: Transfer,
    /// True when the caller holds omk-backup's run lock: then we may run a plain
    /// `restic unlock` (stale locks only) once before waiting for a lock.
    may_unlock: bool,
    version: Version,
    /// How long a command waits for another process's repository lock.
    lock_wait: Duration,
}

/// The outcome of a finished backup.
#[derive(Debug, Clone)]
pub struct BackupDone {
    pub summary: BackupSummary,
    pub snapshot_id: String,
    /// Errors restic reported about single items (only possible with exit code 3).
    pub item_errors: Vec<String>,
}

impl Restic {
    /// Find restic, read its version, and bind it to the repository.
    pub async fn detect(repo: &Repository, may_unlock: bool) -> Result<Restic, ResticError> {
        let binary = binary_for(repo);
        let out = Command::new(&binary)
            .arg("version")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| spawn_error(&binary, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = Version::parse(&text).ok_or_else(|| ResticError::Protocol {
            command: "version".into(),
            detail: format!("cannot read a version from {:?}", text.trim()),
        })?;
        if version < Version::new(0, 14, 0) {
            return Err(ResticError::Unsupported {
                found: version.to_string(),
            });
        }
        Ok(Restic {
            binary,
            url: repo.url.clone(),
            host: repo.host.clone(),
            stall_timeout: repo.stall_timeout,
            password: repo.password.clone(),
            cache_dir: repo.cache_dir.clone(),
            transfer: repo.transfer.clone(),
            may_unlock,
            version,
            lock_wait: lockwait::lock_wait_from_env(),
        })
    }

    /// The host this instance's snapshots are made and looked up with.
    /// `[repository] stall_timeout`: the longest silence accepted from a backup's source
    /// (`None`: no bound).
    pub fn stall_timeout(&self) -> Option<Duration> {
        self.stall_timeout
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The same restic and repository, looking at another host's snapshots (disaster
    /// recovery: `restore --host`).
    pub fn with_host(&self, host: &str) -> Restic {
        Restic {
            host: host.to_string(),
            ..self.clone()
        }
    }

    /// The repository URL with any credentials masked (for messages and rows).
    pub fn url(&self) -> &str {
        self.url.shown()
    }

    /// The one place a restic process is built.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.args(transfer_flags(&self.transfer));
        c.args(args);
        for var in [
            "RESTIC_COMPRESSION",
            "RESTIC_CACERT",
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_REPOSITORY",
            "RESTIC_REPOSITORY_FILE",
            "RESTIC_HOST",
        ] {
            c.env_remove(var);
        }
        c.env("RESTIC_REPOSITORY", self.url.expose());
        match &self.password {
            PasswordSource::File(p) => c.env("RESTIC_PASSWORD_FILE", p),
            PasswordSource::Command(cmd) => c.env("RESTIC_PASSWORD_COMMAND", cmd),
        };
        if let Some(dir) = &self.cache_dir {
            c.env("RESTIC_CACHE_DIR", dir);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.kill_on_drop(true);
        c
    }

    fn spawn(&self, args: &[&str]) -> Result<Child, ResticError> {
        self.command(args)
            .spawn()
            .map_err(|e| spawn_error(&self.binary, e))
    }

    /// Run a command to completion and return its stdout, or a typed error. A hopeless
    /// error restic would retry for minutes (`giveup`) stops it at once.
    async fn run(&self, args: &[&str]) -> Result<Vec<u8>, ResticError> {
        let mut child = self.spawn(args)?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let out_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf).await;
            buf
        });
        let w = giveup::watch(child.stderr.take().expect("stderr is piped"));
        let command = args.first().copied().unwrap_or("restic");
        let code = tokio::select! {
            s = child.wait() => s.map_err(|e| protocol(command, e))?.code(),
            _ = w.fatal.notified() => {
                stop_child(&mut child).await;
                Some(1)
            }
        };
        let stderr = w.text.await.unwrap_or_default();
        let stdout = out_task.await.unwrap_or_default();
        if code == Some(0) {
            return Ok(stdout);
        }
        let e = ResticError::from_exit(&args.join(" "), code, &stderr, &self.url);
        Err(self.explain(e).await)
    }

    /// An unreachable sftp server, named as ssh resolves it (host and port).
    async fn explain(&self, e: ResticError) -> ResticError {
        match e {
            ResticError::Unreachable { url, detail } => {
                match crate::remote::sftp::endpoint(self.url.expose()).await {
                    Some(at) if !detail.contains(&at) => ResticError::Unreachable {
                        url,
                        detail: format!("{detail} (ssh connects to {at})"),
                    },
                    _ => ResticError::Unreachable { url, detail },
                }
            }
            other => other,
        }
    }

    /// Remove stale locks (plain `unlock`: locks of live processes are kept).
    pub async fn unlock(&self) -> Result<(), ResticError> {
        tracing::info!("removing stale restic locks from {}", self.url);
        self.run(&["unlock"]).await.map(|_| ())
    }

    /// Create the repository. Only ever on the user's explicit request.
    pub async fn init(&self) -> Result<(), ResticError> {
        self.run(&["init"]).await.map(|_| ())
    }

    /// Does the repository exist and open with our password?
    pub async fn open(&self) -> Result<(), ResticError> {
        self.run_unlocking(&["cat", "config"]).await.map(|_| ())
    }

    /// The repository's format version (`cat config`): 1, or 2 (compression possible).
    pub async fn format_version(&self) -> Result<u64, ResticError> {
        let out = self.run_unlocking(&["cat", "config"]).await?;
        let v: serde_json::Value = parse_json(&out, "cat config")?;
        v.get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| protocol("cat config", "the config names no version"))
    }

    /// The compression configured for this repository, if any.
    pub fn compression(&self) -> Option<crate::config::Compression> {
        self.transfer.compression
    }

    /// Back up paths, reporting progress, returning the summary.
    pub async fn backup_paths(
        &self,
        paths: &[PathBuf],
        exclude: &[String],
        tags: &[String],
        progress: &mut (dyn FnMut(&BackupStatus) + Send),
    ) -> Result<BackupDone, ResticError> {
        let mut args: Vec<String> = vec![
            "backup".into(),
            "--json".into(),
            "--host".into(),
            self.host.clone(),
        ];
        for t in tags {
            args.push("--tag".into());
            args.push(t.clone());
        }
        for x in exclude {
            args.push("--exclude".into());
            args.push(x.clone());
        }
        args.push("--".into());
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut wait = lockwait::LockWait::new(self, "backup");
        loop {
            let mut flag = String::new();
            let argv = wait.argv(&args, &mut flag);
            match self.backup_once(&argv, progress).await {
                Err(e @ ResticError::Locked { .. }) => wait.again(e).await?,
                other => return other,
            }
        }
    }

    /// The restic release this binary reported.
    pub fn version(&self) -> Version {
        self.version
    }

    async fn backup_once(
        &self,
        argv: &[&str],
        progress: &mut (dyn FnMut(&BackupStatus) + Send),
    ) -> Result<BackupDone, ResticError> {
        let mut child = self.spawn(argv)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let w = giveup::watch(stderr);
        let mut lines = BufReader::new(stdout).lines();
        let mut summary = None;
        let mut item_errors = Vec::new();
        // restic prints status lines many times a second, whether or not anything
        // moves (seconds_elapsed always does): progress is the file and byte counters.
        let mut watch = StallWatch::new(self.stall_timeout);
        loop {
            let deadline = watch.deadline();
            let stalled = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                r = lines.next_line() => r,
                _ = stalled => {
                    stop_child(&mut child).await;
                    return Err(ResticError::Stalled {
                        command: "backup".into(),
                        after: self.stall_timeout.unwrap_or_default(),
                    });
                }
                _ = w.fatal.notified() => {
                    stop_child(&mut child).await;
                    let stderr = w.text.await.unwrap_or_default();
                    return Err(ResticError::from_exit("backup", None, &stderr, &self.url));
                }
            };
            let Some(line) = next.map_err(|e| protocol("backup", e))? else {
                break;
            };
            match json::parse_backup_line(&line) {
                json::BackupMessage::Status(s) => {
                    watch.saw((s.total_files, s.files_done, s.total_bytes, s.bytes_done));
                    progress(&s)
                }
                json::BackupMessage::Summary(s) => {
                    watch.moved();
                    summary = Some(s)
                }
                json::BackupMessage::Error(e) => {
                    watch.moved();
                    item_errors.push(e)
                }
                json::BackupMessage::Other => watch.moved(),
            }
        }
        let status = child.wait().await.map_err(|e| protocol("backup", e))?;
        let stderr = w.text.await.unwrap_or_default();
        let done = finish_backup(status.code(), summary, item_errors, &stderr, &self.url);
        match done {
            Err(e) => Err(self.explain(e).await),
            ok => ok,
        }
    }

    /// restic before 0.17 names the new snapshot by its short id in the backup summary;
    /// the catalog keys snapshots by full id. A local repository answers from its
    /// `snapshots/` folder (file name = id) without another scrypt key derivation.
    pub async fn full_id(&self, id: &str) -> Result<String, ResticError> {
        if id.len() == 64 {
            return Ok(id.to_string());
        }
        if let Some(dir) = crate::config::local_repo_path(self.url.expose())
            && let Ok(entries) = std::fs::read_dir(dir.join("snapshots"))
        {
            let hits: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(id))
                .collect();
            if let [one] = hits.as_slice() {
                return Ok(one.clone());
            }
        }
        let out = self.run_unlocking(&["snapshots", "--json", id]).await?;
        let found: Vec<Snapshot> = parse_json(&out, "snapshots --json")?;
        match found.as_slice() {
            [one] => Ok(one.id.clone()),
            _ => Err(ResticError::Protocol {
                command: "snapshots".into(),
                detail: format!("cannot resolve snapshot {id} to one full id"),
            }),
        }
    }

    /// This host's snapshots, or those of them carrying every tag given.
    pub async fn snapshots(&self, tags: &[String]) -> Result<Vec<Snapshot>, ResticError> {
        let mut args = vec!["snapshots", "--json", "--host", &self.host];
        let joined = tags.join(",");
        if !tags.is_empty() {
            args.push("--tag");
            args.push(&joined);
        }
        let out = self.run_unlocking(&args).await?;
        parse_json(&out, "snapshots --json")
    }

    /// Remove these snapshots (no prune).
    pub async fn forget_ids(&self, ids: &[String]) -> Result<(), ResticError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["forget"];
        args.extend(ids.iter().map(String::as_str));
        self.run_unlocking(&args).await.map(|_| ())
    }

    /// Apply a retention policy to this host's snapshots of one job (they form one
    /// group, whatever paths they were taken with; other hosts' snapshots in a shared
    /// repository are never touched). Returns the removed ids.
    pub async fn forget_policy(
        &self,
        job_tag: &str,
        policy: &Retention,
    ) -> Result<Vec<String>, ResticError> {
        let mut args: Vec<String> = vec![
            "forget".into(),
            "--json".into(),
            "--host".into(),
            self.host.clone(),
            "--tag".into(),
            job_tag.into(),
            "--group-by".into(),
            "".into(),
        ];
        let rules = [
            ("--keep-last", policy.keep_last),
            ("--keep-hourly", policy.keep_hourly),
            ("--keep-daily", policy.keep_daily),
            ("--keep-weekly", policy.keep_weekly),
            ("--keep-monthly", policy.keep_monthly),
            ("--keep-yearly", policy.keep_yearly),
        ];
        for (flag, n) in rules {
            if let Some(n) = n {
                args.push(flag.into());
                args.push(n.to_string());
            }
        }
        if let Some(w) = &policy.keep_within {
            args.push("--keep-within".into());
            args.push(w.clone());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run_unlocking(&argv).await?;
        let groups: Vec<ForgetGroup> = parse_json(&out, "forget --json")?;
        Ok(groups
            .into_iter()
            .flat_map(|g| g.remove.unwrap_or_default())
            .map(|s| s.id)
            .collect())
    }

    /// Remove unreferenced data.
    pub async fn prune(&self) -> Result<(), ResticError> {
        self.run_unlocking(&["prune"]).await.map(|_| ())
    }

    /// Check the repository, optionally reading a subset of the data (`K/N`).
    pub async fn check(&self, read_data_subset: Option<&str>) -> Result<String, ResticError> {
        let mut args = vec!["check"];
        if let Some(s) = read_data_subset {
            args.push("--read-data-subset");
            args.push(s);
        }
        let out = self.run_unlocking(&args).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Restore a snapshot into `target`, limited to `include` paths when given.
    pub async fn restore(
        &self,
        snapshot: &str,
        target: &Path,
        include: &[PathBuf],
    ) -> Result<(), ResticError> {
        let target = target.display().to_string();
        let mut args: Vec<String> =
            vec!["restore".into(), snapshot.into(), "--target".into(), target];
        for p in include {
            args.push("--include".into());
            args.push(p.display().to_string());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match self.run_unlocking(&argv).await {
            Err(ResticError::Failed { stderr, .. })
                if error::restore_problems(&stderr).is_some() =>
            {
                Err(ResticError::RestoreIncomplete {
                    problems: error::restore_problems(&stderr).unwrap_or_default(),
                })
            }
            other => other.map(|_| ()),
        }
    }

    /// Stream one file of a snapshot (`restic dump`): the caller reads the child's stdout.
    pub fn dump(&self, snapshot: &str, path: &str) -> Result<Child, ResticError> {
        self.spawn(&["dump", snapshot, path])
    }

    /// Wait for a `dump` child and type its failure.
    pub async fn finish_dump(&self, mut child: Child) -> Result<(), ResticError> {
        let mut stderr = child.stderr.take();
        let status = child.wait().await.map_err(|e| protocol("dump", e))?;
        if status.success() {
            return Ok(());
        }
        let text = match stderr.as_mut() {
            Some(s) => read_all(s).await,
            None => String::new(),
        };
        Err(ResticError::from_exit(
            "dump",
            status.code(),
            &text,
            &self.url,
        ))
    }

    /// The same restic and repository, with another password file (the encryption proof
    /// opens the repository with a deliberately wrong password).
    pub fn with_password_file(&self, file: &Path) -> Restic {
        Restic {
            password: PasswordSource::File(file.to_path_buf()),
            may_unlock: false,
            ..self.clone()
        }
    }

    /// One file of a snapshot, read whole (`restic dump`; small files only).
    pub async fn dump_bytes(&self, snapshot: &str, path: &str) -> Result<Vec<u8>, ResticError> {
        self.run(&["dump", snapshot, path]).await
    }

    /// A snapshot's start time (RFC 3339, from the first line of `ls --json`) and its
    /// nodes.
    pub async fn ls_with_time(
        &self,
        snapshot: &str,
    ) -> Result<(Option<String>, Vec<LsNode>), ResticError> {
        let out = self.run_unlocking(&["ls", "--json", snapshot]).await?;
        let text = String::from_utf8_lossy(&out);
        let mut time = None;
        let mut nodes = Vec::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v.get("struct_type").and_then(|t| t.as_str()) == Some("snapshot") {
                time = v.get("time").and_then(|t| t.as_str()).map(str::to_string);
                continue;
            }
            if let Ok(n) = serde_json::from_value::<LsNode>(v)
                && n.struct_type.as_deref().is_none_or(|t| t == "node")
            {
                nodes.push(n);
            }
        }
        Ok((time, nodes))
    }
}

fn spawn_error(binary: &Path, e: std::io::Error) -> ResticError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ResticError::NotInstalled {
            binary: binary.display().to_string(),
        }
    } else {
        ResticError::Spawn {
            binary: binary.display().to_string(),
            source: e,
        }
    }
}

fn protocol(command: &str, e: impl std::fmt::Display) -> ResticError {
    ResticError::Protocol {
        command: command.into(),
        detail: e.to_string(),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(out: &[u8], command: &str) -> Result<T, ResticError> {
    // restic may print a non-JSON line (e.g. about locks) before the document.
    let text = String::from_utf8_lossy(out);
    let start = text.find(['[', '{']).unwrap_or(0);
    serde_json::from_str(text[start..].trim()).map_err(|e| protocol(command, e))
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> String {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}
