//! Where progress and human notes go while a command runs. The `cli` implements
//! [`Reporter`] for the terminal; [`Silent`] says nothing. A leaf: it imports nothing
//! from `app`.

use crate::restic::BackupStatus;

/// Where progress and human notes go while a command runs (the `cli` implements it).
pub trait Reporter: Send + Sync {
    /// A line for a person (stderr), e.g. "photos: backing up 2 paths".
    fn note(&self, msg: &str);
    /// A backup's progress from restic's status lines.
    fn backup_progress(&self, job: &str, status: &BackupStatus);
    /// The current long step ended (clear any progress bar).
    fn step_done(&self);
}

/// A reporter that says nothing (tests, `--json` scripts).
pub struct Silent;

impl Reporter for Silent {
    fn note(&self, _: &str) {}
    fn backup_progress(&self, _: &str, _: &BackupStatus) {}
    fn step_done(&self) {}
}
