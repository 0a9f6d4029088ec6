//! `omk-backup proxy-rules`: the tightest socket-proxy rules for this configuration,
//! with the container names of its jobs (configured and label-discovered) filled in.

use super::session::Session;
use crate::config::Config;
use crate::domain::QuiesceMode;
use crate::proxy::{self, Needs};
use anyhow::bail;

/// Which rule dialect to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Haproxy,
    Cetusguard,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "haproxy" => Ok(Format::Haproxy),
            "cetusguard" => Ok(Format::Cetusguard),
            other => Err(format!(
                "unknown proxy format {other:?}: use haproxy (Tecnativa/linuxserver style) or cetusguard"
            )),
        }
    }
}

/// What this config's jobs need from the Docker API.
pub fn needs(config: &Config) -> Needs {
    let mut n = Needs {
        discover: config.docker_discover && super::discover::wanted(config),
        ..Needs::default()
    };
    for job in config.jobs.values() {
        if job.kind.is_database() {
            if let Some(c) = &job.container {
                n.exec.insert(c.clone());
            }
            n.scratch = true;
        }
        if let Some(q) = &job.quiesce {
            match q.mode {
                QuiesceMode::Pause => n.pause.insert(q.container.clone()),
                QuiesceMode::Stop => n.stop.insert(q.container.clone()),
            };
        }
    }
    n
}

/// The rules text for `format`; `listen` and `socket` shape the haproxy configuration.
pub fn run(ctx: &Session, format: Format, listen: &str, socket: &str) -> anyhow::Result<String> {
    // Rules that silently lacked a labelled container would break its backups: a
    // discovery failure is an error here, not a warning.
    if let Some(e) = &ctx.discovery.failed {
        bail!(
            "label discovery failed, so the rules would miss labelled containers: {e:#}; run this once against a Docker endpoint that allows GET /containers/json (e.g. DOCKER_HOST=unix:///var/run/docker.sock), or set [docker] discover = false"
        );
    }
    let n = needs(&ctx.config);
    n.validate()?;
    if !n.any() {
        bail!(
            "{} has no job that uses Docker (no database job, no quiesce, no label discovery): it needs no socket proxy at all",
            ctx.config.file.display()
        );
    }
    let source = ctx.config.file.display().to_string();
    Ok(match format {
        Format::Haproxy => proxy::haproxy(&n, &source, listen, socket),
        Format::Cetusguard => proxy::cetusguard(&n, &source),
    })
}
