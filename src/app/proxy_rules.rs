//! `omk-backup proxy-rules`: the tightest socket-proxy rules for this configuration,
//! with the container names of its jobs (configured and label-discovered) filled in: one
//! rule set per engine (`local`, each `[engines.NAME]`, the restore lab), since each
//! engine sits behind its own proxy.

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

/// What this config's jobs need from `engine`'s Docker API. With a restore lab
/// (`[restore_test] docker`) no production engine creates anything: it only lets the
/// lab copy a source image (a read).
pub fn needs_on(config: &Config, engine: &str) -> Needs {
    let lab = config.restore_test_docker.is_some();
    let mut n = Needs {
        discover: super::discover::engines(config).iter().any(|e| e == engine),
        ..Needs::default()
    };
    for job in config.jobs.values().filter(|j| j.engine == engine) {
        if job.kind.is_database() {
            if let Some(c) = &job.container {
                n.exec.insert(c.clone());
            }
            if lab {
                n.image_export = true;
            } else {
                n.scratch = true;
            }
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

/// The restore lab's needs: scratch containers and the image load, nothing else.
pub fn lab_needs(config: &Config) -> Option<Needs> {
    let db = config.jobs.values().any(|j| j.kind.is_database());
    (config.restore_test_docker.is_some() && db).then(|| Needs {
        scratch: true,
        image_load: true,
        ..Needs::default()
    })
}

/// The rules text for `format`; `listen` and `socket` shape the haproxy configuration.
/// One rule set per engine that needs any (each engine has its own proxy), headed by
/// the engine's name when there are several.
pub fn run(ctx: &Session, format: Format, listen: &str, socket: &str) -> anyhow::Result<String> {
    // Rules that silently lacked a labelled container would break its backups: a
    // discovery failure is an error here, not a warning.
    if let Some(e) = &ctx.discovery.failed {
        bail!(
            "label discovery failed, so the rules would miss labelled containers: {e:#}; run this once against a Docker endpoint that allows GET /containers/json (e.g. DOCKER_HOST=unix:///var/run/docker.sock), or set [docker] discover = false"
        );
    }
    let config = &ctx.config;
    let mut sets: Vec<(String, String, Needs)> = config
        .engine_names()
        .into_iter()
        .map(|e| {
            let n = needs_on(config, &e);
            let at = config
                .engine_host(&e)
                .unwrap_or("$DOCKER_HOST or the local socket")
                .to_string();
            (format!("engine `{e}`"), at, n)
        })
        .collect();
    if let Some(n) = lab_needs(config) {
        let at = config.restore_test_docker.clone().unwrap_or_default();
        sets.push(("the restore lab ([restore_test] docker)".into(), at, n));
    }
    sets.retain(|(_, _, n)| n.any());
    for (_, _, n) in &sets {
        n.validate()?;
    }
    if sets.is_empty() {
        bail!(
            "{} has no job that uses Docker (no database job, no quiesce, no label discovery): it needs no socket proxy at all",
            config.file.display()
        );
    }
    let source = config.file.display().to_string();
    let render = |n: &Needs| match format {
        Format::Haproxy => proxy::haproxy(n, &source, listen, socket),
        Format::Cetusguard => proxy::cetusguard(n, &source),
    };
    if let [(name, _, n)] = sets.as_slice()
        && name == "engine `local`"
    {
        return Ok(render(n));
    }
    let c = match format {
        Format::Haproxy => "#",
        Format::Cetusguard => "!",
    };
    let mut out = String::new();
    for (name, at, n) in &sets {
        out.push_str(&format!(
            "{c} ===== {name}: its own socket proxy, in front of the engine at {at} =====\n"
        ));
        out.push_str(&render(n));
        out.push('\n');
    }
    Ok(out)
}
