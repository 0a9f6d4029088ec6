//! `[engines.NAME] docker = "tcp://…"|"unix://…"`: more Docker engines (each through its
//! own socket proxy) besides the one `[docker] host` names, which is the engine `local`;
//! `[restore_test] docker`: a separate engine for scratch containers (the restore lab).
//! Jobs say `engine = "NAME"`; an unknown name is an error at the job's key.

use super::error::ConfigError;
use super::raw::RawEngine;
use super::{Config, Validator};
use std::collections::BTreeMap;
use toml::Spanned;

/// The engine `[docker] host` (or `$DOCKER_HOST`, or the local socket) points at.
pub const LOCAL_ENGINE: &str = "local";

impl Config {
    /// The Docker host of engine `name` (`None` for `local`: `[docker] host`, then
    /// `$DOCKER_HOST`, then the socket); `None` as well for an unknown name.
    pub fn engine_host(&self, name: &str) -> Option<&str> {
        if name == LOCAL_ENGINE {
            return self.docker_host.as_deref();
        }
        self.engines.get(name).map(String::as_str)
    }

    /// Every engine's name, `local` first.
    pub fn engine_names(&self) -> Vec<String> {
        std::iter::once(LOCAL_ENGINE.to_string())
            .chain(self.engines.keys().cloned())
            .collect()
    }

    /// Where an engine is configured, for messages.
    pub fn engine_key(&self, name: &str) -> String {
        if name == LOCAL_ENGINE {
            "[docker] host (or $DOCKER_HOST)".to_string()
        } else {
            format!("[engines.{name}] docker")
        }
    }
}

impl Validator<'_> {
    /// `[engines.NAME]` tables: a plain name (not `local`, which is `[docker] host`) and
    /// a `tcp://HOST:PORT` or `unix:///path` Docker endpoint.
    pub(super) fn engines(
        &self,
        raw: Option<BTreeMap<Spanned<String>, RawEngine>>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for (name, e) in raw.unwrap_or_default() {
            let n = name.get_ref();
            if n == LOCAL_ENGINE {
                return Err(self
                    .err(&name, "engines.local: `local` is the engine of [docker] host")
                    .hint("set [docker] host for this machine's engine, and give other engines other names"));
            }
            if let Err(why) = crate::domain::validate_job_name(n) {
                return Err(self.err(&name, format!("engine name `{n}`: {why}")));
            }
            out.insert(
                n.clone(),
                self.docker_endpoint(&e.docker, &format!("engines.{n}.docker"))?,
            );
        }
        Ok(out)
    }

    /// A Docker endpoint as the config may name one.
    pub(super) fn docker_endpoint(
        &self,
        v: &Spanned<String>,
        key: &str,
    ) -> Result<String, ConfigError> {
        let s = v.get_ref().trim();
        let ok = match (s.strip_prefix("tcp://"), s.strip_prefix("unix://")) {
            (Some(addr), _) => addr.contains(':') && !addr.starts_with(':'),
            (_, Some(path)) => path.starts_with('/'),
            _ => false,
        };
        if !ok {
            return Err(self
                .err(v, format!("{key}: `{s}` is not a Docker endpoint"))
                .hint(
                    "write tcp://HOST:PORT (the engine's socket proxy) or unix:///path/docker.sock",
                ));
        }
        Ok(s.to_string())
    }

    /// A job's `engine = "NAME"`: `local` or one of `[engines.*]`.
    pub(super) fn job_engine(
        &self,
        job: &str,
        engine: Option<&Spanned<String>>,
        engines: &BTreeMap<String, String>,
    ) -> Result<String, ConfigError> {
        let Some(e) = engine else {
            return Ok(LOCAL_ENGINE.to_string());
        };
        let n = e.get_ref();
        if n == LOCAL_ENGINE || engines.contains_key(n) {
            return Ok(n.clone());
        }
        let known = std::iter::once(LOCAL_ENGINE)
            .chain(engines.keys().map(String::as_str))
            .collect::<Vec<_>>()
            .join(", ");
        Err(self
            .err(e, format!("jobs.{job}.engine: no engine named `{n}`"))
            .hint(format!(
                "the engines are: {known}; add [engines.{n}] with docker = \"tcp://HOST:PORT\""
            )))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    const BASE: &str = "[repository]\nurl = \"repo\"\npassword_file = \"pw\"\n";

    fn parse_in(text: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "x\n").unwrap();
        parse(&dir.path().join("omk.toml"), text)
    }

    #[test]
    fn jobs_name_their_engine_and_default_to_local() {
        let c = parse_in(&format!(
            "{BASE}[engines.nas]\ndocker = \"tcp://nas:2375\"\n[restore_test]\ndocker = \"unix:///run/lab.sock\"\n\
             [jobs.a]\nkind = \"postgres\"\ncontainer = \"a\"\nengine = \"nas\"\n[jobs.b]\nkind = \"postgres\"\ncontainer = \"b\"\n"
        ))
        .unwrap();
        assert_eq!(c.jobs["a"].engine, "nas");
        assert_eq!(c.jobs["b"].engine, "local");
        assert_eq!(c.engine_host("nas"), Some("tcp://nas:2375"));
        assert_eq!(c.engine_names(), vec!["local", "nas"]);
        assert_eq!(
            c.restore_test_docker.as_deref(),
            Some("unix:///run/lab.sock")
        );
    }

    #[test]
    fn engine_errors_name_the_place() {
        for (text, want, line) in [
            (
                "[jobs.a]\nkind = \"postgres\"\ncontainer = \"a\"\nengine = \"nas\"\n",
                "jobs.a.engine: no engine named `nas`",
                7,
            ),
            (
                "[engines.local]\ndocker = \"tcp://x:1\"\n",
                "`local` is the engine of [docker] host",
                4,
            ),
            (
                "[engines.nas]\ndocker = \"nas:2375\"\n",
                "engines.nas.docker: `nas:2375` is not a Docker endpoint",
                5,
            ),
            (
                "[restore_test]\ndocker = \"tcp://\"\n",
                "restore_test.docker",
                5,
            ),
        ] {
            let e = parse_in(&format!("{BASE}{text}")).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.contains(&format!("omk.toml:{line}:")), "{e}");
        }
    }
}
