//! The disaster-recovery kit: `kit export` gathers what a fresh machine needs to get
//! the data back — the config (rewritten to be self-contained), the repository password
//! (read from password_file, or by running password_command), database password files
//! and a consistent copy of the catalog — and seals it with a passphrase (`crate::kit`).
//! `kit open` unseals it into a folder as a working config; `restore-test --from-kit`
//! proves a restore works from the kit alone.

use super::Globals;
use super::reporter::Reporter;
use super::session::Session;
use crate::config::{Config, PasswordSource};
use crate::kit::{self, Archive, KdfParams};
use crate::secret::Secret;
use anyhow::{Context, bail};
use serde::Serialize;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const CONFIG_NAME: &str = "omk-backup.toml";
const README: &str = "This folder was unsealed from an omk-backup recovery kit.\n\
omk-backup.toml is a working config: run\n\
  omk-backup --config omk-backup.toml snapshots\n\
  omk-backup --config omk-backup.toml restore latest --job JOB --target /some/empty/folder\n\
secrets/ holds the repository password and database passwords (mode 0600).\n\
Delete this folder when you are done: it holds every secret needed to read your backups.\n";

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub output: String,
    pub files: Vec<String>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenReport {
    pub into: String,
    pub config: String,
    pub files: Vec<String>,
    /// Why the unsealed config does not load on this machine yet, if it does not.
    pub config_problem: Option<String>,
}

pub async fn export(s: &Session, output: &Path, pass: &Secret) -> anyhow::Result<ExportReport> {
    let config = &s.config;
    let mut a = Archive::default();
    a.add(
        "secrets/restic_password",
        0o600,
        password_bytes(&config.repository.password, "repository").await?,
    );
    for copy in config.copies.values() {
        let key = format!("copies.{}", copy.name);
        let bytes = password_bytes(&copy.repository.password, &key).await?;
        a.add(&format!("secrets/copy-{}", copy.name), 0o600, bytes);
    }
    for job in config.jobs.values() {
        if let Some(pf) = &job.password_file {
            let b = std::fs::read(pf).with_context(|| {
                format!(
                    "cannot read jobs.{}.password_file {}",
                    job.name,
                    pf.display()
                )
            })?;
            a.add(&format!("secrets/db-{}", job.name), 0o600, b);
        }
    }
    a.add("catalog.db", 0o600, catalog_copy(s)?);
    a.add(CONFIG_NAME, 0o600, rewrite_config(config)?.into_bytes());
    a.add("README.txt", 0o644, README.as_bytes().to_vec());
    let files = a.entries.iter().map(|e| e.name.clone()).collect();
    let sealed = tokio::task::spawn_blocking({
        let plain = a.to_bytes();
        let pass = pass.clone();
        move || kit::seal(&plain, pass.expose().as_bytes(), KdfParams::default())
    })
    .await
    .context("the sealing thread failed")??;
    let tmp = output.with_extension("omk-kit-partial");
    let _ = std::fs::remove_file(&tmp);
    write_file(&tmp, &sealed, 0o600)
        .with_context(|| format!("cannot write the kit to {}", tmp.display()))?;
    std::fs::rename(&tmp, output)
        .with_context(|| format!("cannot move the kit into place at {}", output.display()))?;
    Ok(ExportReport {
        output: output.display().to_string(),
        files,
        bytes: sealed.len() as u64,
    })
}

/// A repository password's bytes (never logged); `key` names its config table.
async fn password_bytes(source: &PasswordSource, key: &str) -> anyhow::Result<Vec<u8>> {
    match source {
        PasswordSource::File(p) => std::fs::read(p).with_context(|| {
            format!(
                "cannot read {key}.password_file {}; the kit needs the password to be useful",
                p.display()
            )
        }),
        PasswordSource::Command(cmd) => {
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .await
                .with_context(|| format!("cannot run {key}.password_command"))?;
            if !out.status.success() || out.stdout.is_empty() {
                bail!(
                    "{key}.password_command failed ({}) or printed nothing; fix it so `omk-backup backup` works, then export the kit",
                    out.status
                );
            }
            Ok(out.stdout)
        }
    }
}

fn catalog_copy(s: &Session) -> anyhow::Result<Vec<u8>> {
    let dir = s
        .config
        .catalog_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let tmp = dir.join(format!(".omk-kit-catalog-{}.db", crate::random::hex(6)?));
    let res = (|| -> anyhow::Result<Vec<u8>> {
        s.catalog.copy_to(&tmp)?;
        Ok(std::fs::read(&tmp)?)
    })();
    let _ = std::fs::remove_file(&tmp);
    res.context("cannot copy the catalog into the kit")
}

/// The config as the kit carries it: catalog and secrets beside it, everything else
/// absolute (the kit opens in another folder, maybe on another machine).
pub fn rewrite_config(config: &Config) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&config.file)
        .with_context(|| format!("cannot read the config {}", config.file.display()))?;
    let mut t: toml::Table = text
        .parse()
        .with_context(|| format!("cannot parse the config {}", config.file.display()))?;
    let table = |t: &mut toml::Table, k: &str| -> Option<toml::Table> {
        t.get(k).and_then(|v| v.as_table()).cloned()
    };
    let mut cat = table(&mut t, "catalog").unwrap_or_default();
    cat.insert("path".into(), "catalog.db".into());
    t.insert("catalog".into(), cat.into());
    let mut repo = table(&mut t, "repository").unwrap_or_default();
    repo.insert("url".into(), config.repository.url.expose().into());
    // The kit opens on another machine: its snapshots are still this host's.
    repo.insert("host".into(), config.repository.host.clone().into());
    repo.remove("password_command");
    repo.remove("cache_dir");
    repo.insert("password_file".into(), "secrets/restic_password".into());
    t.insert("repository".into(), repo.into());
    rewrite_copies(config, &mut t);
    if let Some(files) = &config.schedule_files {
        let mut s = table(&mut t, "schedule").unwrap_or_default();
        s.insert(
            "files".into(),
            toml::Value::Array(files.iter().map(|f| f.clone().into()).collect()),
        );
        t.insert("schedule".into(), s.into());
    }
    t.remove("restore_test");
    if let Some(jobs) = t.get_mut("jobs").and_then(|j| j.as_table_mut()) {
        for (name, j) in jobs.iter_mut() {
            let (Some(jt), Some(job)) = (j.as_table_mut(), config.jobs.get(name)) else {
                continue;
            };
            if jt.contains_key("paths") {
                jt.insert(
                    "paths".into(),
                    toml::Value::Array(
                        job.paths
                            .iter()
                            .map(|p| p.display().to_string().into())
                            .collect(),
                    ),
                );
            }
            if job.password_file.is_some() {
                jt.insert("password_file".into(), format!("secrets/db-{name}").into());
            }
        }
    }
    Ok(format!(
        "# Unsealed from an omk-backup recovery kit (exported from {}).\n{}",
        config.file.display(),
        toml::to_string(&t).context("cannot write the rewritten config")?
    ))
}

/// Each `[copies.NAME]` in the kit: its URL as is, its password from the kit.
fn rewrite_copies(config: &Config, t: &mut toml::Table) {
    let Some(copies) = t.get_mut("copies").and_then(|c| c.as_table_mut()) else {
        return;
    };
    for (name, c) in copies.iter_mut() {
        let (Some(ct), Some(copy)) = (c.as_table_mut(), config.copies.get(name)) else {
            continue;
        };
        ct.insert("url".into(), copy.repository.url.expose().into());
        ct.remove("password_command");
        ct.remove("cache_dir");
        ct.insert(
            "password_file".into(),
            format!("secrets/copy-{name}").into(),
        );
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Unseal into `into` (absent or empty), files with their modes, secrets 0600.
pub async fn open(kit_path: &Path, into: &Path, pass: &Secret) -> anyhow::Result<OpenReport> {
    if let Ok(mut rd) = std::fs::read_dir(into)
        && rd.next().is_some()
    {
        return Err(crate::exit::usage(format!(
            "{} is not empty; choose a new or empty folder for the kit",
            into.display()
        )));
    }
    let sealed = std::fs::read(kit_path)
        .with_context(|| format!("cannot read the kit {}", kit_path.display()))?;
    let plain = tokio::task::spawn_blocking({
        let pass = pass.clone();
        move || kit::open(&sealed, pass.expose().as_bytes())
    })
    .await
    .context("the unsealing thread failed")?
    .with_context(|| format!("cannot open the kit {}", kit_path.display()))?;
    let archive = Archive::from_bytes(&plain)
        .with_context(|| format!("cannot open the kit {}", kit_path.display()))?;
    if archive.get(CONFIG_NAME).is_none() {
        bail!("the kit {} holds no {CONFIG_NAME}", kit_path.display());
    }
    std::fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    std::fs::set_permissions(into, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {} to its owner", into.display()))?;
    let mut files = Vec::new();
    for e in &archive.entries {
        let dest = into.join(&e.name);
        if let Some(parent) = dest.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {} to its owner", parent.display()))?;
        }
        let mode = if e.name.starts_with("secrets/") {
            0o600
        } else {
            e.mode & 0o777
        };
        write_file(&dest, &e.bytes, mode)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        files.push(e.name.clone());
    }
    let config = into.join(CONFIG_NAME);
    let config_problem = crate::config::load(&config).err().map(|e| e.to_string());
    Ok(OpenReport {
        into: into.display().to_string(),
        config: config.display().to_string(),
        files,
        config_problem,
    })
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `restore-test --from-kit`: unseal into a private temporary folder and run the
/// restore tests with the kit's config and catalog only.
pub async fn restore_test(
    kit_path: &Path,
    pass: &Secret,
    jobs: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<super::verify::RestoreTestReport> {
    restore_test_on(kit_path, pass, jobs, None, reporter).await
}

/// `restore-test --from-kit KIT --repository COPY`: the same, from one of the kit's
/// copies (`None`: the primary).
pub async fn restore_test_on(
    kit_path: &Path,
    pass: &Secret,
    jobs: &[String],
    repository: Option<&str>,
    reporter: &dyn Reporter,
) -> anyhow::Result<super::verify::RestoreTestReport> {
    let dir =
        TempDir(std::env::temp_dir().join(format!("omk-kit-test-{}", crate::random::hex(6)?)));
    let opened = open(kit_path, &dir.0, pass).await?;
    if let Some(p) = &opened.config_problem {
        bail!("the kit's config does not load on this machine: {p}");
    }
    reporter.note(&format!(
        "unsealed {} into a temporary folder; testing with its config alone",
        kit_path.display()
    ));
    let g = Globals {
        config: Some(PathBuf::from(&opened.config)),
        ..Default::default()
    };
    let s = super::startup::locked(&g, reporter).await?;
    let mut rep = super::verify::run_on(&s, jobs, repository, reporter).await?;
    rep.from_kit = Some(kit_path.display().to_string());
    Ok(rep)
}
