//! `restic copy` and `restic init --copy-chunker-params`: a second repository filled
//! from this one. The source goes in the child's environment like the repository
//! itself (`RESTIC_FROM_REPOSITORY`, `RESTIC_FROM_PASSWORD_FILE` /
//! `RESTIC_FROM_PASSWORD_COMMAND`, read by restic 0.14 and 0.18 alike), never on argv.
//! The copy's snapshots carry `original` (the source snapshot's id) on both versions:
//! that is how the catalog learns which snapshot of the copy is which.

use super::{Restic, ResticError, spawn_error};
use crate::config::{PasswordSource, Repository};
use tokio::process::Command;

impl Restic {
    /// The same restic binary and host, bound to another repository (a copy).
    pub fn for_repository(&self, repo: &Repository) -> Restic {
        Restic {
            binary: self.binary.clone(),
            url: repo.url.clone(),
            host: self.host.clone(),
            stall_timeout: self.stall_timeout,
            password: repo.password.clone(),
            cache_dir: repo.cache_dir.clone().or_else(|| self.cache_dir.clone()),
            transfer: repo.transfer.clone(),
            may_unlock: self.may_unlock,
            version: self.version,
            lock_wait: self.lock_wait,
        }
    }

    /// A command on this repository with `from` as restic's source repository.
    fn command_from(&self, from: &Restic, args: &[&str]) -> Command {
        let mut c = self.command(args);
        for var in [
            "RESTIC_FROM_PASSWORD",
            "RESTIC_FROM_PASSWORD_FILE",
            "RESTIC_FROM_PASSWORD_COMMAND",
            "RESTIC_FROM_REPOSITORY",
            "RESTIC_FROM_REPOSITORY_FILE",
            "RESTIC_FROM_KEY_HINT",
        ] {
            c.env_remove(var);
        }
        c.env("RESTIC_FROM_REPOSITORY", from.url.expose());
        match &from.password {
            PasswordSource::File(p) => c.env("RESTIC_FROM_PASSWORD_FILE", p),
            PasswordSource::Command(cmd) => c.env("RESTIC_FROM_PASSWORD_COMMAND", cmd),
        };
        c
    }

    /// Run a two-repository command; its stderr is scrubbed of both URLs.
    async fn run_from(&self, from: &Restic, args: &[&str]) -> Result<Vec<u8>, ResticError> {
        let out = self
            .command_from(from, args)
            .output()
            .await
            .map_err(|e| spawn_error(&self.binary, e))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = from.url.scrub(&String::from_utf8_lossy(&out.stderr));
        Err(ResticError::from_exit(
            &args.join(" "),
            out.status.code(),
            &stderr,
            &self.url,
        ))
    }

    /// Create this repository with `from`'s chunker parameters, so data copied from it
    /// deduplicates. Only ever on the user's explicit request (`copy --init`).
    pub async fn init_copy_of(&self, from: &Restic) -> Result<(), ResticError> {
        self.run_from(from, &["init", "--copy-chunker-params"])
            .await
            .map(|_| ())
    }

    /// Copy these snapshots of `from` into this repository. restic skips one already
    /// copied (it compares `original`), so a repeat copies nothing twice. A stale lock
    /// (a killed copy) is removed from both repositories and the copy retried once.
    pub async fn copy_from(&self, from: &Restic, ids: &[String]) -> Result<(), ResticError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["copy"];
        args.extend(ids.iter().map(String::as_str));
        match self.run_from(from, &args).await {
            Err(ResticError::Locked { .. }) if self.may_unlock => {
                self.unlock().await?;
                from.unlock().await?;
                self.run_from(from, &args).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }
}
