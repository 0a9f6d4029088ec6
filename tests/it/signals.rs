//! Signals and crashes never leave a container down: SIGINT/SIGTERM during a paused
//! backup resume the container, record the run `interrupted` and exit 130/143; after a
//! `kill -9` while paused, `run-due` with nothing due resumes it. Real binary, real
//! restic, real dockerd behind the haproxy proxy, real SQLite.

use crate::dock::*;
use crate::util::*;
use std::process::{Child, Stdio};

fn paused_backup_env(c: &Container, restic: &std::path::Path) -> Env {
    let env = Env::new(restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n",
        proxy(),
        c.name
    ));
    env.init();
    // A restic whose backup takes a minute: the container stays paused meanwhile.
    env.slow_restic("backup", 60);
    env
}

/// Start `backup` with the slow restic; return once the container is paused.
fn backup_until_paused(env: &Env, c: &Container) -> Child {
    let child = env
        .cmd(&["backup"])
        .env("OMK_BACKUP_RESTIC", env.path("slow-restic"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(60, "the container paused by the backup", || {
        c.status() == "paused"
    });
    child
}

/// Kill what the slow restic left (its `sleep`), so nothing of ours lingers.
fn reap_descendants(kids: Vec<u32>) {
    for k in kids {
        for g in children(k) {
            if alive(g) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &g.to_string()])
                    .status();
            }
        }
        if alive(k) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &k.to_string()])
                .status();
        }
    }
}

#[test]
fn sigint_and_sigterm_during_a_paused_backup_resume_the_container_and_exit_128_plus_n() {
    let (_, restic) = restics().pop().unwrap();
    let c = sqlite();
    for (sig, code) in [("-INT", 130), ("-TERM", 143)] {
        let env = paused_backup_env(&c, &restic);
        let child = backup_until_paused(&env, &c);
        let pid = child.id();
        let kids = children(pid);
        let st = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig} {pid}");
        let r = Run::from_output(child.wait_with_output().unwrap());
        reap_descendants(kids);
        assert_eq!(r.code, code, "{sig}: {}", r.all());
        assert_eq!(c.status(), "running", "{sig}: the container was resumed");
        let name = format!("SIG{}", &sig[1..]);
        assert!(
            r.stderr.contains(&format!("stopped by {name}")),
            "{}",
            r.stderr
        );
        let run =
            env.sql("SELECT status || '|' || error FROM runs ORDER BY started_at DESC LIMIT 1");
        assert!(
            run.starts_with("interrupted|") && run.contains(&name),
            "{sig}: the run row is {run}"
        );
        assert_eq!(
            env.sql("SELECT count(*) FROM steps WHERE status = 'running'"),
            "0",
            "{sig}: no step left running"
        );
        assert_eq!(
            env.sql("SELECT count(*) FROM quiesce_journal WHERE state IN ('pending', 'quiesced')"),
            "0",
            "{sig}: the journal is closed"
        );
    }
}

#[test]
fn kill_9_while_paused_then_run_due_with_nothing_due_resumes_the_container() {
    let (_, restic) = restics().pop().unwrap();
    let c = sqlite();
    let env = paused_backup_env(&c, &restic);
    // A schedule with nothing due now (once a year, outside the default grace).
    std::fs::create_dir_all(env.path("schedules")).unwrap();
    std::fs::write(env.path("schedules/test.cron"), "0 0 1 1 * forget\n").unwrap();
    let mut child = backup_until_paused(&env, &c);
    let pid = child.id();
    let kids = children(pid);
    kill9(pid);
    let _ = child.wait();
    reap_descendants(kids);
    assert_eq!(c.status(), "paused", "the crash left it paused");
    let r = env.run(&["--json", "run-due"]).ok();
    assert_eq!(
        r.json()["tasks"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.all()
    );
    assert_eq!(c.status(), "running", "run-due resumed it: {}", r.all());
    assert_eq!(
        env.sql("SELECT count(*) FROM quiesce_journal WHERE state IN ('pending', 'quiesced')"),
        "0"
    );
    assert_eq!(
        env.sql("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1"),
        "interrupted"
    );
}

/// Whether a child of `pid` runs restic's `restore` (the slow wrapper sleeping in it).
fn restoring(pid: u32) -> bool {
    children(pid).iter().any(|k| {
        std::fs::read(format!("/proc/{k}/cmdline"))
            .map(|c| c.split(|b| *b == 0).any(|a| a == b"restore"))
            .unwrap_or(false)
    })
}

#[test]
fn sigterm_during_a_restore_test_removes_its_scratch_folder_and_exits_143() {
    let (_, restic) = restics().pop().unwrap();
    let env = Env::new(&restic);
    env.init();
    let wrapper = env.slow_restic("restore", 60);
    let scratch = || {
        std::fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".omk-restore-test-")
            })
    };
    let child = env
        .cmd(&["restore-test"])
        .env("OMK_BACKUP_RESTIC", &wrapper)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(60, "the restore test restoring", || restoring(pid));
    assert!(scratch(), "the scratch folder exists during the test");
    let kids = children(pid);
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let r = Run::from_output(child.wait_with_output().unwrap());
    reap_descendants(kids);
    assert_eq!(r.code, 143, "{}", r.all());
    assert!(!scratch(), "the scratch folder was removed");
    let run = env.sql("SELECT command || '|' || status || '|' || error FROM runs ORDER BY started_at DESC LIMIT 1");
    assert!(
        run.starts_with("restore-test|interrupted|") && run.contains("SIGTERM"),
        "the run row is {run}"
    );
}

#[test]
fn a_leftover_scratch_container_is_removed_when_only_docker_host_names_docker() {
    let (_, restic) = restics().pop().unwrap();
    let env = Env::new(&restic);
    // Files only, no [docker] host, discovery off: Docker is known only by $DOCKER_HOST.
    env.write_config(
        "[docker]\ndiscover = false\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    env.init();
    let run = env.sql("SELECT id FROM runs LIMIT 1");
    let name = format!("omk-restore-signals-{}", unique());
    let run_label = format!("omk-backup.run={run}");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "omk-it=1",
        "--label",
        "omk-backup.scratch=1",
        "--label",
        &run_label,
        "--entrypoint",
        "sleep",
        &need("OMK_TEST_IMAGE_SQLITE"),
        "600",
    ]);
    let _guard = Container { name: name.clone() };
    let r = Run::from_output(
        env.cmd(&["backup"])
            .env("DOCKER_HOST", proxy())
            .output()
            .unwrap(),
    )
    .ok();
    let left = docker_ok(&["ps", "-aq", "--filter", &format!("name=^{name}$")]);
    assert_eq!(
        left,
        "",
        "the leftover scratch container was removed: {}",
        r.all()
    );
}

#[test]
fn kill_9_while_paused_then_the_daemon_resumes_the_container_at_start() {
    let (_, restic) = restics().pop().unwrap();
    let c = sqlite();
    let env = paused_backup_env(&c, &restic);
    std::fs::create_dir_all(env.path("schedules")).unwrap();
    std::fs::write(env.path("schedules/test.cron"), "0 0 1 1 * forget\n").unwrap();
    let mut child = backup_until_paused(&env, &c);
    let pid = child.id();
    let kids = children(pid);
    kill9(pid);
    let _ = child.wait();
    reap_descendants(kids);
    assert_eq!(c.status(), "paused", "the crash left it paused");
    let mut daemon = env
        .cmd(&["daemon"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(60, "the daemon resuming the container", || {
        c.status() == "running"
    });
    let st = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = daemon.wait();
    assert_eq!(
        env.sql("SELECT count(*) FROM quiesce_journal WHERE state IN ('pending', 'quiesced')"),
        "0"
    );
}
