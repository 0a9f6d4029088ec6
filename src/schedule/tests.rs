//! Table tests: every Vixie feature, invalid lines with their positions, DST.

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn one(line: &str) -> Entry {
    let mut v = parse(Path::new("t.cron"), line, Tz::UTC).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(v.len(), 1, "{line}");
    v.remove(0)
}

fn nexts(line: &str, from: &str, n: usize) -> Vec<String> {
    let e = one(line);
    e.spec
        .next_n(e.tz, utc(from), n)
        .into_iter()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect()
}

type NextCase<'a> = (&'a str, &'a str, &'a [&'a str]);

/// Each line's next runs after `from`, as expected.
fn assert_nexts(cases: &[NextCase<'_>]) {
    for (line, from, want) in cases {
        assert_eq!(
            nexts(line, from, want.len().max(1)),
            want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{line}"
        );
    }
}

#[test]
fn vixie_features_next_runs() {
    // (line, from, expected next runs) — 2026-11-27 is a Friday.
    let cases: &[NextCase<'_>] = &[
        (
            "30 2 * * * backup",
            "2026-11-27T00:00:00Z",
            &["2026-11-27T02:30:00Z", "2026-11-28T02:30:00Z"],
        ),
        // Sunday as 0 and as 7, and by name.
        (
            "0 4 * * 0 forget",
            "2026-11-27T00:00:00Z",
            &["2026-11-29T04:00:00Z", "2026-12-06T04:00:00Z"],
        ),
        (
            "0 4 * * 7 forget",
            "2026-11-27T00:00:00Z",
            &["2026-11-29T04:00:00Z", "2026-12-06T04:00:00Z"],
        ),
        (
            "0 4 * * SUN forget",
            "2026-11-27T00:00:00Z",
            &["2026-11-29T04:00:00Z"],
        ),
        // Ranges with names, across the week's end with 7.
        (
            "0 9 * * mon-fri backup",
            "2026-11-27T10:00:00Z",
            &["2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z"],
        ),
        (
            "0 9 * * 5-7 backup",
            "2026-11-27T10:00:00Z",
            &[
                "2026-11-28T09:00:00Z",
                "2026-11-29T09:00:00Z",
                "2026-12-04T09:00:00Z",
            ],
        ),
        // Month names, lists.
        (
            "0 0 1 jan,jul * report --month previous",
            "2026-11-27T00:00:00Z",
            &["2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"],
        ),
        // Steps: */15, range with step.
        (
            "*/15 1 * * * backup",
            "2026-11-27T01:20:00Z",
            &[
                "2026-11-27T01:30:00Z",
                "2026-11-27T01:45:00Z",
                "2026-11-28T01:00:00Z",
            ],
        ),
        (
            "0 8-20/6 * * * backup",
            "2026-11-27T09:00:00Z",
            &[
                "2026-11-27T14:00:00Z",
                "2026-11-27T20:00:00Z",
                "2026-11-28T08:00:00Z",
            ],
        ),
    ];
    assert_nexts(cases);
}

#[test]
fn vixie_macros_and_edge_days_next_runs() {
    // (line, from, expected next runs) — 2026-11-27 is a Friday.
    let cases: &[NextCase<'_>] = &[
        // Day-of-month OR day-of-week when both are restricted: the 1st or any Monday.
        (
            "0 0 1 * 1 check",
            "2026-11-27T00:00:00Z",
            &[
                "2026-11-30T00:00:00Z",
                "2026-12-01T00:00:00Z",
                "2026-12-07T00:00:00Z",
            ],
        ),
        // A field starting with `*` counts as unrestricted (Vixie DOM_STAR): AND.
        (
            "0 0 */2 * 1 check",
            "2026-11-27T00:00:00Z",
            &["2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z"],
        ),
        // Macros.
        (
            "@hourly backup",
            "2026-11-27T00:10:00Z",
            &["2026-11-27T01:00:00Z"],
        ),
        (
            "@daily backup",
            "2026-11-27T00:10:00Z",
            &["2026-11-28T00:00:00Z"],
        ),
        (
            "@midnight backup",
            "2026-11-27T00:10:00Z",
            &["2026-11-28T00:00:00Z"],
        ),
        (
            "@weekly backup",
            "2026-11-27T00:10:00Z",
            &["2026-11-29T00:00:00Z"],
        ),
        (
            "@monthly backup",
            "2026-11-27T00:10:00Z",
            &["2026-12-01T00:00:00Z"],
        ),
        (
            "@yearly backup",
            "2026-11-27T00:10:00Z",
            &["2027-01-01T00:00:00Z"],
        ),
        (
            "@annually backup",
            "2026-11-27T00:10:00Z",
            &["2027-01-01T00:00:00Z"],
        ),
        // Leap day: only in leap years.
        (
            "0 0 29 2 * backup",
            "2026-11-27T00:00:00Z",
            &["2028-02-29T00:00:00Z"],
        ),
        // Never: 30 February.
        ("0 0 30 2 * backup", "2026-11-27T00:00:00Z", &[]),
        // Strictly after: a run at exactly `from` is not the next one.
        (
            "30 2 * * * backup",
            "2026-11-27T02:30:00Z",
            &["2026-11-28T02:30:00Z"],
        ),
    ];
    assert_nexts(cases);
}

#[test]
fn tasks_parse() {
    let cases: &[(&str, Task)] = &[
        (
            "@daily backup",
            Task {
                kind: TaskKind::Backup,
                jobs: vec![],
                prune: false,
                read_data_subset: None,
                month: None,
                format: None,
                output: None,
                to: None,
            },
        ),
        (
            "@daily backup a b",
            Task {
                kind: TaskKind::Backup,
                jobs: vec!["a".into(), "b".into()],
                prune: false,
                read_data_subset: None,
                month: None,
                format: None,
                output: None,
                to: None,
            },
        ),
        (
            "@daily omk-backup forget --prune a",
            Task {
                kind: TaskKind::Forget,
                jobs: vec!["a".into()],
                prune: true,
                read_data_subset: None,
                month: None,
                format: None,
                output: None,
                to: None,
            },
        ),
        (
            "@daily check --read-data-subset=1/7",
            Task {
                kind: TaskKind::Check,
                jobs: vec![],
                prune: false,
                read_data_subset: Some("1/7".into()),
                month: None,
                format: None,
                output: None,
                to: None,
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(&one(line).task, want, "{line}");
    }
}

#[test]
fn restore_test_report_and_copy_tasks_parse() {
    let cases: &[(&str, Task)] = &[
        (
            "15 4 * * * copy --to offsite db",
            Task {
                kind: TaskKind::Copy,
                jobs: vec!["db".into()],
                prune: false,
                read_data_subset: None,
                month: None,
                format: None,
                output: None,
                to: Some("offsite".into()),
            },
        ),
        (
            "@daily restore-test a",
            Task {
                kind: TaskKind::RestoreTest,
                jobs: vec!["a".into()],
                prune: false,
                read_data_subset: None,
                month: None,
                format: None,
                output: None,
                to: None,
            },
        ),
        (
            "@daily report --month previous",
            Task {
                kind: TaskKind::Report,
                jobs: vec![],
                prune: false,
                read_data_subset: None,
                month: Some("previous".into()),
                format: None,
                output: None,
                to: None,
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(&one(line).task, want, "{line}");
        let again = one(&format!("@daily {}", want)).task;
        assert_eq!(&again, want, "{line} shown as `{want}` parses back");
    }
}

#[test]
fn comments_blank_lines_and_cron_tz_scope() {
    let text = "# a comment\n\n   \n30 2 * * * backup\nCRON_TZ=Europe/Berlin\n  # indented comment\n30 2 * * * backup\nCRON_TZ = America/New_York\n0 4 * * 0 forget --prune\n";
    let v = parse(Path::new("t.cron"), text, Tz::UTC).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!((v[0].line, v[0].tz), (4, Tz::UTC));
    assert_eq!((v[1].line, v[1].tz), (7, Tz::Europe__Berlin));
    assert_eq!((v[2].line, v[2].tz), (9, Tz::America__New_York));
    assert_eq!(v[1].when, "30 2 * * *");
}

type ErrCase<'a> = (&'a str, usize, usize, &'a str);

/// Each text fails at (line, column) with those words in the message, and a hint.
fn assert_errors(cases: &[ErrCase<'_>]) {
    for (text, line, col, msg) in cases {
        let e = parse(Path::new("s.cron"), text, Tz::UTC).expect_err(text);
        assert_eq!(e.position, Some((*line, *col)), "{text}: {e}");
        assert!(e.message.contains(msg), "{text}: {e}");
        assert!(e.hint.is_some(), "{text}: every error has a hint");
        assert!(
            e.to_string().starts_with(&format!("s.cron:{line}:{col}: ")),
            "{e}"
        );
    }
}

#[test]
fn invalid_fields_point_at_line_and_column() {
    // (text, line, column, words in the message)
    let cases: &[ErrCase<'_>] = &[
        (
            "60 2 * * * backup",
            1,
            1,
            "60 is out of range for the minute field",
        ),
        (
            "0 24 * * * backup",
            1,
            3,
            "24 is out of range for the hour field",
        ),
        (
            "0 2 0 * * backup",
            1,
            5,
            "0 is out of range for the day of month field",
        ),
        (
            "0 2 * 13 * backup",
            1,
            7,
            "13 is out of range for the month field",
        ),
        (
            "0 2 * * 8 backup",
            1,
            9,
            "8 is out of range for the day of week field",
        ),
        (
            "0 2 * * fry backup",
            1,
            9,
            "`fry` is not a valid day of week value",
        ),
        (
            "0 2 * foo * backup",
            1,
            7,
            "`foo` is not a valid month value",
        ),
        ("*/0 2 * * * backup", 1, 3, "step 0"),
        ("0 5-2 * * * backup", 1, 3, "runs backwards"),
        ("0 1,,2 * * * backup", 1, 5, "empty item"),
        ("5/10 * * * * backup", 1, 1, "a step needs a range"),
    ];
    assert_errors(cases);
}

#[test]
fn invalid_lines_point_at_line_and_column() {
    // (text, line, column, words in the message)
    let cases: &[ErrCase<'_>] = &[
        ("# ok\n30 2 * * * sing", 2, 12, "unknown task `sing`"),
        ("30 2 * * *", 1, 11, "no task"),
        (
            "30 2 * * backup",
            1,
            10,
            "only 4 time field(s) before the task `backup`",
        ),
        ("30 2 *", 1, 1, "needs 5 time fields"),
        ("0 30 2 * * * backup", 1, 12, "sixth time field"),
        ("@reboot backup", 1, 1, "@reboot is not supported"),
        ("@fortnightly backup", 1, 1, "unknown macro"),
        (
            "CRON_TZ=Mars/Olympus",
            1,
            9,
            "unknown time zone `Mars/Olympus`",
        ),
        ("MAILTO=me@example.org", 1, 1, "`MAILTO=` is not supported"),
        ("@daily forget --purge", 1, 15, "`--purge` is not an option"),
        ("@daily report --month 2026-13", 1, 15, "is not a month"),
        (
            "@daily check extra",
            1,
            14,
            "not an option or argument of check",
        ),
    ];
    assert_errors(cases);
}

/// DST table: (zone, line, from, expected runs in UTC).
#[test]
fn dst_runs_once_per_wall_clock_time() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // Berlin spring 2026-03-29: 02:00 CET -> 03:00 CEST. 02:30 does not exist:
        // runs right after the gap (03:00 CEST = 01:00Z), once.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
            ],
        ),
        // Every 15 minutes through the gap: 01:45 CET, then 03:00 CEST once, 03:15...
        (
            "Europe/Berlin",
            "*/15 1-3 * * *",
            "2026-03-29T00:40:00Z",
            &[
                "2026-03-29T00:45:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:15:00Z",
            ],
        ),
        // Berlin autumn 2026-10-25: 03:00 CEST -> 02:00 CET. 02:30 happens twice: first only.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
        // Hourly across the overlap: 02:30 runs once (CEST), 03:30 CET follows.
        (
            "Europe/Berlin",
            "30 * * * *",
            "2026-10-24T23:00:00Z",
            &[
                "2026-10-24T23:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T02:30:00Z",
            ],
        ),
        // New York spring 2026-03-08: 02:00 EST -> 03:00 EDT.
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        // New York autumn 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice: first only.
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
    ];
    for (zone, when, from, want) in cases {
        let text = format!("CRON_TZ={zone}\n{when} backup\n");
        let e = parse(Path::new("t.cron"), &text, Tz::UTC)
            .unwrap()
            .remove(0);
        let got: Vec<String> = e
            .spec
            .next_n(e.tz, utc(from), want.len())
            .iter()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect();
        assert_eq!(
            got,
            want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{zone} {when}"
        );
    }
}

/// Cross-check against croner (with its Vixie-compatible OR mode) for plain patterns in
/// UTC, where both must agree; the cases where they differ are in docs/schedules.md.
#[test]
fn agrees_with_croner_in_utc() {
    let patterns = [
        "30 2 * * *",
        "0 4 * * 0",
        "0 4 * * 7",
        "*/15 1 * * *",
        "0 8-20/6 * * *",
        "0 0 1 * 1",
        "0 0 13 * 5",
        "5 4 * * sun",
        "0 0 1 jan,jul *",
        "0 22 * * 1-5",
    ];
    let mut from = utc("2026-01-01T00:00:00Z");
    for p in patterns {
        let ours = one(&format!("{p} backup"));
        let theirs: croner::Cron = p.parse().unwrap();
        for _ in 0..50 {
            let a = ours.spec.next_after(Tz::UTC, from).unwrap();
            let b = theirs.find_next_occurrence(&from, false).unwrap();
            assert_eq!(a, b, "{p} after {from}");
            from = a;
        }
    }
}

#[test]
fn default_schedule_parses() {
    let v = parse(Path::new(DEFAULT_NAME), DEFAULT, Tz::UTC).unwrap();
    let kinds: Vec<TaskKind> = v.iter().map(|e| e.task.kind).collect();
    assert_eq!(
        kinds,
        [
            TaskKind::Backup,
            TaskKind::Forget,
            TaskKind::Check,
            TaskKind::RestoreTest,
            TaskKind::Report
        ]
    );
}

#[test]
fn next_backup_covers_named_and_all_jobs() {
    let text = "0 1 * * * backup a\n0 3 * * * backup\n0 0 * * * forget\n";
    let s = Schedule {
        sources: vec![],
        entries: parse(Path::new("t"), text, Tz::UTC).unwrap(),
    };
    let now = utc("2026-11-27T00:30:00Z");
    assert_eq!(s.next_backup("a", now), Some(utc("2026-11-27T01:00:00Z")));
    assert_eq!(s.next_backup("b", now), Some(utc("2026-11-27T03:00:00Z")));
}

/// Pins the facts docs/schedules.md states about croner 3.0.1, our test oracle: where
/// it differs from Vixie cron, our parser follows Vixie.
#[test]
fn croner_differs_where_documented() {
    let from = utc("2026-11-27T00:00:00Z");
    let c = |p: &str| p.parse::<croner::Cron>();
    // 1. `*/2` in day-of-month with a restricted day-of-week: croner ORs, Vixie ANDs.
    let theirs = c("0 0 */2 * 1")
        .unwrap()
        .find_next_occurrence(&from, false)
        .unwrap();
    assert_eq!(
        theirs,
        utc("2026-11-29T00:00:00Z"),
        "croner: the 29th (a Sunday) matches"
    );
    assert_eq!(
        one("0 0 */2 * 1 backup").next_after(from),
        Some(utc("2026-12-07T00:00:00Z"))
    );
    // 2. Six fields are read as seconds first: a crontab line with a stray field shifts.
    assert!(c("0 30 2 * * *").is_ok());
    assert!(parse(Path::new("t"), "0 30 2 * * * backup", Tz::UTC).is_err());
    // 3. Quartz extensions that crontab does not have.
    for p in ["0 0 L * *", "0 0 * * 5#2", "0 0 ? * *"] {
        assert!(c(p).is_ok(), "{p}");
        assert!(
            parse(Path::new("t"), &format!("{p} backup"), Tz::UTC).is_err(),
            "{p}"
        );
    }
    // 4. DST: croner 3 agrees with us on Berlin's gap and overlap.
    let berlin = Tz::Europe__Berlin;
    let spring = c("30 2 * * *")
        .unwrap()
        .find_next_occurrence(&utc("2026-03-28T12:00:00Z").with_timezone(&berlin), false)
        .unwrap();
    assert_eq!(spring.with_timezone(&Utc), utc("2026-03-29T01:00:00Z"));
}
