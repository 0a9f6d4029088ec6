//! Label discovery: containers that opt in with `omk-backup.enable=true` become jobs,
//! merged with the configured ones (the config wins on a name clash, and says so).
//!
//! Labels: `omk-backup.kind` (files|postgres|mariadb|sqlite, required),
//! `omk-backup.job` (the job name; default the container name), `omk-backup.paths`
//! (files: comma-separated host paths), `omk-backup.quiesce` (files: pause|stop, applied
//! to the labelled container), `omk-backup.user`, `omk-backup.database`,
//! `omk-backup.password_file`. Discovery only runs when a Docker host is configured
//! (`[docker] host` or `$DOCKER_HOST`): a plain files-only setup never needs Docker.

use super::reporter::Reporter;
use crate::config::{Config, Job, JobOrigin, Quiesce};
use crate::docker::{ContainerInfo, Docker};
use crate::domain::{JobKind, QuiesceMode, validate_job_name};
use std::path::PathBuf;

pub const ENABLE: &str = "omk-backup.enable=true";

/// Whether this config asks for label discovery: it is on and a Docker host is
/// configured (`[docker] host` or `$DOCKER_HOST`).
pub fn wanted(config: &Config) -> bool {
    let host = config.docker_host.is_some()
        || std::env::var_os("DOCKER_HOST").is_some_and(|h| !h.is_empty());
    config.docker_discover && host
}

/// Add labelled containers' jobs to `config`. A Docker failure is returned to the caller,
/// which decides whether the command needs Docker.
pub async fn merge(
    config: &mut Config,
    docker: &Docker,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let found = docker.list_labelled(ENABLE).await?;
    for c in found {
        match job_from_labels(&c) {
            Ok(job) => {
                if let Some(existing) = config.jobs.get(&job.name) {
                    let at = match &existing.origin {
                        JobOrigin::Config { line } => {
                            format!("{}:{line}", config.file.display())
                        }
                        JobOrigin::Label { container } => {
                            format!("the labels of container {container}")
                        }
                    };
                    reporter.note(&format!(
                        "job `{}` from the labels of container {} is ignored: {at} already defines it",
                        job.name, c.name
                    ));
                    continue;
                }
                config.jobs.insert(job.name.clone(), job);
            }
            Err(why) => reporter.note(&format!(
                "container {} has {ENABLE} but no usable job: {why}",
                c.name
            )),
        }
    }
    Ok(())
}

/// The job a container's labels describe.
pub fn job_from_labels(c: &ContainerInfo) -> Result<Job, String> {
    let label = |k: &str| {
        c.labels
            .get(&format!("omk-backup.{k}"))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let name = label("job").unwrap_or_else(|| c.name.clone());
    validate_job_name(&name).map_err(|e| format!("job name `{name}`: {e} (set omk-backup.job)"))?;
    let kind_text =
        label("kind").ok_or("omk-backup.kind is missing (files, postgres, mariadb or sqlite)")?;
    let kind = JobKind::parse(&kind_text).ok_or(format!(
        "omk-backup.kind=`{kind_text}` is not one of files, postgres, mariadb, sqlite"
    ))?;
    let mut job = Job {
        name,
        kind,
        paths: Vec::new(),
        exclude: Vec::new(),
        quiesce: None,
        container: None,
        user: label("user"),
        password_file: label("password_file").map(PathBuf::from),
        database: label("database"),
        retention: None,
        notify: None,
        origin: JobOrigin::Label {
            container: c.name.clone(),
        },
        probes: Vec::new(),
    };
    match kind {
        JobKind::Files => {
            let paths = label("paths").ok_or("a files job needs omk-backup.paths")?;
            for p in paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let path = PathBuf::from(p);
                if !path.is_absolute() {
                    return Err(format!("omk-backup.paths: `{p}` is not an absolute path"));
                }
                job.paths.push(path);
            }
            if let Some(mode) = label("quiesce") {
                let mode = match mode.as_str() {
                    "pause" => QuiesceMode::Pause,
                    "stop" => QuiesceMode::Stop,
                    other => {
                        return Err(format!("omk-backup.quiesce=`{other}`: use pause or stop"));
                    }
                };
                job.quiesce = Some(Quiesce {
                    container: c.name.clone(),
                    mode,
                });
            }
        }
        _ => {
            job.container = Some(c.name.clone());
            if kind == JobKind::Sqlite && job.database.is_none() {
                return Err(
                    "a sqlite job needs omk-backup.database (the file's path in the container)"
                        .into(),
                );
            }
        }
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn container(labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "app_db".into(),
            status: "running".into(),
            exit_code: None,
            image_id: String::new(),
            image: "postgres:15".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            env_names: Vec::new(),
        }
    }

    #[test]
    fn labels_make_jobs() {
        let j = job_from_labels(&container(&[
            ("omk-backup.enable", "true"),
            ("omk-backup.kind", "postgres"),
            ("omk-backup.user", "immich"),
        ]))
        .unwrap();
        assert_eq!(j.name, "app_db");
        assert_eq!(j.container.as_deref(), Some("app_db"));
        assert_eq!(j.user.as_deref(), Some("immich"));
        let f = job_from_labels(&container(&[
            ("omk-backup.kind", "files"),
            ("omk-backup.job", "vault"),
            ("omk-backup.paths", "/srv/a, /srv/b"),
            ("omk-backup.quiesce", "stop"),
        ]))
        .unwrap();
        assert_eq!(f.name, "vault");
        assert_eq!(f.paths.len(), 2);
        assert_eq!(f.quiesce.unwrap().mode, QuiesceMode::Stop);
    }

    #[test]
    fn bad_labels_say_why() {
        for (labels, want) in [
            (vec![], "omk-backup.kind is missing"),
            (vec![("omk-backup.kind", "redis")], "not one of"),
            (vec![("omk-backup.kind", "files")], "needs omk-backup.paths"),
            (
                vec![("omk-backup.kind", "files"), ("omk-backup.paths", "rel")],
                "not an absolute path",
            ),
            (vec![("omk-backup.kind", "sqlite")], "omk-backup.database"),
            (
                vec![("omk-backup.kind", "postgres"), ("omk-backup.job", "a b")],
                "job name",
            ),
        ] {
            let e = job_from_labels(&container(&labels)).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
