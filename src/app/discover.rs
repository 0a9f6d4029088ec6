//! Label discovery: containers that opt in with `omk-backup.enable=true` become jobs,
//! merged with the configured ones (the config wins on a name clash, and says so).
//!
//! Labels: `omk-backup.kind` (files|postgres|mariadb|sqlite, required),
//! `omk-backup.job` (the job name; default the container name), `omk-backup.paths`
//! (files: comma-separated host paths), `omk-backup.quiesce` (files: pause|stop, applied
//! to the labelled container), `omk-backup.user`, `omk-backup.database`,
//! `omk-backup.shrink_limit` (only stricter than the default 50). Labels are
//! written by whoever built the image: they may not name host files (`password_file`
//! is config-only) and their paths must lie below `[docker] label_path_roots`.
//! Discovery runs on every engine: `local` when a Docker host is configured
//! (`[docker] host` or `$DOCKER_HOST`; a plain files-only setup never needs Docker) and
//! each `[engines.NAME]`. A job found on an engine runs there; the same job name
//! claimed on two engines is refused, naming both, unless the config defines the job.

use super::reporter::Reporter;
use crate::config::{Config, Job, JobOrigin, LOCAL_ENGINE, Quiesce};
use crate::docker::{ContainerInfo, Docker};
use crate::domain::{JobKind, QuiesceMode, validate_job_name};
use std::path::PathBuf;

pub const ENABLE: &str = "omk-backup.enable=true";

/// Whether this config asks for label discovery: it is on and a Docker host is
/// configured (`[docker] host`, `$DOCKER_HOST` or an `[engines.NAME]`).
pub fn wanted(config: &Config) -> bool {
    !engines(config).is_empty()
}

/// The engines label discovery lists: `local` when a Docker host is configured
/// (`[docker] host` or `$DOCKER_HOST`), and every `[engines.NAME]`.
pub fn engines(config: &Config) -> Vec<String> {
    if !config.docker_discover {
        return Vec::new();
    }
    let local = config.docker_host.is_some()
        || std::env::var_os("DOCKER_HOST").is_some_and(|h| !h.is_empty());
    config
        .engine_names()
        .into_iter()
        .filter(|e| local || e != LOCAL_ENGINE)
        .collect()
}

/// The labelled containers of one engine.
pub struct Found {
    pub engine: String,
    pub containers: Vec<ContainerInfo>,
}

/// List the labelled containers of `engine`.
pub async fn list(engine: &str, docker: &Docker) -> anyhow::Result<Found> {
    Ok(Found {
        engine: engine.to_string(),
        containers: docker.list_labelled(ENABLE).await?,
    })
}

/// Add the labelled containers' jobs of every engine to `config`; each job runs on the
/// engine its container was found on. Containers whose labels are refused (or that
/// claim the same job name, on one engine or on several) add no job: they come back as
/// problems, one line each naming the container, its engine and the label, for the run
/// to fail on. A job the config defines wins over labels claiming its name (a note).
pub fn merge(config: &mut Config, found: Vec<Found>, reporter: &dyn Reporter) -> Vec<String> {
    let several = found.len() > 1 || found.iter().any(|f| f.engine != LOCAL_ENGINE);
    let mut problems = Vec::new();
    let mut jobs = Vec::new();
    for f in found {
        for c in f.containers {
            let at = if several {
                format!("{} on engine {}", c.name, f.engine)
            } else {
                c.name.clone()
            };
            match job_from_labels(&c, &config.label_path_roots) {
                Ok(mut job) => {
                    job.engine = f.engine.clone();
                    jobs.push((job, at));
                }
                Err(why) => problems.push(format!("container {at}: {why}")),
            }
        }
    }
    // The config names it: its definition wins, whatever the labels say.
    jobs.retain(|(job, at)| {
        let Some(existing) = config.jobs.get(&job.name) else {
            return true;
        };
        let defined = match &existing.origin {
            JobOrigin::Config { line } => format!("{}:{line}", config.file.display()),
            JobOrigin::Label { container } => format!("the labels of container {container}"),
        };
        reporter.note(&format!(
            "job `{}` from the labels of container {at} is ignored: {defined} already defines it",
            job.name
        ));
        false
    });
    let claims: Vec<(String, String)> = jobs
        .iter()
        .map(|(j, c)| (j.name.clone(), c.clone()))
        .collect();
    let dups = duplicate_claims(&claims);
    for (name, containers) in &dups {
        problems.push(format!(
            "job `{name}` is claimed by the labels of several containers ({}): none of them is backed up; give each its own omk-backup.job label, or define the job in the config with its engine",
            containers.join(", ")
        ));
    }
    for (job, _) in jobs {
        if !dups.iter().any(|(n, _)| *n == job.name) {
            config.jobs.insert(job.name.clone(), job);
        }
    }
    problems
}

/// Labels that would make omk-backup read a file of the host: config-only. (Labels are
/// written by whoever built the image: a label naming `/etc/shadow` as a password file
/// would have it sent into that container's exec environment.)
const HOST_FILE_LABELS: &[&str] = &["password_file", "password_command", "probes"];

/// The job a container's labels describe. `roots` are `[docker] label_path_roots`
/// (canonical); a label path must resolve (symlinks included) below one of them.
pub fn job_from_labels(c: &ContainerInfo, roots: &[PathBuf]) -> Result<Job, String> {
    for k in HOST_FILE_LABELS {
        if c.labels.contains_key(&format!("omk-backup.{k}")) {
            return Err(format!(
                "label omk-backup.{k} is refused: labels are written by whoever built the image and may not name host files or commands; set {k} for this job in the config ([jobs.NAME] with container = \"{}\") instead",
                c.name
            ));
        }
    }
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
        engine: LOCAL_ENGINE.to_string(),
        paths: Vec::new(),
        exclude: Vec::new(),
        quiesce: None,
        container: None,
        user: label("user"),
        password_file: None,
        database: label("database"),
        retention: None,
        notify: None,
        origin: JobOrigin::Label {
            container: c.name.clone(),
        },
        probes: Vec::new(),
        shrink_limit: label_shrink_limit(label("shrink_limit"))?,
    };
    match kind {
        JobKind::Files => {
            let paths = label("paths").ok_or("a files job needs omk-backup.paths")?;
            for p in paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                job.paths.push(allowed_path(p, roots)?);
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

/// `omk-backup.shrink_limit`: a label may only make the shrink check stricter than the
/// default (whoever built the image must not be able to switch it off).
fn label_shrink_limit(v: Option<String>) -> Result<u8, String> {
    let max = crate::config::DEFAULT_SHRINK_LIMIT;
    let Some(v) = v else { return Ok(max) };
    match v.parse::<u8>() {
        Ok(p) if p <= max => Ok(p),
        _ => Err(format!(
            "omk-backup.shrink_limit=`{v}` is refused: a label may only make the shrink check stricter (a percent from 0 to {max}); set a looser shrink_limit for this job in the config instead"
        )),
    }
}

/// A label path, resolved, if it lies below one of `roots` (already canonical).
fn allowed_path(p: &str, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let path = PathBuf::from(p);
    if !path.is_absolute() {
        return Err(format!("omk-backup.paths: `{p}` is not an absolute path"));
    }
    if roots.is_empty() {
        return Err(format!(
            "omk-backup.paths: `{p}` is refused: labels may name host paths only below [docker] label_path_roots, which is not set (add the folder to it, or define the job in the config)"
        ));
    }
    let resolved = std::fs::canonicalize(&path)
        .map_err(|e| format!("omk-backup.paths: `{p}` cannot be resolved on this host ({e})"))?;
    if !roots.iter().any(|r| resolved.starts_with(r)) {
        return Err(format!(
            "omk-backup.paths: `{p}` (resolved: {}) is outside [docker] label_path_roots ({}): refused",
            resolved.display(),
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(resolved)
}

/// Job names claimed by more than one container: `(name, containers)`. Neither may run
/// (which one is the real one is not ours to guess).
pub fn duplicate_claims(jobs: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut by_name: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (job, container) in jobs {
        by_name.entry(job).or_default().push(container.clone());
    }
    by_name
        .into_iter()
        .filter(|(_, cs)| cs.len() > 1)
        .map(|(j, cs)| (j.to_string(), cs))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn container(labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "app_db".into(),
            state: crate::docker::ContainerState::Running,
            exit_code: None,
            image_id: String::new(),
            image: "postgres:15".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        }
    }

    #[test]
    fn labels_make_jobs() {
        let j = job_from_labels(
            &container(&[
                ("omk-backup.enable", "true"),
                ("omk-backup.kind", "postgres"),
                ("omk-backup.user", "immich"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(j.name, "app_db");
        assert_eq!(j.container.as_deref(), Some("app_db"));
        assert_eq!(j.user.as_deref(), Some("immich"));
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        let roots = [std::fs::canonicalize(root.path()).unwrap()];
        let f = job_from_labels(
            &container(&[
                ("omk-backup.kind", "files"),
                ("omk-backup.job", "vault"),
                (
                    "omk-backup.paths",
                    &format!("{}, {}", a.display(), root.path().display()),
                ),
                ("omk-backup.quiesce", "stop"),
            ]),
            &roots,
        )
        .unwrap();
        assert_eq!(f.name, "vault");
        assert_eq!(f.paths.len(), 2);
        assert_eq!(f.quiesce.unwrap().mode, QuiesceMode::Stop);
    }

    #[test]
    fn a_shrink_limit_label_may_only_make_the_check_stricter() {
        let with = |v: &str| {
            job_from_labels(
                &container(&[
                    ("omk-backup.kind", "postgres"),
                    ("omk-backup.shrink_limit", v),
                ]),
                &[],
            )
        };
        assert_eq!(with("10").unwrap().shrink_limit, 10);
        assert_eq!(with("0").unwrap().shrink_limit, 0);
        assert_eq!(with("50").unwrap().shrink_limit, 50);
        let plain = job_from_labels(&container(&[("omk-backup.kind", "postgres")]), &[]);
        assert_eq!(plain.unwrap().shrink_limit, 50);
        for looser in ["51", "100", "-5", "half"] {
            let e = with(looser).unwrap_err();
            assert!(e.contains("omk-backup.shrink_limit"), "{e}");
            assert!(e.contains("only make the shrink check stricter"), "{e}");
        }
    }

    #[test]
    fn labels_cannot_name_host_files_or_paths_outside_the_roots() {
        // password_file (and any label that reads the host) is config-only.
        for k in ["password_file", "password_command", "probes"] {
            let e = job_from_labels(
                &container(&[
                    ("omk-backup.kind", "postgres"),
                    (&format!("omk-backup.{k}"), "/etc/shadow"),
                ]),
                &[],
            )
            .unwrap_err();
            assert!(
                e.contains(&format!("omk-backup.{k}"))
                    && e.contains("app_db")
                    && e.contains("config"),
                "{e}"
            );
        }
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("inside");
        std::fs::create_dir_all(&inside).unwrap();
        let outside = tempfile::tempdir().unwrap();
        // A symlink inside the root that points outside it is outside.
        let link = inside.join("escape");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        let roots = [std::fs::canonicalize(root.path()).unwrap()];
        let files = |p: &str| container(&[("omk-backup.kind", "files"), ("omk-backup.paths", p)]);
        assert!(job_from_labels(&files(&inside.display().to_string()), &roots).is_ok());
        for (p, want) in [
            (
                link.display().to_string(),
                "outside [docker] label_path_roots",
            ),
            (outside.path().display().to_string(), "outside"),
            (format!("{}/../..", inside.display()), "outside"),
            ("/etc".to_string(), "outside"),
            (
                format!("{}/missing", inside.display()),
                "cannot be resolved",
            ),
        ] {
            let e = job_from_labels(&files(&p), &roots).unwrap_err();
            assert!(e.contains(want), "{p}: {e}");
        }
        // No roots configured: every label path is refused.
        let e = job_from_labels(&files(&inside.display().to_string()), &[]).unwrap_err();
        assert!(e.contains("label_path_roots, which is not set"), "{e}");
    }

    #[test]
    fn a_job_name_claimed_twice_is_reported_with_both_containers() {
        let d = duplicate_claims(&[
            ("db".into(), "a".into()),
            ("web".into(), "w".into()),
            ("db".into(), "b".into()),
        ]);
        assert_eq!(
            d,
            vec![("db".to_string(), vec!["a".to_string(), "b".to_string()])]
        );
    }

    #[test]
    fn a_job_name_on_two_engines_is_refused_naming_both_unless_the_config_defines_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "x\n").unwrap();
        let text = "[repository]\nurl = \"r\"\npassword_file = \"pw\"\n[engines.nas]\ndocker = \"tcp://nas:2375\"\n";
        let file = dir.path().join("c.toml");
        let found = |name: &str| {
            let mut c = container(&[("omk-backup.kind", "postgres"), ("omk-backup.job", "db")]);
            c.name = name.into();
            c
        };
        let both = || {
            vec![
                Found {
                    engine: "local".into(),
                    containers: vec![found("a")],
                },
                Found {
                    engine: "nas".into(),
                    containers: vec![found("b"), {
                        let mut c = found("solo");
                        c.labels.insert("omk-backup.job".into(), "solo".into());
                        c
                    }],
                },
            ]
        };
        let mut config = crate::config::parse(&file, text).unwrap();
        let problems = merge(&mut config, both(), &crate::app::reporter::Silent);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("job `db`")
                && problems[0].contains("a on engine local, b on engine nas"),
            "{problems:?}"
        );
        assert!(!config.jobs.contains_key("db"));
        assert_eq!(config.jobs["solo"].engine, "nas");
        // The config defines `db`: it wins, no problem.
        let text =
            format!("{text}[jobs.db]\nkind = \"postgres\"\nengine = \"nas\"\ncontainer = \"b\"\n");
        let mut config = crate::config::parse(&file, &text).unwrap();
        let problems = merge(&mut config, both(), &crate::app::reporter::Silent);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.jobs["db"].origin, JobOrigin::Config { line: 6 });
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
            let e = job_from_labels(&container(&labels), &[]).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
