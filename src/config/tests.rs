//! Table tests for config parsing and validation: every error names a place.

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        Fixture { dir }
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        parse(&self.dir.path().join("omk.toml"), text)
    }
}

const BASE: &str = "[repository]\nurl = \"repo\"\npassword_file = \"pw\"\n";

#[test]
fn minimal_config_resolves_relative_paths() {
    let f = Fixture::new();
    let c = f
        .parse(&format!(
            "{BASE}[jobs.photos]\nkind = \"files\"\npaths = [\"data\"]\n"
        ))
        .unwrap();
    assert_eq!(c.catalog_path, f.dir.path().join("catalog.db"));
    assert_eq!(
        c.repository.url.expose(),
        f.dir.path().join("repo").display().to_string()
    );
    assert_eq!(
        c.repository.password,
        PasswordSource::File(f.dir.path().join("pw"))
    );
    let job = &c.jobs["photos"];
    assert_eq!(job.paths, vec![f.dir.path().join("data")]);
    assert_eq!(job.origin, JobOrigin::Config { line: 4 });
}

#[test]
fn remote_urls_are_kept() {
    let f = Fixture::new();
    let c = f
        .parse("[repository]\nurl = \"sftp:nas:/srv/restic\"\npassword_command = \"cat x\"\n")
        .unwrap();
    assert_eq!(c.repository.url.expose(), "sftp:nas:/srv/restic");
    assert!(c.repository.local_path().is_none());
}

#[test]
fn errors_point_at_the_place() {
    let f = Fixture::new();
    let cases: &[(&str, &str, (usize, usize))] = &[
        // (config text, expected fragment, line/col)
        ("[repository\nurl = 1", "unclosed table", (1, 12)),
        (
            &format!("{BASE}bogus = 1\n"),
            "unknown field `bogus`",
            (4, 1),
        ),
        (
            "[repository]\nurl = 5\npassword_file = \"pw\"\n",
            "invalid type",
            (2, 7),
        ),
        (
            &format!("{BASE}[jobs.a]\nkind = \"files\"\n"),
            "jobs.a has no paths",
            (4, 1),
        ),
        (
            &format!("{BASE}[jobs.a]\nkind = \"files\"\npaths = []\n"),
            "jobs.a.paths is empty",
            (6, 9),
        ),
        (
            &format!("{BASE}[jobs.a]\nkind = \"files\"\npaths = [\"nope\"]\n"),
            "does not exist",
            (6, 10),
        ),
        (
            &format!("{BASE}[jobs.a]\nkind = \"tape\"\n"),
            "unknown kind `tape`",
            (5, 8),
        ),
        (
            &format!("{BASE}[jobs.a]\nkind = \"postgres\"\n"),
            "jobs.a has no container",
            (4, 1),
        ),
        (
            "[repository]\nurl = \"r\"\npassword_file = \"missing\"\n",
            "repository.password_file: cannot read",
            (3, 17),
        ),
        (
            "[repository]\nurl = \"r\"\n",
            "no password_file or password_command",
            (1, 1),
        ),
        (
            &format!("{BASE}[jobs.\"a b\"]\nkind = \"files\"\n"),
            "job name `a b`",
            (4, 7),
        ),
        (
            &format!(
                "{BASE}[jobs.a]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"c\", mode = \"freeze\" }}\n"
            ),
            "unknown mode `freeze`",
            (7, 37),
        ),
    ];
    let mut wrong = Vec::new();
    for (text, fragment, pos) in cases {
        let e = f.parse(text).expect_err(text);
        if !e.message.contains(fragment) || e.position != Some(*pos) {
            wrong.push(format!(
                "{text:?}: want {fragment:?} at {pos:?}, got {e} at {:?}",
                e.position
            ));
        }
        assert!(
            e.to_string()
                .starts_with(&f.dir.path().join("omk.toml").display().to_string())
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn empty_password_file_is_refused() {
    let f = Fixture::new();
    std::fs::write(f.dir.path().join("empty"), "").unwrap();
    let e = f
        .parse("[repository]\nurl = \"r\"\npassword_file = \"empty\"\n")
        .unwrap_err();
    assert!(e.message.contains("is empty"), "{e}");
    assert!(e.hint.is_some());
}

#[test]
fn missing_file_says_what_to_do() {
    let e = load(Path::new("/nonexistent/omk.toml")).unwrap_err();
    assert_eq!(e.message, "config file not found");
    assert!(e.hint.unwrap().contains("--config"));
}

#[test]
fn select_jobs_refuses_unknown_names() {
    let f = Fixture::new();
    let c = f
        .parse(&format!(
            "{BASE}[jobs.photos]\nkind = \"files\"\npaths = [\"data\"]\n"
        ))
        .unwrap();
    assert_eq!(c.select_jobs(&[]).unwrap().len(), 1);
    let e = c.select_jobs(&["nope".into()]).unwrap_err();
    assert!(e.to_string().contains("no job named `nope`") && e.to_string().contains("photos"));
}

#[test]
fn scheduler_keys_parse() {
    let f = Fixture::new();
    std::fs::write(f.dir.path().join("tok"), "t\n").unwrap();
    let c = f
        .parse(&format!(
            "{BASE}[schedule]\nfiles = [\"s/*.cron\"]\ngrace = \"90m\"\n[retention]\nkeep_last = 2\nafter_backup = true\n[metrics]\ntextfile = \"m.prom\"\n[notify]\nping_url = \"https://hc-ping.com/x\"\nwebhook = \"http://ntfy.local\"\nwebhook_token_file = \"tok\"\ntopic = \"b\"\ntimeout = \"5s\"\nretries = 1\n[jobs.a]\nkind = \"files\"\npaths = [\"data\"]\nnotify = {{ ping_url = \"https://hc-ping.com/y\" }}\n"
        ))
        .unwrap();
    assert_eq!(c.schedule_grace, Some(std::time::Duration::from_secs(5400)));
    assert!(c.retention_after_backup);
    assert_eq!(c.retention.keep_last, Some(2));
    assert_eq!(c.metrics_textfile, Some(f.dir.path().join("m.prom")));
    assert_eq!(c.notify.retries, 1);
    assert_eq!(c.notify.timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.notify.topic.as_deref(), Some("b"));
    assert_eq!(
        c.jobs["a"].notify.as_ref().unwrap().ping_url.as_deref(),
        Some("https://hc-ping.com/y")
    );
    assert_eq!(c.jobs["a"].notify.as_ref().unwrap().retries, 2);
}

#[test]
fn scheduler_key_errors_point_at_the_place() {
    let f = Fixture::new();
    let cases: &[(&str, &str, (usize, usize))] = &[
        (
            &format!("{BASE}[schedule]\ngrace = \"soon\"\n"),
            "schedule.grace: `soon` is not a duration",
            (5, 9),
        ),
        (
            &format!("{BASE}[schedule]\nevery = 1\n"),
            "unknown field `every`",
            (5, 1),
        ),
        (
            &format!("{BASE}[notify]\nping_url = \"hc-ping.com/x\"\n"),
            "notify.ping_url is not an http:// or https:// URL",
            (5, 12),
        ),
        (
            &format!("{BASE}[notify]\nwebhook = \"http://x\"\ntimeout = \"1 fortnight\"\n"),
            "notify.timeout",
            (6, 11),
        ),
        (
            &format!("{BASE}[notify]\nwebhook = \"http://x\"\nwebhook_token_file = \"nope\"\n"),
            "notify.webhook_token_file: cannot read",
            (6, 22),
        ),
        (
            &format!("{BASE}[metrics]\ntextfile = \"\"\n"),
            "metrics.textfile is empty",
            (5, 12),
        ),
        (
            &format!("{BASE}[retention]\nafter_backup = \"yes\"\n"),
            "invalid type",
            (5, 16),
        ),
        (
            &format!(
                "{BASE}[jobs.a]\nkind = \"files\"\npaths = [\"data\"]\nnotify = {{ webhook = \"ftp://x\" }}\n"
            ),
            "jobs.a.notify.webhook is not an http",
            (7, 22),
        ),
    ];
    let mut wrong = Vec::new();
    for (text, fragment, pos) in cases {
        let e = f.parse(text).expect_err(text);
        if !e.message.contains(fragment) || e.position != Some(*pos) || e.hint.is_none() {
            wrong.push(format!(
                "{text:?}: want {fragment:?} at {pos:?}, got {e} at {:?}",
                e.position
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn durations() {
    for (s, secs) in [
        ("90s", 90),
        ("30m", 1800),
        ("6h", 21600),
        ("2d", 172800),
        ("45", 45),
    ] {
        assert_eq!(
            parse_duration(s),
            Some(std::time::Duration::from_secs(secs)),
            "{s}"
        );
    }
    for bad in ["", "h", "6w", "-1h", "1.5h"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn deploy_example_config_uses_only_known_keys() {
    let text = include_str!("../../deploy/omk-backup.example.toml");
    let parsed: Result<raw::RawConfig, _> = toml::from_str(text);
    assert!(parsed.is_ok(), "{:?}", parsed.err());
}

#[test]
fn check_policy_and_restore_work_dir() {
    let f = Fixture::new();
    let c = f.parse(BASE).unwrap();
    assert_eq!(c.check, CheckPolicy::default());
    assert_eq!(c.restore_work_dir, None);
    let c = f
        .parse(&format!(
            "{BASE}[check]\nperiod_days = 7\nsubsets = 7\n\n[restore_test]\nwork_dir = \"scratch\"\n"
        ))
        .unwrap();
    assert_eq!(
        c.check,
        CheckPolicy {
            period_days: 7,
            subsets: 7
        }
    );
    assert_eq!(c.restore_work_dir, Some(f.dir.path().join("scratch")));
    let e = f
        .parse(&format!("{BASE}[check]\nsubsets = 0\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("check.subsets") && e.contains(":5:"), "{e}");
}

#[test]
fn probes_parse_for_database_jobs_only() {
    let f = Fixture::new();
    let c = f
        .parse(&format!(
            "{BASE}[jobs.db]\nkind = \"postgres\"\ncontainer = \"pg\"\nprobes = [{{ sql = \"SELECT 1\", expect = \"1\" }}, {{ sql = \"SELECT 2\", expect = \"2\", database = \"app\" }}]\n"
        ))
        .unwrap();
    let probes = &c.jobs["db"].probes;
    assert_eq!(probes.len(), 2);
    assert_eq!(probes[1].database.as_deref(), Some("app"));
    let e = f
        .parse(&format!(
            "{BASE}[jobs.f]\nkind = \"files\"\npaths = [\"data\"]\nprobes = [{{ sql = \"SELECT 1\", expect = \"1\" }}]\n"
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("probes is not used by a files job"), "{e}");
    let e = f
        .parse(&format!(
            "{BASE}[jobs.db]\nkind = \"sqlite\"\ncontainer = \"c\"\ndatabase = \"/d.db\"\nprobes = [{{ sql = \"x\", expect = \"1\", nope = 1 }}]\n"
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn scratch_limits() {
    let f = Fixture::new();
    let c = f
        .parse(&format!(
            "{BASE}[restore_test]\nmemory_mb = 4096\ncpus = 0.5\n"
        ))
        .unwrap();
    assert_eq!(c.scratch_limits.memory_mb, 4096);
    assert_eq!(c.scratch_limits.cpus, 0.5);
    assert_eq!(c.scratch_limits.pids, 512);
    let e = f
        .parse(&format!("{BASE}[restore_test]\nmemory_mb = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("memory_mb"), "{e}");
}

#[test]
fn web_section_defaults_and_values() {
    let f = Fixture::new();
    let c = f.parse(BASE).unwrap();
    assert_eq!(c.web, WebConfig::default());
    assert_eq!(c.web.rpo_target.as_secs(), 26 * 3600);
    let c = f
        .parse(&format!(
            "{BASE}[web]\nlisten = \"0.0.0.0:8427\"\nactions = true\nactions_group = \"admins\"\ntrusted_proxies = [\"172.20.0.0/16\", \"10.0.0.5\"]\npassword_file = \"pw\"\nrpo_target = \"2d\"\n"
        ))
        .unwrap();
    assert_eq!(c.web.listen, "0.0.0.0:8427".parse().ok());
    assert!(c.web.actions);
    assert_eq!(c.web.actions_group.as_deref(), Some("admins"));
    assert_eq!(c.web.trusted_proxies.len(), 2);
    assert_eq!(c.web.password_file, Some(f.dir.path().join("pw")));
    assert_eq!(c.web.rpo_target.as_secs(), 2 * 86400);
}

#[test]
fn web_section_errors_name_their_place() {
    let f = Fixture::new();
    for (web, place, msg) in [
        (
            "listen = \"8427\"",
            "5:10",
            "web.listen: `8427` is not an address:port",
        ),
        (
            "trusted_proxies = [\"x/8\"]",
            "5:20",
            "web.trusted_proxies: `x/8`",
        ),
        ("password_file = \"missing\"", "5:17", "web.password_file:"),
        (
            "rpo_target = \"soon\"",
            "5:14",
            "web.rpo_target: `soon` is not a duration",
        ),
        (
            "actions_group = \"a,b\"",
            "5:17",
            "web.actions_group must be one group name",
        ),
        ("listen_on = \"x\"", "5:1", "unknown field `listen_on`"),
    ] {
        let e = f.parse(&format!("{BASE}[web]\n{web}\n")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("omk.toml:{place}: ")),
            "{web}: {text}"
        );
        assert!(text.contains(msg), "{web}: {text}");
    }
}

#[test]
fn shrink_limit_defaults_to_50_and_bad_values_name_file_and_line() {
    let f = Fixture::new();
    let job = |extra: &str| {
        format!("{BASE}\n[jobs.photos]\nkind = \"files\"\npaths = [\"data\"]\n{extra}")
    };
    let c = f.parse(&job("")).unwrap();
    assert_eq!(c.jobs["photos"].shrink_limit, DEFAULT_SHRINK_LIMIT);
    assert_eq!(DEFAULT_SHRINK_LIMIT, 50);
    for ok in [0, 20, 100] {
        let c = f.parse(&job(&format!("shrink_limit = {ok}\n"))).unwrap();
        assert_eq!(c.jobs["photos"].shrink_limit as i64, ok);
    }
    for bad in ["101", "-1", "\"50%\""] {
        let e = f
            .parse(&job(&format!("shrink_limit = {bad}\n")))
            .unwrap_err();
        let text = e.to_string();
        if bad.starts_with('"') {
            // A string is refused by the TOML reader itself, still with a place.
            assert!(text.contains("omk.toml:8:"), "{text}");
            continue;
        }
        assert!(
            text.contains("omk.toml:8:16: jobs.photos.shrink_limit"),
            "{text}"
        );
        assert!(text.contains("from 0 to 100"), "{text}");
    }
}
