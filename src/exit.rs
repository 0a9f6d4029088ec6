//! Exit codes of the product contract and the error markers that select them.
//!
//! 0 all good · 1 some job or check failed · 2 usage or configuration error ·
//! 3 another run holds the lock. Errors travel as `anyhow::Error`; the markers below,
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

/// The exit code an error maps to.
pub fn classify(err: &anyhow::Error) -> Outcome {
    for cause in err.chain() {
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
