//! The tightest socket-proxy rules for one configuration (`omk-backup proxy-rules`).
//!
//! Pure: a [`Needs`] value (which containers are exec'd into, paused, stopped; whether
//! label discovery and database restore tests run) becomes the text of a haproxy
//! configuration (the Tecnativa/linuxserver style) or CetusGuard rules. Every rule that
//! can name a container names it: exec only in the configured databases' containers,
//! pause/unpause and stop/start only in the quiesced ones, and create-side endpoints
//! (start, kill, DELETE, archive PUT, exec) only for `omk-restore-*` scratch containers.
//! What a path-only proxy cannot narrow (a create body: privileged creates) is said in
//! the output's comments and in docs/socket-proxy.md. With a restore lab
//! (`[restore_test] docker`) the production engines get no create-side rule at all,
//! only the image export (a read); the lab gets the scratch rules and the image load.

mod render;

pub use render::{cetusguard, haproxy};
use std::collections::BTreeSet;

/// The prefix of every scratch container's name.
pub const SCRATCH_PREFIX: &str = "omk-restore-";

/// What one configuration asks of the Docker API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Containers dumps run in (exec create/start/inspect, and inspect).
    pub exec: BTreeSet<String>,
    /// Containers paused and unpaused around files jobs.
    pub pause: BTreeSet<String>,
    /// Containers stopped and started around files jobs.
    pub stop: BTreeSet<String>,
    /// Label discovery lists containers.
    pub discover: bool,
    /// Database restore tests run in scratch containers on this engine.
    pub scratch: bool,
    /// Restore tests run on a separate lab engine, which copies the source image from
    /// here when it lacks it: `GET /images/{id}/json` and `/images/{id}/get` (reads).
    pub image_export: bool,
    /// This engine is the restore lab: images are loaded into it (`POST /images/load`).
    pub image_load: bool,
}

/// A container name that cannot go into a rule (it would not be a Docker name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "container name {0:?} is not a Docker container name (letters, digits, `_`, `.`, `-`, starting with a letter or digit): fix it in the config"
)]
pub struct BadName(pub String);

impl Needs {
    /// Every container a rule names, checked to be a plain Docker name.
    pub fn validate(&self) -> Result<(), BadName> {
        for n in self.exec.iter().chain(&self.pause).chain(&self.stop) {
            let mut chars = n.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
            if !first_ok
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return Err(BadName(n.clone()));
            }
        }
        Ok(())
    }

    /// Does anything need Docker at all?
    pub fn any(&self) -> bool {
        self.discover
            || self.scratch
            || self.image_export
            || !self.exec.is_empty()
            || !self.pause.is_empty()
            || !self.stop.is_empty()
    }

    /// Containers that are inspected by name (every named one).
    pub fn inspected(&self) -> BTreeSet<String> {
        self.exec
            .iter()
            .chain(&self.pause)
            .chain(&self.stop)
            .cloned()
            .collect()
    }
}

/// `a|b|c` with regex metacharacters of each name escaped (`.` is the only one a
/// Docker name may hold).
pub fn alternation<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    names
        .into_iter()
        .map(|n| n.replace('.', "\\."))
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests;
