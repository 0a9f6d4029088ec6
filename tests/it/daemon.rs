//! The scheduler end to end: `run-due` catch-up and triggers, the daemon firing a
//! schedule line, SIGTERM during a backup, SIGHUP with a broken config, notifications
//! that fail without failing the backup. Real binary, real restic, real SQLite.

use crate::util::*;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A config whose repository password takes 30 s to arrive (restic asks for it first),
/// so a scheduled backup is in flight (restic running, run recorded) when a signal
/// comes.
fn write_slow_password_config(env: &Env) {
    let slow = format!("sh -c 'sleep 30; cat {}'", env.path("password").display());
    std::fs::write(
        env.config_path(),
        format!(
            "[repository]\nurl = \"repo\"\npassword_command = \"{slow}\"\n\n[schedule]\ngrace = \"400d\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n"
        ),
    )
    .unwrap();
}

/// A catalog query while the daemon may be writing: sqlite3 with a busy timeout.
fn sql_busy(env: &Env, query: &str) -> String {
    let out = Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(env.path("catalog.db"))
        .arg(query)
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write_schedule(env: &Env, text: &str) {
    std::fs::create_dir_all(env.path("schedules")).unwrap();
    std::fs::write(env.path("schedules/test.cron"), text).unwrap();
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// The daemon with its stderr going to a file we can read while it runs.
fn spawn_daemon(env: &Env) -> Child {
    let log = std::fs::File::create(env.path("daemon.log")).unwrap();
    env.cmd(&["-v", "daemon"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon")
}

fn log(env: &Env) -> String {
    std::fs::read_to_string(env.path("daemon.log")).unwrap_or_default()
}

fn wait_exit(child: &mut Child, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not exit within {secs}s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_due_catches_up_once_within_grace_and_not_outside() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.run(&["backup", "--init"]).ok();
        // Yearly at new year: outside a 1-minute grace, inside a 400-day one.
        write_schedule(&env, "0 0 1 1 * backup\n");
        env.write_config(
            "[schedule]\ngrace = \"1m\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        );
        let r = env.run(&["--json", "run-due"]).ok();
        assert_eq!(
            r.json()["tasks"].as_array().unwrap().len(),
            0,
            "restic {ver}: {}",
            r.stdout
        );
        env.write_config(
            "[schedule]\ngrace = \"400d\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        );
        // The --init backup above ran after new year: nothing was missed since.
        let r = env.run(&["--json", "run-due"]).ok();
        assert_eq!(
            r.json()["tasks"].as_array().unwrap().len(),
            0,
            "restic {ver}: {}",
            r.stdout
        );
        // Forget that backup run: now new year's run was missed, and is caught up once.
        env.sql("DELETE FROM runs");
        let r = env.run(&["--json", "run-due"]).ok();
        let t = &r.json()["tasks"];
        assert_eq!(t.as_array().unwrap().len(), 1, "restic {ver}: {}", r.stdout);
        assert_eq!(t[0]["status"], "success");
        assert_eq!(t[0]["trigger"], "catch-up");
        assert_eq!(
            env.sql("SELECT trigger || ' ' || status FROM runs WHERE command = 'backup'"),
            "catch-up success"
        );
        let r = env.run(&["--json", "run-due"]).ok();
        assert_eq!(
            r.json()["tasks"].as_array().unwrap().len(),
            0,
            "restic {ver}: caught up once: {}",
            r.stdout
        );
    }
}

#[test]
fn run_due_runs_scheduled_restore_tests_and_writes_the_report_to_a_file() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.run(&["backup", "--init"]).ok();
    write_schedule(
        &env,
        "0 0 1 1 * restore-test\n0 0 1 1 * report --month previous\n",
    );
    env.write_config(
        "[schedule]\ngrace = \"400d\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    let r = env.run(&["--json", "run-due"]).ok();
    let t = r.json()["tasks"].clone();
    assert_eq!(t[0]["status"], "success", "{}", r.stdout);
    assert_eq!(t[1]["status"], "success", "{}", r.stdout);
    assert_eq!(
        env.sql("SELECT count(*) FROM runs WHERE command = 'restore-test' AND status = 'success'"),
        "1"
    );
    let reports: Vec<_> = std::fs::read_dir(env.path("reports"))
        .expect("the scheduled report goes to reports/ beside the catalog")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].starts_with("omk-backup-") && reports[0].ends_with(".html"),
        "{reports:?}"
    );
    let html = std::fs::read_to_string(env.path("reports").join(&reports[0])).unwrap();
    assert!(
        html.contains("<svg") || html.contains("<html"),
        "not an HTML report"
    );
}

#[test]
fn status_shows_next_run_of_the_backup_lines() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    write_schedule(
        &env,
        "CRON_TZ=Europe/Berlin\n30 2 * * * backup files1\n0 1 * * * forget\n",
    );
    let st = env.run(&["--json", "status"]).ok().json();
    let next = st["jobs"][0]["next_run"]
        .as_str()
        .expect("next_run")
        .to_string();
    assert!(
        next.ends_with('Z') && (next.contains("T01:30:00") || next.contains("T00:30:00")),
        "{next}"
    );
    let list = env.run(&["--json", "schedule", "list"]).ok().json();
    assert_eq!(list["lines"][0]["next_runs"][0], next.as_str());
    assert_eq!(list["lines"][0]["zone"], "Europe/Berlin");
    // A bad line: exit 2, file:line:column and a hint.
    write_schedule(&env, "30 2 * * * backup nosuchjob\n");
    let r = env.run(&["schedule", "list"]).code(2);
    assert!(
        r.stderr
            .contains("test.cron:1:19: backup names the job `nosuchjob`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
}

#[test]
fn daemon_sigterm_during_a_backup_records_interrupted_and_exits_fast() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.run(&["backup", "--init"]).ok();
        env.sql("DELETE FROM runs");
        write_schedule(&env, "0 0 1 1 * backup\n");
        write_slow_password_config(&env);
        let mut d = spawn_daemon(&env);
        let pid = d.id();
        // The run is recorded before restic is looked for: wait for the job's step
        // (restic backup started, waiting for its slow password).
        wait_until(30, "the caught-up backup to be running", || {
            sql_busy(&env, "SELECT count(*) FROM runs WHERE status = 'running'") == "1"
                && sql_busy(&env, "SELECT count(*) FROM steps WHERE status = 'running'") == "1"
                && !children(pid).is_empty()
        });
        let kids = children(pid);
        let t0 = Instant::now();
        signal(pid, "-TERM");
        let code = wait_exit(&mut d, 10);
        let took = t0.elapsed();
        assert_eq!(code, 0, "restic {ver}: {}", log(&env));
        assert!(took < Duration::from_secs(5), "restic {ver}: took {took:?}");
        assert_eq!(
            env.sql("SELECT trigger || ' ' || status FROM runs"),
            "catch-up interrupted",
            "restic {ver}: {}",
            log(&env)
        );
        assert!(env.sql("SELECT error FROM runs").contains("SIGTERM"));
        assert_eq!(
            env.sql("SELECT status FROM steps ORDER BY id DESC LIMIT 1"),
            "interrupted"
        );
        for k in kids {
            wait_until(5, "restic to be gone", || !alive(k));
        }
        assert!(
            log(&env).contains("recorded as interrupted"),
            "{}",
            log(&env)
        );
    }
}

#[test]
fn daemon_fires_a_minute_schedule_and_survives_a_broken_sighup() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.run(&["backup", "--init"]).ok();
    write_schedule(&env, "* * * * * backup\n");
    let mut d = spawn_daemon(&env);
    let pid = d.id();
    wait_until(10, "the daemon to start", || {
        log(&env).contains("daemon started")
    });
    // A broken config on SIGHUP: logged, old config and schedules kept, still running.
    std::fs::write(env.config_path(), "[repository\nbroken").unwrap();
    signal(pid, "-HUP");
    wait_until(10, "the failed reload to be logged", || {
        log(&env).contains("reload failed")
    });
    assert!(
        log(&env).contains("keeping the previous config"),
        "{}",
        log(&env)
    );
    assert!(d.try_wait().unwrap().is_none(), "the daemon kept running");
    // Fix it and reload: taken.
    env.write_config("[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n");
    signal(pid, "-HUP");
    wait_until(10, "the reload", || log(&env).contains("SIGHUP: reloaded"));
    // The next minute boundary fires the backup (trigger `daemon`).
    wait_until(75, "a scheduled backup", || {
        sql_busy(
            &env,
            "SELECT count(*) FROM runs WHERE trigger = 'daemon' AND status = 'success'",
        ) == "1"
    });
    signal(pid, "-TERM");
    assert_eq!(wait_exit(&mut d, 10), 0, "{}", log(&env));
    let l = log(&env);
    assert!(l.contains("due: `backup`"), "{l}");
}

#[test]
fn notifiers_report_and_a_failing_one_never_fails_the_backup() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.run(&["backup", "--init"]).ok();
    env.sql("DELETE FROM runs");
    write_schedule(&env, "0 0 1 1 * backup\n");
    let (ok_url, ok_seen) = http_server(200, Duration::ZERO);
    let (bad_url, bad_seen) = http_server(500, Duration::ZERO);
    let (slow_url, _) = http_server(200, Duration::from_secs(30));
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        format!("http://{a}")
    };
    std::fs::write(env.path("token"), "tok-secret-123\n").unwrap();
    env.write_config(&format!(
        "[schedule]\ngrace = \"400d\"\n\n[notify]\nping_url = \"{ok_url}/ping/uuid-1\"\nwebhook = \"{bad_url}/hook\"\nwebhook_token_file = \"token\"\ntimeout = \"1s\"\nretries = 1\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nnotify = {{ ping_url = \"{slow_url}/p\", webhook = \"{down}/x\", timeout = \"1s\", retries = 1 }}\n"
    ));
    let t0 = Instant::now();
    let r = env.run(&["--json", "run-due"]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "bounded: {:?}",
        t0.elapsed()
    );
    assert_eq!(r.json()["tasks"][0]["status"], "success", "{}", r.stdout);
    let seen = ok_seen.lock().unwrap().clone();
    assert!(seen[0].starts_with("POST /ping/uuid-1/start "), "{seen:?}");
    assert!(seen[1].starts_with("POST /ping/uuid-1 "), "{seen:?}");
    let hooks = bad_seen.lock().unwrap().clone();
    assert_eq!(hooks.len(), 2, "500 is retried once: {hooks:?}");
    assert!(
        hooks[0].contains("\"title\":\"omk-backup: backup succeeded\""),
        "{}",
        hooks[0]
    );
    assert!(
        hooks[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer tok-secret-123")
    );
    let body = hooks[0].split_once("\r\n\r\n").unwrap().1;
    for secret in [env.password.as_str(), "tok-secret-123", "uuid-1"] {
        assert!(!body.contains(secret), "no secret in the payload: {body}");
        assert!(
            !r.stderr.contains(secret),
            "no secret in the logs: {}",
            r.stderr
        );
    }
    assert!(
        r.stderr.contains("gave up after 2 attempt(s)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("timed out") && r.stderr.contains("cannot connect"),
        "{}",
        r.stderr
    );
}

#[test]
fn metrics_textfile_is_written_after_a_task_with_retention_after_backup() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.run(&["backup", "--init"]).ok();
    env.run(&["backup"]).ok();
    env.sql("DELETE FROM runs");
    write_schedule(&env, "0 0 1 1 * backup\n");
    env.write_config(
        "[schedule]\ngrace = \"400d\"\n\n[retention]\nkeep_last = 1\nafter_backup = true\n\n[metrics]\ntextfile = \"omk.prom\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    env.run(&["run-due"]).ok();
    let m = std::fs::read_to_string(env.path("omk.prom")).expect("metrics file");
    for want in [
        "omk_backup_last_success_timestamp_seconds{job=\"files1\"} ",
        "omk_backup_last_status{job=\"files1\"} 0",
        "omk_backup_rpo_seconds{job=\"files1\"} ",
        "omk_backup_last_bytes{job=\"files1\"} ",
        "# TYPE omk_backup_last_duration_seconds gauge",
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
    // Retention ran right after the successful backup, with the daemon's trigger.
    assert_eq!(
        env.sql("SELECT command || ' ' || trigger || ' ' || status FROM runs ORDER BY started_at"),
        "backup catch-up success\nforget catch-up success"
    );
    let snaps = env.run(&["--json", "snapshots"]).ok().json();
    let live = snaps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "good")
        .count();
    assert_eq!(live, 1, "keep_last = 1 applied: {snaps}");
}

#[test]
fn run_due_sigterm_records_interrupted_and_exits_1() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    env.run(&["backup", "--init"]).ok();
    env.sql("DELETE FROM runs");
    write_schedule(&env, "0 0 1 1 * backup\n");
    write_slow_password_config(&env);
    let mut c = env
        .cmd(&["run-due"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id();
    wait_until(30, "the backup to be running", || {
        sql_busy(&env, "SELECT count(*) FROM runs WHERE status = 'running'") == "1"
            && !children(pid).is_empty()
    });
    let t0 = Instant::now();
    signal(pid, "-TERM");
    let code = wait_exit(&mut c, 10);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(code, 1, "an interrupted run-due did not finish its work");
    assert_eq!(
        env.sql("SELECT trigger || ' ' || status FROM runs"),
        "catch-up interrupted"
    );
}
