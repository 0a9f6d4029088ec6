//! Alarms that mean what they say: an interrupted run sends no `/fail` ping (it did not
//! fail: it was stopped), and a socket proxy's 403 during `restore-test` is a failed
//! restore test (exit 1, the refused call named), not a usage error. Real binary, real
//! restic, a real local HTTP listener, real dockerd behind a real haproxy.

use crate::dock::*;
use crate::util::*;
use std::process::Stdio;
use std::time::Duration;

/// Whether a child of `pid` runs restic's `restore` (the slow wrapper sleeping in it).
fn restoring(pid: u32) -> bool {
    children(pid).iter().any(|k| {
        std::fs::read(format!("/proc/{k}/cmdline"))
            .map(|c| c.split(|b| *b == 0).any(|a| a == b"restore"))
            .unwrap_or(false)
    })
}

#[test]
fn a_restore_test_stopped_by_sigterm_pings_start_but_never_fail() {
    let (_, restic) = restics().pop().unwrap();
    let env = Env::new(&restic);
    env.init();
    let (url, seen) = http_server(200, Duration::ZERO);
    env.write_config(&format!(
        "[notify]\nping_url = \"{url}/ping/alarm\"\ntimeout = \"2s\"\nretries = 0\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n"
    ));
    let wrapper = env.slow_restic("restore", 60);
    let child = env
        .cmd(&["restore-test"])
        .env("OMK_BACKUP_RESTIC", &wrapper)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(60, "the restore test restoring", || restoring(pid));
    let kids = children(pid);
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let r = Run::from_output(child.wait_with_output().unwrap());
    for k in kids {
        if alive(k) {
            kill9(k);
        }
    }
    assert_eq!(r.code, 143, "{}", r.all());
    // Give a late ping every chance to arrive before looking.
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.lines().next().unwrap_or_default().to_string())
        .collect();
    assert!(
        got.iter().any(|l| l.contains("/ping/alarm/start")),
        "the run's start was pinged: {got:?}"
    );
    assert!(
        !got.iter().any(|l| l.contains("/fail")),
        "an interrupted run sends no /fail: {got:?}"
    );
    let run = env.sql("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1");
    assert_eq!(run, "interrupted");
}

/// A proxy that refuses what a database restore test needs: the test fails (exit 1,
/// like any failed check; 2 is for usage and config errors), the message names the
/// refused call and the setting that allows it.
#[test]
fn a_proxy_refusal_during_restore_test_fails_the_test_with_exit_1() {
    let (_, restic) = restics().pop().unwrap();
    let db = sqlite();
    let env = Env::new(&restic);
    let cfg = |host: &str| {
        format!(
            "[docker]\nhost = \"{host}\"\ndiscover = false\n\n[jobs.lite403t]\nkind = \"sqlite\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\n",
            db.name
        )
    };
    env.write_config(&cfg(&proxy()));
    env.run(&["backup", "--init"]).ok();
    let strict = StrictProxy::start(env.dir.path());
    env.write_config(&cfg(&format!("tcp://127.0.0.1:{}", strict.port)));
    let r = env.run(&["restore-test", "lite403t"]).code(1);
    let all = r.all();
    assert!(all.contains("(HTTP 403)"), "{all}");
    assert!(
        all.contains("refused GET /images/"),
        "the refused call is named: {all}"
    );
    assert!(all.contains("IMAGES=1"), "the setting to allow it: {all}");
    assert!(!all.contains("panicked"), "{all}");
}
