//! The scheduler's state machine, pure and clock-free: every method takes `now`, so
//! DST, catch-up and overlap are tested without sleeping.
//!
//! Rules: tasks run one at a time, first due first run (a FIFO queue); a task that is
//! already queued or running is not queued again (its passed occurrences coalesce into
//! the pending one); a run missed while the host was down is queued once at start when
//! its scheduled time is within the grace window.

use super::{Entry, Schedule, Task, TaskKind};
use crate::domain::Trigger;
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// Default grace windows per task kind, when `[schedule] grace` is not set.
pub fn default_grace(kind: TaskKind) -> Duration {
    match kind {
        TaskKind::Backup => Duration::hours(6),
        TaskKind::Forget | TaskKind::Copy => Duration::hours(12),
        TaskKind::Check | TaskKind::RestoreTest => Duration::hours(24),
        TaskKind::Report => Duration::days(7),
    }
}

/// A task to run now.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub entry: Entry,
    /// The scheduled time this run stands for.
    pub scheduled: DateTime<Utc>,
    pub trigger: Trigger,
}

/// What `tick` or `catch_up` did with a due line (for logs and tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Queued {
        task: Task,
        scheduled: DateTime<Utc>,
    },
    /// Due again while still queued or running: not queued twice.
    Coalesced {
        task: Task,
        scheduled: DateTime<Utc>,
    },
}

pub struct Planner {
    entries: Vec<Entry>,
    next: Vec<Option<DateTime<Utc>>>,
    queue: VecDeque<Due>,
    running: Option<Task>,
}

/// Missed runs since `last` (the last recorded start of the command) within `grace` of
/// `now`: at most one per line, the latest scheduled time.
pub fn missed(
    entry: &Entry,
    last: Option<DateTime<Utc>>,
    grace: Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let floor = now - grace;
    let from = match last {
        Some(l) if l > floor => l,
        _ => floor,
    };
    let mut found = None;
    let mut t = from;
    // Walk to the latest occurrence not after now (a line may have missed several).
    while let Some(n) = entry.next_after(t) {
        if n > now {
            break;
        }
        found = Some(n);
        t = n;
    }
    found
}

impl Planner {
    pub fn new(schedule: &Schedule, now: DateTime<Utc>) -> Planner {
        let entries = schedule.entries.clone();
        let next = entries.iter().map(|e| e.next_after(now)).collect();
        Planner {
            entries,
            next,
            queue: VecDeque::new(),
            running: None,
        }
    }

    /// Queue the runs missed while we were not running (once per task).
    pub fn catch_up(
        &mut self,
        now: DateTime<Utc>,
        last_run: impl Fn(TaskKind) -> Option<DateTime<Utc>>,
        grace: impl Fn(TaskKind) -> Duration,
    ) -> Vec<Event> {
        let mut found: Vec<(DateTime<Utc>, Entry)> = self
            .entries
            .iter()
            .filter_map(|e| {
                missed(e, last_run(e.task.kind), grace(e.task.kind), now).map(|t| (t, e.clone()))
            })
            .collect();
        found.sort_by_key(|(t, _)| *t);
        found
            .into_iter()
            .map(|(t, e)| self.push(e, t, Trigger::CatchUp))
            .collect()
    }

    /// Swap in a reloaded schedule; what is queued or running stays.
    pub fn replace(&mut self, schedule: &Schedule, now: DateTime<Utc>) {
        self.entries = schedule.entries.clone();
        self.next = self.entries.iter().map(|e| e.next_after(now)).collect();
    }

    /// When something next becomes due (`None`: nothing ever will).
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.next.iter().flatten().min().copied()
    }

    /// Queue every line whose time has come; move each line's next time past `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        let mut due: Vec<(DateTime<Utc>, usize)> = self
            .next
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.filter(|t| *t <= now).map(|t| (t, i)))
            .collect();
        due.sort();
        for (t, i) in due {
            let e = self.entries[i].clone();
            events.push(self.push(e, t, Trigger::Daemon));
            self.next[i] = self.entries[i].next_after(now);
        }
        events
    }

    fn push(&mut self, entry: Entry, scheduled: DateTime<Utc>, trigger: Trigger) -> Event {
        let task = entry.task.clone();
        if self.running.as_ref() == Some(&task) || self.queue.iter().any(|d| d.entry.task == task) {
            return Event::Coalesced { task, scheduled };
        }
        self.queue.push_back(Due {
            entry,
            scheduled,
            trigger,
        });
        Event::Queued { task, scheduled }
    }

    /// The next task to run, if none is running.
    pub fn start_next(&mut self) -> Option<Due> {
        if self.running.is_some() {
            return None;
        }
        let d = self.queue.pop_front()?;
        self.running = Some(d.entry.task.clone());
        Some(d)
    }

    pub fn finished(&mut self) {
        self.running = None;
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queue a task asked for now (the dashboard's "back up now"); coalesced like a
    /// schedule line when the same task is already queued or running.
    pub fn enqueue(&mut self, entry: Entry, now: DateTime<Utc>, trigger: Trigger) -> Event {
        self.push(entry, now, trigger)
    }

    /// The running task and the queue, in order (for the dashboard's live page).
    pub fn snapshot(&self) -> (Option<&Task>, Vec<&Due>) {
        (self.running.as_ref(), self.queue.iter().collect())
    }

    /// Each line with its next time.
    pub fn upcoming(&self) -> impl Iterator<Item = (&Entry, Option<DateTime<Utc>>)> {
        self.entries.iter().zip(self.next.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::parse;
    use chrono_tz::Tz;
    use std::path::Path;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sched(text: &str) -> Schedule {
        Schedule {
            sources: vec![],
            entries: parse(Path::new("t.cron"), text, Tz::UTC).unwrap(),
        }
    }

    fn kinds(p: &mut Planner) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(d) = p.start_next() {
            v.push(format!(
                "{} {} {}",
                d.entry.task,
                d.scheduled.format("%dT%H:%M"),
                d.trigger.as_str()
            ));
            p.finished();
        }
        v
    }

    #[test]
    fn catch_up_inside_and_outside_the_grace_window() {
        let s = sched("30 2 * * * backup\n0 4 * * * check\n");
        let now = utc("2026-11-27T05:00:00Z");
        let last = |k: TaskKind| match k {
            TaskKind::Backup => Some(utc("2026-11-26T02:30:00Z")),
            _ => Some(utc("2026-11-26T04:00:00Z")),
        };
        // Inside: 02:30 is 2.5 h ago (< 6 h), 04:00 is 1 h ago.
        let mut p = Planner::new(&s, now);
        p.catch_up(now, last, default_grace);
        assert_eq!(
            kinds(&mut p),
            ["backup 27T02:30 catch-up", "check 27T04:00 catch-up"]
        );
        // Outside: a grace of 2 h excludes 02:30.
        let mut p = Planner::new(&s, now);
        p.catch_up(now, last, |_| Duration::hours(2));
        assert_eq!(kinds(&mut p), ["check 27T04:00 catch-up"]);
        // Already ran since the scheduled time: nothing to catch up.
        let mut p = Planner::new(&s, now);
        p.catch_up(now, |_| Some(utc("2026-11-27T04:30:00Z")), default_grace);
        assert!(kinds(&mut p).is_empty());
        // Several missed occurrences (hourly, down for 3 h): caught up once.
        let s = sched("0 * * * * backup\n");
        let mut p = Planner::new(&s, now);
        p.catch_up(now, |_| Some(utc("2026-11-27T01:00:00Z")), default_grace);
        assert_eq!(kinds(&mut p), ["backup 27T05:00 catch-up"]);
        // Never ran: the latest occurrence within grace.
        let mut p = Planner::new(&s, utc("2026-11-27T05:10:00Z"));
        p.catch_up(utc("2026-11-27T05:10:00Z"), |_| None, default_grace);
        assert_eq!(kinds(&mut p), ["backup 27T05:00 catch-up"]);
    }

    #[test]
    fn no_overlap_and_no_double_queue_when_a_task_runs_long() {
        let s = sched("*/10 * * * * backup\n5 * * * * check\n");
        let mut now = utc("2026-11-27T00:00:30Z");
        let mut p = Planner::new(&s, now);
        assert_eq!(p.next_wake(), Some(utc("2026-11-27T00:05:00Z")));
        now = utc("2026-11-27T00:05:00Z");
        p.tick(now);
        let first = p.start_next().unwrap();
        assert_eq!(first.entry.task.kind, TaskKind::Check);
        // The check runs for 40 minutes: backups fall due four times meanwhile.
        let mut events = Vec::new();
        while let Some(w) = p.next_wake().filter(|w| *w <= utc("2026-11-27T00:45:00Z")) {
            now = w;
            events.extend(p.tick(now));
            assert!(p.start_next().is_none(), "never two tasks at once");
        }
        let queued = events
            .iter()
            .filter(|e| matches!(e, Event::Queued { .. }))
            .count();
        let coalesced = events
            .iter()
            .filter(|e| matches!(e, Event::Coalesced { .. }))
            .count();
        assert_eq!((queued, coalesced), (1, 3), "{events:?}");
        assert_eq!(p.queued(), 1);
        p.finished();
        let next = p.start_next().unwrap();
        assert_eq!(next.entry.task.kind, TaskKind::Backup);
        assert_eq!(next.scheduled, utc("2026-11-27T00:10:00Z"));
        assert!(p.start_next().is_none());
    }

    #[test]
    fn wakes_only_at_due_times_across_dst() {
        let s = Schedule {
            sources: vec![],
            entries: parse(
                Path::new("t"),
                "CRON_TZ=Europe/Berlin\n30 2 * * * backup\n",
                Tz::UTC,
            )
            .unwrap(),
        };
        // Through Berlin's autumn change: one wake per day, 02:30 CEST then 02:30 CET.
        let mut now = utc("2026-10-24T12:00:00Z");
        let mut p = Planner::new(&s, now);
        let mut runs = Vec::new();
        for _ in 0..3 {
            now = p.next_wake().unwrap();
            assert_eq!(p.tick(now).len(), 1);
            runs.push(p.start_next().unwrap().scheduled);
            p.finished();
        }
        assert_eq!(
            runs,
            [
                utc("2026-10-25T00:30:00Z"),
                utc("2026-10-26T01:30:00Z"),
                utc("2026-10-27T01:30:00Z")
            ]
        );
    }

    /// Spring forward in New York and Berlin with an injected clock: the line whose time
    /// falls in the gap runs once, right after it; every day still runs exactly once.
    #[test]
    fn spring_gap_runs_once_after_the_gap() {
        for (zone, from, want) in [
            (
                "America/New_York",
                "2026-03-07T12:00:00Z",
                ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
            ),
            (
                "Europe/Berlin",
                "2026-03-28T12:00:00Z",
                ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            ),
        ] {
            let text = format!("CRON_TZ={zone}\n30 2 * * * backup\n");
            let s = Schedule {
                sources: vec![],
                entries: parse(Path::new("t"), &text, Tz::UTC).unwrap(),
            };
            let mut p = Planner::new(&s, utc(from));
            let mut runs = Vec::new();
            for _ in 0..2 {
                let now = p.next_wake().unwrap();
                p.tick(now);
                runs.push(p.start_next().unwrap().scheduled);
                p.finished();
                // Nothing else falls due within the same minute.
                assert!(p.tick(now + Duration::seconds(59)).is_empty(), "{zone}");
            }
            assert_eq!(runs, want.map(utc), "{zone}");
        }
    }
}
