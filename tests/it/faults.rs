//! Faults: wrong password, stale restic lock, unreadable source, kill -9 mid-backup,
//! a crash between restic's success and the catalog write, two runs at once.

use crate::util::*;
use std::process::{Command, Stdio};

#[test]
fn wrong_password_fails_and_records_nothing_good() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.init();
        let before = env.run(&["--json", "status"]).ok().json()["jobs"][0]["last_backup"].clone();
        std::fs::write(env.path("password"), "not-the-password\n").unwrap();
        let r = env.run(&["backup"]).code(1);
        assert!(
            r.stderr.contains("password does not open the repository"),
            "restic {ver}: {}",
            r.stderr
        );
        let st = env.run(&["--json", "status"]).ok().json();
        assert_eq!(
            st["jobs"][0]["last_backup"], before,
            "restic {ver}: no new good backup"
        );
        assert_eq!(st["jobs"][0]["last_run_status"], "failed");
        assert_eq!(
            env.sql("SELECT count(*) FROM runs WHERE status = 'success'"),
            "1",
            "restic {ver}"
        );
        // Retention is not applied after the failure.
        let f = env.run(&["--json", "forget"]).ok().json();
        assert_eq!(f["jobs"][0]["status"], "skipped", "restic {ver}: {f}");
    }
}

#[test]
fn stale_lock_of_a_killed_restic_is_cleared_once() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.write_config(
            "[retention]\nkeep_last = 1\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        );
        env.init();
        env.run(&["backup"]).ok();
        // A restic that holds a lock, then dies by SIGKILL: its lock stays behind.
        let mut held = Command::new(&env.restic)
            .args(["backup", "--stdin", "--stdin-filename", "x"])
            .env("RESTIC_REPOSITORY", env.repo())
            .env("RESTIC_PASSWORD_FILE", env.path("password"))
            .env("RESTIC_CACHE_DIR", env.path(".cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let locks = env.repo().join("locks");
        // Wait for a *complete* lock file: restic creates it, then writes it; a kill in
        // between (likely on a loaded machine) leaves an empty file that restic skips as
        // unreadable, so no conflict arises and the test would see no unlock.
        wait_until(30, "restic's lock file", || {
            std::fs::read_dir(&locks)
                .map(|d| {
                    d.flatten()
                        .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
                })
                .unwrap_or(false)
        });
        // Let restic settle after writing the lock; it then blocks reading its stdin.
        std::thread::sleep(std::time::Duration::from_secs(1));
        kill9(held.id());
        let _ = held.wait();
        assert_eq!(
            std::fs::read_dir(&locks).unwrap().count(),
            1,
            "restic {ver}: a stale lock remains"
        );
        // forget needs an exclusive lock: it meets the stale one, unlocks, retries once.
        let r = env.run(&["-v", "--json", "forget"]).ok();
        assert_eq!(
            r.json()["jobs"][0]["removed"].as_array().unwrap().len(),
            1,
            "restic {ver}: {}",
            r.stdout
        );
        assert!(
            r.stderr.contains("removing stale restic locks"),
            "restic {ver}: {}",
            r.stderr
        );
        assert_eq!(
            std::fs::read_dir(&locks).unwrap().count(),
            0,
            "restic {ver}"
        );
    }
}

#[test]
fn unreadable_source_is_a_failure_and_its_snapshot_is_discarded() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        std::fs::write(env.path("data/secret.txt"), "top\n").unwrap();
        // Run as an unprivileged user (root reads everything): a 000 file is unreadable.
        let st = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(env.dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::set_permissions(
            env.dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let as_nobody = |args: &[&str]| {
            let c = env.cmd(args);
            let prog = c.get_program().to_owned();
            let mut wrapped = Command::new("setpriv");
            wrapped
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(prog)
                .args(args);
            for (k, v) in c.get_envs() {
                match v {
                    Some(v) => wrapped.env(k, v),
                    None => wrapped.env_remove(k),
                };
            }
            wrapped.current_dir(env.dir.path()).stdin(Stdio::null());
            Run::from_output(wrapped.output().unwrap())
        };
        as_nobody(&["backup", "--init"]).ok();
        std::fs::set_permissions(
            env.path("data/secret.txt"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        let r = as_nobody(&["--json", "backup"]).code(1);
        let v = r.json();
        assert_eq!(v["jobs"][0]["status"], "failed", "restic {ver}: {v}");
        assert!(
            v["jobs"][0]["error"]
                .as_str()
                .unwrap()
                .contains("could not read"),
            "restic {ver}: {v}"
        );
        // restic made a snapshot (exit code 3); we forgot it so retention cannot keep it.
        let in_repo = env.restic_cmd(&["snapshots", "--json"]).ok().json();
        assert_eq!(
            in_repo.as_array().unwrap().len(),
            1,
            "restic {ver}: only the first, good snapshot stays"
        );
        let good = as_nobody(&["--json", "snapshots"]).ok().json();
        assert_eq!(good.as_array().unwrap().len(), 1, "restic {ver}");
        assert_eq!(good[0]["state"], "good");
    }
}

#[test]
fn kill_9_mid_backup_is_reconciled_by_the_next_command() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.init();
        // Enough data that the backup is still running when we kill it.
        let big = env.path("data/big");
        std::fs::create_dir_all(&big).unwrap();
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for i in $(seq 1 24); do head -c 8000000 /dev/urandom > {}/f$i; done",
                big.display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
        let mut child = env
            .cmd(&["backup"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        wait_until(60, "the restic child to start", || {
            !children(pid).is_empty()
        });
        let locks = env.repo().join("locks");
        wait_until(60, "restic's lock", || {
            std::fs::read_dir(&locks)
                .map(|d| d.count() > 0)
                .unwrap_or(false)
        });
        let kids = children(pid);
        kill9(pid);
        let _ = child.wait();
        for k in kids {
            if alive(k) {
                kill9(k);
            }
        }
        assert_eq!(
            env.sql("SELECT count(*) FROM runs WHERE status = 'running'"),
            "1",
            "restic {ver}: left running"
        );
        // The next command (even a read-only one) closes the dead run.
        env.run(&["snapshots"]).ok();
        assert_eq!(
            env.sql("SELECT count(*) FROM runs WHERE status = 'running'"),
            "0",
            "restic {ver}"
        );
        assert_eq!(
            env.sql("SELECT count(*) FROM runs WHERE status = 'interrupted'"),
            "1",
            "restic {ver}"
        );
        assert_eq!(
            env.sql("SELECT count(*) FROM steps WHERE status = 'running'"),
            "0",
            "restic {ver}"
        );
        // And backups go on (the stale restic lock does not block them).
        env.run(&["backup"]).ok();
    }
}

#[test]
fn crash_between_restic_success_and_catalog_write_is_reconciled() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.init();
        // Fault injection: exit right after restic reported the snapshot, before the
        // catalog hears of it (the one timing a real kill cannot hit on demand).
        let r = Run::from_output(
            env.cmd(&["backup"])
                .env("OMK_BACKUP_FAULT", "exit-after-snapshot")
                .output()
                .unwrap(),
        );
        assert_ne!(r.code, 0);
        assert_eq!(
            env.restic_cmd(&["snapshots", "--json"])
                .ok()
                .json()
                .as_array()
                .unwrap()
                .len(),
            2,
            "restic {ver}"
        );
        assert_eq!(
            env.sql("SELECT count(*) FROM snapshots"),
            "1",
            "restic {ver}: the catalog missed one"
        );
        let list = env.run(&["--json", "snapshots"]).ok().json();
        let arr = list.as_array().unwrap();
        assert_eq!(arr.len(), 2, "restic {ver}: no snapshot unknown: {list}");
        assert_eq!(
            arr[1]["state"], "unverified",
            "restic {ver}: nobody confirmed it"
        );
        assert_eq!(
            env.sql("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1"),
            "interrupted"
        );
        // restore latest keeps using the verified snapshot.
        let good = arr[0]["snapshot_id"].as_str().unwrap();
        let out = env
            .run(&[
                "--json",
                "restore",
                "latest",
                "--target",
                env.path("r").to_str().unwrap(),
            ])
            .ok()
            .json();
        assert_eq!(out["snapshot_id"], good);
    }
}

#[test]
fn two_runs_at_once_the_second_exits_3() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    env.init();
    // Make the first run slow: its password command sleeps.
    let pw = env.path("password").display().to_string();
    std::fs::write(
        env.config_path(),
        format!("[repository]\nurl = \"repo\"\npassword_command = \"sh -c 'sleep 3; cat {pw}'\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n"),
    )
    .unwrap();
    let first = env
        .cmd(&["backup"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = env.path("catalog.db.lock");
    let pid = first.id();
    wait_until(20, "the first run to take the lock", || {
        std::fs::read_to_string(&lock)
            .map(|s| s.trim() == pid.to_string())
            .unwrap_or(false)
    });
    let second = env.run(&["backup"]).code(3);
    assert!(
        second
            .stderr
            .contains("another omk-backup run holds the lock"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {pid}")),
        "{}",
        second.stderr
    );
    Run::from_output(first.wait_with_output().unwrap()).ok();
    // Read-only commands are not blocked by a run.
    env.run(&["status"]).ok();
}

#[test]
fn restore_and_reads_do_not_wait_for_a_running_backup() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.init();
    // Hold the run lock from another process for the whole test, as a long backup would.
    let lock = env.path("catalog.db.lock");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    wait_until(10, "flock to hold the lock", || {
        env.run(&["backup"]).code == 3
    });
    env.run(&["status"]).ok();
    env.run(&["snapshots"]).ok();
    let r = env
        .run(&[
            "restore",
            "latest",
            "--target",
            env.path("r").to_str().unwrap(),
        ])
        .ok();
    assert!(r.stdout.contains("restored files1"), "{}", r.stdout);
    let _ = holder.kill();
    let _ = holder.wait();
}
