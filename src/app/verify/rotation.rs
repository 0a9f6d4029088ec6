//! Which repository a scheduled `restore-test` restores from, so that over time every
//! repository (the primary and each `[copies.NAME]`) is proven restorable. Each
//! scheduled run takes the repository whose oldest "last test" among the run's jobs is
//! oldest (a job never tested there counts as oldest of all); ties go to the primary,
//! then to copies by name. With a primary and one copy, scheduled runs alternate.
//! A restore test run by hand (`restore-test`, `--repository NAME`) is not rotated.

use crate::app::session::Session;
use crate::config::Job;

/// The copy whose turn it is, or `None` for the primary (also when there are no copies).
pub(super) fn next(s: &Session, jobs: &[Job]) -> anyhow::Result<Option<String>> {
    if s.config.copies.is_empty() || jobs.is_empty() {
        return Ok(None);
    }
    let candidates = std::iter::once(None).chain(s.config.copies.keys().map(|k| Some(k.as_str())));
    let mut best: Option<(i64, Option<&str>)> = None;
    for repo in candidates {
        let mut oldest = i64::MAX;
        for job in jobs {
            let (last, _) = s.catalog.last_tests_in(&job.name, repo)?;
            oldest = oldest.min(last.unwrap_or(i64::MIN));
        }
        if best.is_none_or(|(b, _)| oldest < b) {
            best = Some((oldest, repo));
        }
    }
    Ok(best.and_then(|(_, r)| r.map(str::to_string)))
}
