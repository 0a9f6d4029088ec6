//! Every run reports, however it was started: a plain CLI `backup` (the classic
//! cron-driven set-up) pings `/start` and success, a failed one `/fail`, and
//! `--no-notify` sends nothing. A real local HTTP listener records the requests.

use crate::util::*;
use std::time::Duration;

fn config_with_ping(env: &Env, url: &str, job_url: &str) {
    env.write_config(&format!(
        "[notify]\nping_url = \"{url}/ping/run-1\"\ntimeout = \"2s\"\nretries = 0\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nnotify = {{ ping_url = \"{job_url}/job/files1\", timeout = \"2s\", retries = 0 }}\n"
    ));
}

fn lines(seen: &std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|r| r.lines().next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_cli_backup_pings_start_and_success_and_a_failed_one_pings_fail() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    let (url, seen) = http_server(200, Duration::ZERO);
    config_with_ping(&env, &url, &url);
    env.run(&["--no-notify", "backup", "--init"]).ok();
    assert!(
        lines(&seen).is_empty(),
        "--no-notify sends nothing: {:?}",
        lines(&seen)
    );

    env.run(&["backup"]).ok();
    let got = lines(&seen);
    for want in [
        "POST /ping/run-1/start ",
        "POST /job/files1/start ",
        "POST /ping/run-1 ",
        "POST /job/files1 ",
    ] {
        assert!(got.iter().any(|l| l.starts_with(want)), "{want} in {got:?}");
    }
    assert!(
        got[0].starts_with("POST /ping/run-1/start "),
        "start first: {got:?}"
    );
    seen.lock().unwrap().clear();

    // A wrong repository password: the run fails, and both targets hear /fail with why.
    std::fs::write(env.path("password"), "not-the-password\n").unwrap();
    let r = env.run(&["backup"]);
    assert_ne!(r.code, 0, "{}", r.all());
    let got = lines(&seen);
    assert!(
        got.iter().any(|l| l.starts_with("POST /ping/run-1/fail ")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|l| l.starts_with("POST /job/files1/fail ")),
        "{got:?}"
    );
    let fail = seen
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.starts_with("POST /job/files1/fail "))
        .cloned()
        .unwrap();
    let body = fail.split_once("\r\n\r\n").unwrap().1;
    assert!(!body.is_empty(), "the fail ping says why: {fail}");
    assert!(!body.contains(&env.password) && !body.contains("not-the-password"));
}

#[test]
fn metrics_are_refreshed_by_a_cli_backup() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    env.write_config(
        "[metrics]\ntextfile = \"omk.prom\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    env.run(&["backup", "--init"]).ok();
    let m = std::fs::read_to_string(env.path("omk.prom")).expect("metrics file after a CLI backup");
    assert!(
        m.contains("omk_backup_last_status{job=\"files1\"} 0"),
        "{m}"
    );
}

#[test]
fn a_backup_that_cannot_find_restic_is_a_failed_run_that_pings_fail() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    let (url, seen) = http_server(200, Duration::ZERO);
    config_with_ping(&env, &url, &url);
    let r = Run::from_output(
        env.cmd(&["backup"])
            .env("OMK_BACKUP_RESTIC", "/nonexistent/restic")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "a setup problem: {}", r.all());
    let got = lines(&seen);
    assert!(got[0].starts_with("POST /ping/run-1/start "), "{got:?}");
    assert!(
        got.iter().any(|l| l.starts_with("POST /ping/run-1/fail ")),
        "{got:?}"
    );
    assert_eq!(
        env.sql("SELECT command || ' ' || status FROM runs"),
        "backup failed"
    );
}
