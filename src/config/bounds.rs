//! The bounds that keep a run from hanging forever: `[docker] timeout` (one Engine API
//! call, and each silence in a streaming one) and `[schedule] max_runtime` (one
//! scheduled task). `[repository] stall_timeout` lives with the repository.

use super::error::ConfigError;
use super::{Validator, raw};
use std::time::Duration;
use toml::Spanned;

/// `[docker] timeout` when not set: two minutes per call.
pub const DEFAULT_DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// `[schedule] max_runtime` when not set.
pub const DEFAULT_MAX_RUNTIME: Duration = Duration::from_secs(12 * 3600);

impl Validator<'_> {
    /// `[docker] timeout`: a duration above zero (default [`DEFAULT_DOCKER_TIMEOUT`]).
    pub(super) fn docker_timeout(
        &self,
        docker: Option<&raw::RawDocker>,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = docker.and_then(|d| d.timeout.as_ref()) else {
            return Ok(DEFAULT_DOCKER_TIMEOUT);
        };
        let d = self.duration(v, "docker.timeout")?;
        if d.is_zero() {
            return Err(self
                .err(v, "docker.timeout must be above zero".to_string())
                .hint("every Docker call needs a bound; the default is 2m"));
        }
        Ok(d)
    }

    /// `[schedule] max_runtime`: default [`DEFAULT_MAX_RUNTIME`], "0" for no bound.
    pub(super) fn max_runtime(
        &self,
        v: Option<&Spanned<String>>,
    ) -> Result<Option<Duration>, ConfigError> {
        match v {
            None => Ok(Some(DEFAULT_MAX_RUNTIME)),
            Some(v) if v.get_ref().trim() == "0" => Ok(None),
            Some(v) => self.duration(v, "schedule.max_runtime").map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rest: &str) -> Result<super::super::Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "x\n").unwrap();
        let text = format!("[repository]\nurl = \"r\"\npassword_file = \"pw\"\n{rest}");
        super::super::parse(&dir.path().join("c.toml"), &text)
    }

    #[test]
    fn defaults_zero_and_bad_values() {
        let c = parse("").unwrap();
        assert_eq!(c.docker_timeout, DEFAULT_DOCKER_TIMEOUT);
        assert_eq!(c.schedule_max_runtime, Some(Duration::from_secs(12 * 3600)));
        let c = parse("[docker]\ntimeout = \"5s\"\n[schedule]\nmax_runtime = \"0\"\n").unwrap();
        assert_eq!(c.docker_timeout, Duration::from_secs(5));
        assert_eq!(c.schedule_max_runtime, None);
        let c = parse("[schedule]\nmax_runtime = \"90m\"\n").unwrap();
        assert_eq!(c.schedule_max_runtime, Some(Duration::from_secs(5400)));
        let e = parse("[docker]\ntimeout = \"0\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("docker.timeout must be above zero"), "{e}");
        let e = parse("[schedule]\nmax_runtime = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule.max_runtime"), "{e}");
    }
}
