//! `restic backup --stdin`: a stream (a database dump, a small value) becomes one file
//! of a snapshot; the caller writes into the child's stdin and then finishes or aborts.

use super::{
    BackupDone, Restic, ResticError, Version, finish_backup, json, protocol, read_all, spawn_error,
};
use crate::redact::RepoUrl;
use std::process::Stdio;
use tokio::process::Child;

impl Restic {
    /// Start `restic backup --stdin`: the caller writes the stream into the returned
    /// child's stdin, closes it, then calls [`StdinBackup::finish`].
    pub fn backup_stdin(
        &self,
        filename: &str,
        tags: &[String],
    ) -> Result<StdinBackup, ResticError> {
        let mut args: Vec<String> = vec![
            "backup".into(),
            "--json".into(),
            "--stdin".into(),
            "--stdin-filename".into(),
            filename.into(),
            "--host".into(),
            self.host.clone(),
        ];
        for t in tags {
            args.push("--tag".into());
            args.push(t.clone());
        }
        // The stream cannot be replayed, so no retry of ours: restic >= 0.16 waits for
        // another process's lock itself before it reads stdin; 0.14 fails as locked.
        if self.version >= Version::new(0, 16, 0) {
            args.push("--retry-lock".into());
            args.push(format!("{}s", self.lock_wait.as_secs().max(1)));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = self.command(&argv);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| spawn_error(&self.binary, e))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        Ok(StdinBackup {
            child,
            stdin: Some(stdin),
            stdout_task: tokio::spawn(read_all(stdout)),
            stderr_task: tokio::spawn(read_all(stderr)),
            url: self.url.clone(),
        })
    }

    /// Back up a small in-memory value as one file (`backup --stdin`).
    pub async fn backup_bytes(
        &self,
        filename: &str,
        tags: &[String],
        bytes: &[u8],
    ) -> Result<BackupDone, ResticError> {
        use tokio::io::AsyncWriteExt;
        let mut b = self.backup_stdin(filename, tags)?;
        if let Some(stdin) = b.stdin.as_mut()
            && let Err(e) = stdin.write_all(bytes).await
        {
            b.abort().await;
            return Err(protocol("backup --stdin", e));
        }
        b.finish().await
    }
}

/// A running `restic backup --stdin`.
pub struct StdinBackup {
    child: Child,
    pub stdin: Option<tokio::process::ChildStdin>,
    stdout_task: tokio::task::JoinHandle<String>,
    stderr_task: tokio::task::JoinHandle<String>,
    url: RepoUrl,
}

impl StdinBackup {
    /// Close stdin (if still open), wait for restic and read its summary.
    pub async fn finish(mut self) -> Result<BackupDone, ResticError> {
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| protocol("backup --stdin", e))?;
        let stdout = self.stdout_task.await.unwrap_or_default();
        let stderr = self.stderr_task.await.unwrap_or_default();
        let mut summary = None;
        let mut errors = Vec::new();
        for line in stdout.lines() {
            match json::parse_backup_line(line) {
                json::BackupMessage::Summary(s) => summary = Some(s),
                json::BackupMessage::Error(e) => errors.push(e),
                _ => {}
            }
        }
        finish_backup(status.code(), summary, errors, &stderr, &self.url)
    }

    /// Stop restic (the stream failed or stalled): no snapshot is written. SIGTERM
    /// while its stdin is still open (an end of input now could still make a snapshot of
    /// the partial stream), so restic removes its lock; SIGKILL after 10 s.
    pub async fn abort(mut self) {
        super::stall::stop_child(&mut self.child).await;
        drop(self.stdin.take());
    }

    /// The OS process id, for tests and diagnostics.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
