//! Waiting for another instance's restic lock: a shared repository (a fleet of hosts,
//! or a plain `restic` run by hand) is locked by someone else now and then, and that is
//! not a failure — we wait, bounded, and say what we wait for.
//!
//! On a `Locked` answer: first one plain `restic unlock` when the caller holds our own
//! run lock (it removes only *stale* locks: older than 30 minutes, or made on this very
//! machine — same OS host name — by a process that no longer exists; a live lock of
//! another host or of a live local process is kept, see docs/fleet.md), then retries until
//! [`DEFAULT_LOCK_WAIT`] has passed: restic ≥ 0.16 waits itself (`--retry-lock
//! REMAINING`), 0.14 gets our jittered exponential backoff (1 s doubling to 30 s).

use super::{Restic, ResticError, Version};
use std::time::{Duration, Instant};

/// How long a command waits for another process's lock before it fails.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(600);

/// `$OMK_BACKUP_LOCK_WAIT` (seconds) overrides [`DEFAULT_LOCK_WAIT`] (tests, impatient
/// operators); a bad value is ignored with a warning.
pub(super) fn lock_wait_from_env() -> Duration {
    match std::env::var("OMK_BACKUP_LOCK_WAIT") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .unwrap_or_else(|_| {
                tracing::warn!("OMK_BACKUP_LOCK_WAIT={v:?} is not a number of seconds; using 600");
                DEFAULT_LOCK_WAIT
            }),
        Err(_) => DEFAULT_LOCK_WAIT,
    }
}

/// The first restic with `--retry-lock`.
const RETRY_LOCK_SINCE: Version = Version::new(0, 16, 0);

/// One command's wait for a lock.
pub(super) struct LockWait<'a> {
    restic: &'a Restic,
    command: String,
    started: Instant,
    unlocked: bool,
    attempt: u32,
    /// `--retry-lock` for the next attempt (restic ≥ 0.16).
    retry_flag: Option<Duration>,
}

impl<'a> LockWait<'a> {
    pub(super) fn new(restic: &'a Restic, command: &str) -> LockWait<'a> {
        LockWait {
            restic,
            command: command.to_string(),
            started: Instant::now(),
            unlocked: false,
            attempt: 0,
            retry_flag: None,
        }
    }

    /// The argv of the next attempt: `--retry-lock Ns` right after the subcommand when
    /// restic is to wait itself.
    pub(super) fn argv<'b>(&self, args: &[&'b str], flag: &'b mut String) -> Vec<&'b str> {
        let mut v: Vec<&'b str> = args.to_vec();
        if let Some(d) = self.retry_flag {
            *flag = format!("{}s", d.as_secs().max(1));
            let shared: &'b String = flag;
            v.insert(1.min(v.len()), "--retry-lock");
            v.insert(2.min(v.len()), shared.as_str());
        }
        v
    }

    /// After a `Locked` answer: `Ok(())` to try again (after removing stale locks and
    /// waiting), or the final error once the wait is over.
    pub(super) async fn again(&mut self, err: ResticError) -> Result<(), ResticError> {
        let ResticError::Locked { url, detail } = err else {
            return Err(err);
        };
        if !self.unlocked && self.restic.may_unlock {
            self.unlocked = true;
            // Stale locks (a killed restic of ours) go; live ones of anybody stay.
            self.restic.unlock().await?;
            tracing::info!(
                "`restic {}`: retrying after removing stale locks",
                self.command
            );
            return Ok(());
        }
        let waited = self.started.elapsed();
        let total = self.restic.lock_wait;
        if waited >= total || self.retry_flag.is_some() {
            return Err(ResticError::Locked {
                url,
                detail: format!(
                    "{detail}; waited {} s for it (the lock is kept: it belongs to a live restic process, here or on another host)",
                    waited.as_secs()
                ),
            });
        }
        let left = total - waited;
        tracing::info!(
            "`restic {}`: the repository is locked by another restic ({detail}); waiting for it (up to {} s more)",
            self.command,
            left.as_secs()
        );
        if self.restic.version >= RETRY_LOCK_SINCE {
            self.retry_flag = Some(left);
        } else {
            tokio::time::sleep(backoff(self.attempt).min(left)).await;
            self.attempt += 1;
        }
        Ok(())
    }
}

/// The pause before attempt `n + 1` on restic 0.14: 1 s doubling up to 30 s, each
/// scaled by a random 75–125 % so several hosts do not retry in step.
fn backoff(n: u32) -> Duration {
    let base = Duration::from_secs(1u64 << n.min(5)).min(Duration::from_secs(30));
    let r = crate::random::bytes::<1>().map(|b| b[0]).unwrap_or(128);
    let percent = 75 + u64::from(r) * 50 / 255;
    base * percent as u32 / 100
}

impl Restic {
    /// `run`, waiting for another process's lock (see the module doc).
    pub(super) async fn run_unlocking(&self, args: &[&str]) -> Result<Vec<u8>, ResticError> {
        let mut wait = LockWait::new(self, args.first().copied().unwrap_or(""));
        loop {
            let mut flag = String::new();
            let argv = wait.argv(args, &mut flag);
            match self.run(&argv).await {
                Err(e @ ResticError::Locked { .. }) => wait.again(e).await?,
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_jitters_and_is_capped() {
        for n in 0..10 {
            let b = backoff(n);
            let base = Duration::from_secs(1u64 << n.min(5)).min(Duration::from_secs(30));
            assert!(b >= base * 3 / 4 && b <= base * 5 / 4, "{n}: {b:?}");
        }
        assert!(backoff(20) <= Duration::from_millis(37_500));
    }
}
