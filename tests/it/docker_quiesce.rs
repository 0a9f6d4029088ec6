//! Quiesce around files jobs through the least-privilege proxy: pause and stop are
//! undone and measured; a container already paused is left alone; a `kill -9` while a
//! container is paused or stopped is repaired by the next command or `recover`; a
//! container recreated meanwhile is reported, never started blindly.

use crate::dock::*;
use crate::util::*;
use std::process::Stdio;

fn env_with(container: &str, mode: &str, restic: &std::path::Path) -> Env {
    let env = Env::new(restic);
    env.write_config(&quiesce_config(container, mode));
    env
}

fn quiesce_config(container: &str, mode: &str) -> String {
    format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{container}\", mode = \"{mode}\" }}\n",
        proxy()
    )
}

fn journal(env: &Env) -> String {
    env.sql("SELECT state_before || ',' || state || ',' || coalesce(window_ms, -1) FROM quiesce_journal ORDER BY id DESC LIMIT 1")
}

#[test]
fn pause_and_stop_are_undone_and_measured_and_a_paused_container_is_left_alone() {
    let (_, restic) = restics().pop().unwrap();
    let c = sqlite();
    for mode in ["pause", "stop"] {
        let env = env_with(&c.name, mode, &restic);
        let r = env.run(&["--json", "backup", "--init"]);
        assert_eq!(r.code, 0, "{mode}: {}", r.all());
        assert_eq!(c.status(), "running", "{mode}");
        let j = journal(&env);
        let parts: Vec<&str> = j.split(',').collect();
        assert_eq!(&parts[..2], ["running", "resumed"], "{mode}: {j}");
        assert!(parts[2].parse::<i64>().unwrap() >= 0, "{mode}: window {j}");
    }
    // Already paused before the run: backed up without touching it, still paused.
    docker_ok(&["pause", &c.name]);
    let env = env_with(&c.name, "pause", &restic);
    env.run(&["backup", "--init"]).ok();
    assert_eq!(c.status(), "paused");
    assert_eq!(journal(&env), "paused,untouched,-1");
    docker_ok(&["unpause", &c.name]);
}

/// Start a backup whose restic stalls while the container is quiesced, and kill -9 it
/// (and its children) once the container is `want`.
fn kill_while_quiesced(env: &Env, c: &Container, want: &str) {
    let wrapper = env.slow_restic("backup", 60);
    let mut child = env
        .cmd(&["backup"])
        .env("OMK_BACKUP_RESTIC", &wrapper)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(60, &format!("container {want}"), || c.status() == want);
    // The parent first: killing restic first would let omk-backup resume the container.
    let kids = children(pid);
    let grandkids: Vec<u32> = kids.iter().flat_map(|k| children(*k)).collect();
    kill9(pid);
    for k in grandkids.into_iter().chain(kids) {
        if alive(k) {
            kill9(k);
        }
    }
    let _ = child.wait();
    assert_eq!(c.status(), want, "the crash left it {want}");
}

#[test]
fn kill_9_while_paused_or_stopped_is_repaired_by_the_next_command() {
    let (_, restic) = restics().pop().unwrap();
    let c = sqlite();

    // Paused, then any locking command (here: another backup) unpauses it first.
    let env = env_with(&c.name, "pause", &restic);
    env.init();
    kill_while_quiesced(&env, &c, "paused");
    env.run(&["backup"]).ok();
    assert_eq!(c.status(), "running");
    assert_eq!(
        env.sql("SELECT count(*) FROM quiesce_journal WHERE state IN ('pending', 'quiesced')"),
        "0"
    );

    // Stopped, then `recover` starts it and says so.
    let env = env_with(&c.name, "stop", &restic);
    env.init();
    kill_while_quiesced(&env, &c, "exited");
    let r = env.run(&["--json", "recover"]).ok().json();
    assert_eq!(r["containers"][0]["action"], "resumed", "{r}");
    assert_eq!(c.status(), "running");
    let again = env.run(&["--json", "recover"]).ok().json();
    assert_eq!(again["containers"].as_array().unwrap().len(), 0, "{again}");
}

#[test]
fn a_container_recreated_after_the_crash_is_reported_not_started() {
    let (_, restic) = restics().pop().unwrap();
    let c = sqlite();
    let env = env_with(&c.name, "stop", &restic);
    env.init();
    kill_while_quiesced(&env, &c, "exited");
    // Someone recreates the container under the same name (not started).
    docker_ok(&["rm", "-f", "-v", &c.name]);
    docker_ok(&[
        "create",
        "--name",
        &c.name,
        "--label",
        "omk-it=1",
        &need("OMK_TEST_IMAGE_SQLITE"),
    ]);
    let r = env.run(&["--json", "recover"]).code(1);
    let j = r.json();
    assert_eq!(j["containers"][0]["action"], "recreated", "{j}");
    assert_eq!(c.status(), "created", "the new container was not started");
}

#[test]
fn a_proxy_refusing_pause_is_named_and_the_container_is_untouched() {
    let (_, restic) = restics().pop().unwrap();
    let c = sqlite();
    let env = Env::new(&restic);
    let strict = StrictProxy::start(env.dir.path());
    env.write_config(&format!(
        "[docker]\nhost = \"tcp://127.0.0.1:{}\"\ndiscover = false\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n",
        strict.port, c.name
    ));
    let r = env.run(&["backup", "--init"]).code(2);
    let all = r.all();
    assert!(all.contains("refused POST /containers/"), "{all}");
    // Said once per line: the refusal is not repeated inside its own context.
    for line in r.stderr.lines() {
        assert!(line.matches("refused POST").count() <= 1, "{line}");
    }
    assert!(
        all.contains("/pause (HTTP 403)") && all.contains("POST=1"),
        "{all}"
    );
    assert_eq!(c.status(), "running");
    assert_eq!(journal(&env), "running,failed,-1");
}
