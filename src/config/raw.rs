//! The TOML document as serde reads it, with spans kept for the fields we validate.

use crate::domain::Retention;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub catalog: Option<RawCatalog>,
    pub docker: Option<RawDocker>,
    pub repository: Option<Spanned<RawRepository>>,
    pub retention: Option<Retention>,
    pub schedule: Option<RawSchedule>,
    pub jobs: Option<BTreeMap<Spanned<String>, Spanned<RawJob>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    pub host: Option<Spanned<String>>,
    /// Make jobs from containers labelled `omk-backup.enable=true` (default true).
    pub discover: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepository {
    pub url: Spanned<String>,
    pub password_file: Option<Spanned<String>>,
    pub password_command: Option<Spanned<String>>,
    /// The restic binary to run; else `$OMK_BACKUP_RESTIC`, else `restic` on PATH.
    pub restic: Option<Spanned<String>>,
    /// restic's cache folder (useful on a read-only root filesystem).
    pub cache_dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub files: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub kind: Spanned<String>,
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    pub exclude: Option<Vec<String>>,
    pub quiesce: Option<Spanned<RawQuiesce>>,
    pub container: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub database: Option<Spanned<String>>,
    pub retention: Option<Retention>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuiesce {
    pub container: Spanned<String>,
    pub mode: Spanned<String>,
}
