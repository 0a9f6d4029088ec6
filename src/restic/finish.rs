//! A finished `restic backup`: its exit code, summary line and item errors become a
//! [`BackupDone`] or a typed error (exit code 3 = an incomplete snapshot, never good).

use super::{BackupDone, BackupSummary, ResticError, tail};
use crate::redact::RepoUrl;

pub(super) fn finish_backup(
    code: Option<i32>,
    summary: Option<BackupSummary>,
    item_errors: Vec<String>,
    stderr: &str,
    url: &RepoUrl,
) -> Result<BackupDone, ResticError> {
    match code {
        Some(0) => {
            let summary = summary.ok_or_else(|| ResticError::Protocol {
                command: "backup".into(),
                detail: "no summary line in its JSON output".into(),
            })?;
            let snapshot_id = summary
                .snapshot_id
                .clone()
                .ok_or_else(|| ResticError::Protocol {
                    command: "backup".into(),
                    detail: "the summary names no snapshot".into(),
                })?;
            Ok(BackupDone {
                summary,
                snapshot_id,
                item_errors,
            })
        }
        Some(3) => {
            let mut detail = url.scrub(&item_errors.join("; "));
            if detail.is_empty() {
                detail = tail(&url.scrub(stderr), 6);
            }
            Err(ResticError::SourceUnreadable {
                snapshot_id: summary.and_then(|s| s.snapshot_id),
                detail,
            })
        }
        code => Err(ResticError::from_exit("backup", code, stderr, url)),
    }
}
