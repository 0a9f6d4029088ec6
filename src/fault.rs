//! Test-only fault points: `OMK_BACKUP_FAULT=<point>` makes the process exit at that
//! point, as a SIGKILL would, with no cleanup. They exist for crash windows too narrow to
//! hit with a real kill on demand, and have no other effect:
//!
//! - [`AFTER_SNAPSHOT`] (`exit-after-snapshot`): a backup's restic run succeeded and
//!   the catalog has not recorded the snapshot yet (reconciliation must find it).
//! - [`WHILE_QUIESCED`] (`exit-while-quiesced`): a files job's container is paused or
//!   stopped and its journal row is open (recovery must resume it).

/// The backup made a snapshot the catalog has not recorded yet.
pub const AFTER_SNAPSHOT: &str = "exit-after-snapshot";
/// A container is quiesced and its journal row is open.
pub const WHILE_QUIESCED: &str = "exit-while-quiesced";

/// Exit now (code 137, as after SIGKILL) when `OMK_BACKUP_FAULT` names this point.
pub fn point(name: &str) {
    if std::env::var_os("OMK_BACKUP_FAULT").is_some_and(|v| v == name) {
        eprintln!("OMK_BACKUP_FAULT={name}: exiting now");
        std::process::exit(137);
    }
}
