//! Exit codes of the product contract and the error markers that select them.
//!
//! 0 all good · 1 some job or check failed · 2 usage or configuration error ·
//! 3 another run holds the lock · 130 stopped by SIGINT · 143 stopped by SIGTERM (the
//! shell's 128 + signal number; see [`Stopped`]). Errors travel as `anyhow::Error`; the markers below,
//! found anywhere in an error's chain, pick codes 2 and 3: a usage or config error, a
//! restic error that is the user's to fix, a Docker refusal (a socket proxy answering
//! 403: its setting must change, the hint says which). Everything else is 1.

use std::fmt;

/// The process outcome, in the product's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything that ran succeeded.
    Ok = 0,
    /// Some job or check failed (the others still ran).
    Failed = 1,
    /// Usage or configuration error: nothing was attempted.
    Usage = 2,
    /// Another run holds the lock.
    Locked = 3,
    /// Stopped by SIGINT (128 + 2) before it finished.
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15) before it finished.
    Terminated = 143,
}

impl Outcome {
    /// Combine two outcomes of independent work: the worse one wins.
    pub fn worst(self, other: Outcome) -> Outcome {
        if (other as u8) > (self as u8) {
            other
        } else {
            self
        }
    }

    /// The outcome for a batch of results: failed when any failed.
    pub fn from_failures(failed: bool) -> Outcome {
        if failed { Outcome::Failed } else { Outcome::Ok }
    }
}

/// Marks an error as the user's to fix (bad input, bad config): exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a usage error as `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Marks a command stopped by a signal: its work was dropped (containers resumed,
/// scratch removed by their guards, the run recorded `interrupted`). Exit 130/143.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// "SIGINT" or "SIGTERM".
    pub signal: &'static str,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped by {}: the run was recorded interrupted, quiesced containers were resumed and scratch space removed",
            self.signal
        )
    }
}

impl std::error::Error for Stopped {}

impl Stopped {
    /// The exit code: 143 for SIGTERM, 130 otherwise (SIGINT).
    pub fn outcome(&self) -> Outcome {
        if self.signal == "SIGTERM" {
            Outcome::Terminated
        } else {
            Outcome::Interrupted
        }
    }
}

/// The exit code an error maps to.
pub fn classify(err: &anyhow::Error) -> Outcome {
    for cause in err.chain() {
        if let Some(s) = cause.downcast_ref::<Stopped>() {
            return s.outcome();
        }
        if cause.is::<UsageError>() || cause.is::<crate::config::ConfigError>() {
            return Outcome::Usage;
        }
        if cause.is::<crate::lock::LockHeld>() {
            return Outcome::Locked;
        }
        if let Some(r) = cause.downcast_ref::<crate::restic::ResticError>()
            && r.is_usage()
        {
            return Outcome::Usage;
        }
        if let Some(d) = cause.downcast_ref::<crate::docker::DockerError>()
            && d.is_setup()
        {
            return Outcome::Usage;
        }
    }
    Outcome::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_prefers_higher_codes() {
        assert_eq!(Outcome::Ok.worst(Outcome::Failed), Outcome::Failed);
        assert_eq!(Outcome::Failed.worst(Outcome::Ok), Outcome::Failed);
        assert_eq!(Outcome::Usage.worst(Outcome::Failed), Outcome::Usage);
    }

    #[test]
    fn usage_marker_maps_to_two_even_behind_context() {
        let e = usage("bad flag").context("while parsing");
        assert_eq!(classify(&e), Outcome::Usage);
        let e = anyhow::anyhow!("boom");
        assert_eq!(classify(&e), Outcome::Failed);
    }

    #[test]
    fn a_signal_maps_to_128_plus_its_number() {
        let int = anyhow::Error::new(Stopped { signal: "SIGINT" });
        assert_eq!(classify(&int) as u8, 130);
        let term = anyhow::Error::new(Stopped { signal: "SIGTERM" });
        assert_eq!(classify(&term) as u8, 143);
        assert_eq!(
            Outcome::Failed.worst(Outcome::Terminated),
            Outcome::Terminated
        );
    }

    #[test]
    fn a_proxy_refusal_is_a_setup_problem() {
        let refused = crate::docker::DockerError::Refused {
            host: "tcp://127.0.0.1:2375".into(),
            method: "PUT".into(),
            path: "/containers/db/archive".into(),
            hint: "allow it".into(),
        };
        let e = anyhow::Error::new(refused).context("restoring into db");
        assert_eq!(classify(&e), Outcome::Usage);
        let down = crate::docker::DockerError::Unreachable {
            host: "tcp://127.0.0.1:2375".into(),
            method: "GET".into(),
            path: "/version".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(classify(&anyhow::Error::new(down)), Outcome::Failed);
    }
}
