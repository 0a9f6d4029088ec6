//! The repository's health as the catalog records it: how much data passing checks
//! read within the check period ([`coverage`]) and how a failed check is shown until
//! one passes ([`flag_text`]). Shared by `status`, `check` and the monthly report.

use crate::domain::{from_millis, rfc3339};
use serde::Serialize;
use std::collections::HashSet;

/// How much of the repository's data checks have read within the period.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub period_days: u32,
    pub subsets: u32,
    /// Distinct rotating subsets read by a passing check within the period (a passing
    /// `1/1` counts as all of them).
    pub subsets_read: u32,
    pub complete: bool,
}

/// Coverage of the check period ending at `now`.
pub fn coverage(
    catalog: &crate::catalog::Catalog,
    repo: &str,
    policy: crate::config::CheckPolicy,
    now: i64,
) -> anyhow::Result<Coverage> {
    let from = now - i64::from(policy.period_days) * 86_400_000;
    let n = i64::from(policy.subsets);
    let mut read = HashSet::new();
    let mut all = false;
    for c in catalog.check_runs(repo, from, now + 1)? {
        if !c.passed {
            continue;
        }
        match (c.k, c.n) {
            (Some(1), Some(1)) => all = true,
            (Some(k), Some(cn)) if cn == n => {
                read.insert(k);
            }
            _ => {}
        }
    }
    let subsets_read = if all {
        policy.subsets
    } else {
        read.len() as u32
    };
    Ok(Coverage {
        period_days: policy.period_days,
        subsets: policy.subsets,
        subsets_read,
        complete: subsets_read >= policy.subsets,
    })
}

/// How a failed check is shown until a check passes.
pub fn flag_text(c: &crate::catalog::CheckRunRow) -> String {
    format!(
        "the repository check of {} failed{}: {}; find the damage with `omk-backup check --read-data-subset 1/1`, repair it (restic repair), then check again",
        rfc3339(from_millis(c.at)),
        c.subset
            .as_ref()
            .map(|s| format!(" (data subset {s})"))
            .unwrap_or_default(),
        c.error.as_deref().unwrap_or("no detail")
    )
}
