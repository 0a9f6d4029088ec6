//! The shrink check: a vanished source is not a good backup. A new snapshot's figures
//! (files jobs: file count and bytes; dumps: bytes and total rows) are compared with the
//! job's last *good* snapshot in the catalog; a fall to zero, or by more than the job's
//! `shrink_limit` percent, makes the new snapshot `suspect` (see `app::backup`).
//!
//! The comparison ([`judge`]) is pure; [`baseline`] reads the last good snapshot's
//! figures from the catalog. No baseline (a first backup) means no shrink: an empty
//! first files backup is only warned about ([`empty_first`]).

use crate::catalog::{Catalog, SnapshotRow};
use crate::config::Job;
use crate::domain::JobKind;

/// One figure of a snapshot, before (last good) and after (new).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// `files`, `bytes` or `rows`.
    pub name: &'static str,
    pub before: u64,
    pub after: u64,
}

impl Measure {
    /// How much of `before` was lost, in percent (0 when it did not fall).
    pub fn drop_percent(&self) -> f64 {
        if self.before == 0 || self.after >= self.before {
            return 0.0;
        }
        (self.before - self.after) as f64 * 100.0 / self.before as f64
    }

    /// Fell to zero from something, or by more than `limit` percent.
    fn shrank(&self, limit: u8) -> bool {
        if self.before == 0 || self.after >= self.before {
            return false;
        }
        self.after == 0
            || (self.before - self.after) as u128 * 100 > limit as u128 * self.before as u128
    }
}

/// The figures that fell too far; empty when the snapshot is fine.
pub fn judge(measures: &[Measure], limit: u8) -> Vec<Measure> {
    measures
        .iter()
        .copied()
        .filter(|m| m.shrank(limit))
        .collect()
}

/// `files fell from 1002 to 0 (-100.0 %), bytes from … to …`.
pub fn describe(fell: &[Measure]) -> String {
    fell.iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "{}{} from {} to {} (-{:.1} %)",
                m.name,
                if i == 0 { " fell" } else { "" },
                m.before,
                m.after,
                m.drop_percent()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last good snapshot of `job` and its figures to compare against: files jobs
/// `files` and `bytes`; database jobs the dump's `bytes` and (when the catalog has its
/// fingerprint) total `rows`. `None`: no good snapshot yet (nothing to compare with).
pub fn baseline(catalog: &Catalog, job: &Job) -> crate::catalog::Result<Option<Baseline>> {
    let Some(last) = catalog.latest_good(&job.name)? else {
        return Ok(None);
    };
    let figures = match job.kind {
        JobKind::Files => Figures {
            files: last.files.map(non_negative),
            bytes: last.bytes.map(non_negative),
            rows: None,
        },
        _ => match catalog.dump(&last.snapshot_id)? {
            Some(d) => Figures {
                files: None,
                bytes: Some(non_negative(d.bytes)),
                rows: d.fingerprint.map(|f| f.rows),
            },
            None => Figures {
                files: None,
                bytes: last.bytes.map(non_negative),
                rows: None,
            },
        },
    };
    Ok(Some(Baseline {
        snapshot: last,
        figures,
    }))
}

/// The last good snapshot and its figures.
pub struct Baseline {
    pub snapshot: SnapshotRow,
    pub figures: Figures,
}

/// A snapshot's figures; `None` where unknown (never compared).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    pub rows: Option<u64>,
}

impl Figures {
    /// The measures both sides know, `self` being the baseline.
    pub fn against(&self, new: &Figures) -> Vec<Measure> {
        let pairs = [
            ("files", self.files, new.files),
            ("bytes", self.bytes, new.bytes),
            ("rows", self.rows, new.rows),
        ];
        pairs
            .into_iter()
            .filter_map(|(name, b, a)| {
                Some(Measure {
                    name,
                    before: b?,
                    after: a?,
                })
            })
            .collect()
    }
}

/// A first backup (no baseline) of a files job that holds no files: allowed (there is
/// nothing to compare with), but worth a loud warning.
pub fn empty_first(kind: JobKind, new: &Figures) -> bool {
    kind == JobKind::Files && new.files == Some(0)
}

/// What the shrink check decided about a new snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Record it good; `note` (the snapshot's note and the run's output) says when a
    /// shrink was accepted.
    Good { note: Option<String> },
    /// Record it good, but warn loudly (on stderr whatever the output mode): a first
    /// files backup with no files.
    EmptyFirst(String),
    /// Record it `suspect` and fail the job with this message.
    Suspect(String),
}

/// Judge the new snapshot `new_id` of `job` with figures `new`; `accepted`: the run was
/// given `--accept-shrink JOB`.
pub fn check(
    catalog: &Catalog,
    job: &Job,
    new_id: &str,
    new: &Figures,
    accepted: bool,
) -> crate::catalog::Result<Judged> {
    let Some(base) = baseline(catalog, job)? else {
        if empty_first(job.kind, new) {
            return Ok(Judged::EmptyFirst(format!(
                "WARNING: the first backup of job `{}` holds no files (paths: {}); with nothing to compare it with it is recorded good, but check that the paths are right and mounted",
                job.name,
                job.paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        return Ok(Judged::Good { note: None });
    };
    let fell = judge(&base.figures.against(new), job.shrink_limit);
    if fell.is_empty() {
        return Ok(Judged::Good { note: None });
    }
    let what = format!(
        "{} against the last good snapshot {} ({})",
        describe(&fell),
        short(&base.snapshot.snapshot_id),
        crate::domain::rfc3339(crate::domain::from_millis(base.snapshot.time))
    );
    if accepted {
        return Ok(Judged::Good {
            note: Some(format!(
                "shrink accepted (--accept-shrink {}): {what}",
                job.name
            )),
        });
    }
    let guess = match job.kind {
        JobKind::Files => "an emptied folder or an unmounted share?",
        _ => "a truncated table, a dropped database or the wrong container?",
    };
    Ok(Judged::Suspect(format!(
        "{job}: the source shrank: {what}, more than shrink_limit = {limit} % ({guess}); snapshot {id} is kept as `suspect`: `restore latest` does not hand it out and retention skips this job; if the shrink is real, accept it with `omk-backup backup --accept-shrink {job}`",
        job = job.name,
        limit = job.shrink_limit,
        id = short(new_id),
    )))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &'static str, before: u64, after: u64) -> Measure {
        Measure {
            name,
            before,
            after,
        }
    }

    #[test]
    fn a_fall_to_zero_always_shrinks_even_with_a_limit_of_100() {
        for limit in [0, 50, 100] {
            assert_eq!(judge(&[m("files", 3, 0)], limit), vec![m("files", 3, 0)]);
        }
    }

    #[test]
    fn a_drop_past_the_limit_shrinks_and_one_within_it_does_not() {
        // The table: (before, after, limit, shrank).
        let table = [
            (1000, 500, 50, false), // exactly the limit: allowed
            (1000, 499, 50, true),
            (1000, 900, 10, false),
            (1000, 899, 10, true),
            (1000, 999, 0, true), // 0: any drop fails
            (1000, 1000, 0, false),
            (1000, 5000, 0, false), // growth is never a shrink
            (1000, 1, 100, false),  // 100: only a fall to zero
            (0, 0, 50, false),      // nothing before: nothing to lose
            (u64::MAX, 1, 50, true),
        ];
        for (before, after, limit, shrank) in table {
            let got = !judge(&[m("bytes", before, after)], limit).is_empty();
            assert_eq!(got, shrank, "{before} -> {after} with limit {limit}");
        }
    }

    #[test]
    fn every_fallen_figure_is_named_with_its_before_and_after() {
        let fell = judge(
            &[
                m("files", 1002, 0),
                m("bytes", 4000, 3900),
                m("rows", 800, 100),
            ],
            50,
        );
        assert_eq!(
            describe(&fell),
            "files fell from 1002 to 0 (-100.0 %), rows from 800 to 100 (-87.5 %)"
        );
    }

    #[test]
    fn only_figures_both_snapshots_know_are_compared() {
        let before = Figures {
            files: None,
            bytes: Some(10),
            rows: None,
        };
        let after = Figures {
            files: None,
            bytes: Some(1),
            rows: Some(0),
        };
        assert_eq!(before.against(&after), vec![m("bytes", 10, 1)]);
    }

    /// `check` against a real SQLite catalog: no baseline, a shrink, an accepted one, a
    /// suspect snapshot that is never the baseline.
    #[test]
    fn check_compares_with_the_last_good_snapshot_only() {
        use crate::catalog::SnapshotRow;
        use crate::config::JobOrigin;
        use crate::domain::SnapshotState;
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let job = Job {
            name: "photos".into(),
            kind: JobKind::Files,
            paths: vec!["/srv/photos".into()],
            exclude: Vec::new(),
            quiesce: None,
            container: None,
            user: None,
            password_file: None,
            database: None,
            retention: None,
            notify: None,
            origin: JobOrigin::Config { line: 1 },
            probes: Vec::new(),
            shrink_limit: 50,
            engine: crate::config::LOCAL_ENGINE.to_string(),
        };
        let files = |n: u64| Figures {
            files: Some(n),
            bytes: Some(n * 100),
            rows: None,
        };
        assert!(matches!(
            check(&cat, &job, "n1", &files(0), false).unwrap(),
            Judged::EmptyFirst(w) if w.contains("/srv/photos")
        ));
        assert_eq!(
            check(&cat, &job, "n1", &files(5), false).unwrap(),
            Judged::Good { note: None }
        );
        let row = |id: &str, time: i64, n: i64, state| SnapshotRow {
            snapshot_id: id.into(),
            job: "photos".into(),
            run_id: None,
            time,
            bytes: Some(n * 100),
            files: Some(n),
            data_added: None,
            duration_ms: None,
            state,
            note: None,
        };
        cat.insert_snapshot(&row("good0001", 1, 10, SnapshotState::Good))
            .unwrap();
        // A newer suspect snapshot with 1 file is not the baseline.
        cat.insert_snapshot(&row("susp0002", 2, 1, SnapshotState::Suspect))
            .unwrap();
        assert_eq!(
            check(&cat, &job, "n3", &files(6), false).unwrap(),
            Judged::Good { note: None }
        );
        let Judged::Suspect(msg) = check(&cat, &job, "n3abcdef99", &files(4), false).unwrap()
        else {
            panic!("a 60 % drop is a shrink");
        };
        assert!(
            msg.starts_with("photos: the source shrank: files fell from 10 to 4 (-60.0 %), bytes from 1000 to 400 (-60.0 %) against the last good snapshot good0001 ")
                && msg.contains("snapshot n3abcdef is kept as `suspect`")
                && msg.contains("--accept-shrink photos"),
            "{msg}"
        );
        let Judged::Good { note: Some(n) } = check(&cat, &job, "n3", &files(4), true).unwrap()
        else {
            panic!("accepted");
        };
        assert!(n.starts_with("shrink accepted (--accept-shrink photos): files fell from 10 to 4"));
    }

    #[test]
    fn an_empty_first_files_backup_is_flagged_but_a_dump_is_not() {
        let empty = Figures {
            files: Some(0),
            bytes: Some(0),
            rows: None,
        };
        assert!(empty_first(JobKind::Files, &empty));
        assert!(!empty_first(JobKind::Postgres, &empty));
        let some = Figures {
            files: Some(1),
            ..empty
        };
        assert!(!empty_first(JobKind::Files, &some));
    }
}
