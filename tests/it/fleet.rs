//! A fleet on one repository, with real restic 0.14 and 0.18: two instances (two configs
//! with different `[repository] host`) back up and forget at the same time and wait for
//! each other's locks; a lock held by a plain `restic` is waited for, never broken;
//! prune and check run only on the maintenance instance; restore tests leave
//! attestations in the repository, which `fleet` (no catalog) and `catalog rebuild`
//! read back — and a planted bad attestation is named while the rest still count.

use crate::util::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// A second instance sharing `main`'s repository and password, with its own folder,
/// data and catalog.
fn second(main: &Env, host: &str, extra: &str) -> Env {
    let env = Env::new(&main.restic);
    write_cfg(&env, main, host, extra);
    env
}

/// `env`'s config: `repo_of`'s repository under `host`, retention keep_last = 2.
fn write_cfg(env: &Env, repo_of: &Env, host: &str, extra: &str) {
    let text = format!(
        "[repository]\nurl = \"{}\"\npassword_file = \"{}\"\nhost = \"{host}\"\n{extra}\n\
         [retention]\nkeep_last = 2\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        repo_of.repo().display(),
        repo_of.path("password").display()
    );
    std::fs::write(env.config_path(), text).unwrap();
}

fn ids_of(env: &Env, host: &str, tag: &str) -> Vec<String> {
    let mut args = vec!["snapshots", "--json", "--host", host];
    if !tag.is_empty() {
        args.extend(["--tag", tag]);
    }
    let r = env.restic_cmd(&args).ok();
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn hosts() -> (String, String) {
    let u = unique();
    (format!("omk-fa-{}", &u[..6]), format!("omk-fb-{}", &u[..6]))
}

#[test]
fn two_instances_back_up_and_forget_at_once_without_losing_or_crossing() {
    for (ver, restic) in restics() {
        let a = Env::new(&restic);
        let (ha, hb) = hosts();
        write_cfg(&a, &a, &ha, "maintenance = true");
        a.init();
        let b = second(&a, &hb, "");
        // Both instances: backup, then forget (an exclusive lock), three rounds, at once.
        let rounds = |env: &Env| {
            let mut last = String::new();
            for _ in 0..3 {
                let r = env.run(&["--json", "backup"]).ok();
                last = r.json()["jobs"][0]["snapshot_id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                env.run(&["-v", "forget"]).ok();
            }
            last
        };
        let (last_a, last_b) = std::thread::scope(|s| {
            let ta = s.spawn(|| rounds(&a));
            let tb = s.spawn(|| rounds(&b));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let (ia, ib) = (
            ids_of(&a, &ha, "omk:job=files1"),
            ids_of(&a, &hb, "omk:job=files1"),
        );
        assert_eq!(ia.len(), 2, "restic {ver}: host A keeps its own 2: {ia:?}");
        assert_eq!(ib.len(), 2, "restic {ver}: host B keeps its own 2: {ib:?}");
        assert!(
            ia.iter().any(|i| i.starts_with(&last_a[..8])),
            "restic {ver}"
        );
        assert!(
            ib.iter().any(|i| i.starts_with(&last_b[..8])),
            "restic {ver}"
        );

        // Prune and check run on the maintenance instance (A) only.
        let ra = a.run(&["--json", "forget", "--prune"]).ok().json();
        assert_eq!(ra["pruned"], true, "restic {ver}: {ra}");
        let rb = b.run(&["--json", "forget", "--prune"]).ok().json();
        assert_eq!(rb["pruned"], false, "restic {ver}: {rb}");
        let skipped = rb["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job"] == "(prune)")
            .unwrap_or_else(|| panic!("no (prune) entry: {rb}"));
        assert_eq!(skipped["status"], "skipped", "{rb}");
        assert!(skipped["reason"].as_str().unwrap().contains(&ha), "{rb}");
        let c = b.run(&["check"]).code(2);
        assert!(
            c.stderr.contains(&ha) && c.stderr.contains("maintenance"),
            "restic {ver}: {}",
            c.stderr
        );
        a.run(&["check"]).ok();
        // An explicit `maintenance = false` refuses even with nobody else claiming.
        write_cfg(&b, &a, &hb, "maintenance = false");
        let c = b.run(&["check"]).code(2);
        assert!(c.stderr.contains("maintenance = false"), "{}", c.stderr);
    }
}

/// A plain `restic backup --stdin` whose stdin stays open holds a live lock.
fn hold_lock(env: &Env) -> std::process::Child {
    let mut child = Command::new(&env.restic)
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "held.txt",
            "--host",
            "omk-fleet-holder",
        ])
        .env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD_FILE", env.path("password"))
        .env("RESTIC_CACHE_DIR", env.path(".cache-holder"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"held\n").unwrap();
    wait_until(60, "the plain restic's lock", || locks(env).len() == 1);
    child
}

fn locks(env: &Env) -> Vec<String> {
    env.restic_cmd(&["list", "locks", "--no-lock"])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_plain_restic_lock_is_waited_for_and_never_broken() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.init();
        let mut holder = hold_lock(&env);
        let held = locks(&env);
        // forget takes an exclusive lock: it must wait (our run lock makes it try a
        // plain `restic unlock` first, which must keep this live lock).
        let ours = env
            .cmd(&["-v", "forget"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(6));
        assert_eq!(locks(&env), held, "restic {ver}: the live lock was removed");
        assert!(alive(ours.id()), "restic {ver}: forget did not wait");
        drop(holder.stdin.take());
        assert!(
            holder.wait().unwrap().success(),
            "restic {ver}: the holder failed"
        );
        let out = ours.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "restic {ver}: {stderr}");
        assert!(
            stderr.contains("locked by another restic") && stderr.contains("waiting"),
            "restic {ver}: -v says what it waits for: {stderr}"
        );
        assert_eq!(
            ids_of(&env, "omk-fleet-holder", "").len(),
            1,
            "restic {ver}"
        );

        // Bounded: a lock that stays gets a clear failure, and the lock is still kept.
        let mut holder = hold_lock(&env);
        let r = Run::from_output(
            env.cmd(&["forget"])
                .env("OMK_BACKUP_LOCK_WAIT", "3")
                .output()
                .unwrap(),
        );
        assert_eq!(r.code, 1, "restic {ver}: {}", r.all());
        assert!(
            r.all().contains("locked") && r.all().contains("waited"),
            "restic {ver}: {}",
            r.all()
        );
        assert_eq!(locks(&env).len(), 1, "restic {ver}");
        drop(holder.stdin.take());
        assert!(holder.wait().unwrap().success());
    }
}

/// Plant an attestation of `job` under `host` by plain restic with our tags.
fn plant(env: &Env, host: &str, job: &str, body: &[u8]) {
    let mut child = Command::new(&env.restic)
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "attestation.json",
            "--host",
            host,
        ])
        .args([
            "--tag",
            "omk:attestation",
            "--tag",
            &format!("omk:attests={job}"),
        ])
        .env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD_FILE", env.path("password"))
        .env("RESTIC_CACHE_DIR", env.path(".cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    assert!(child.wait().unwrap().success());
}

fn fleet_job<'a>(v: &'a serde_json::Value, host: &str) -> &'a serde_json::Value {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["host"] == host && j["job"] == "files1")
        .unwrap_or_else(|| panic!("no files1 of {host}: {v}"))
}

#[test]
fn attestations_feed_fleet_and_rebuild_and_bad_ones_are_named() {
    for (ver, restic) in restics() {
        let a = Env::new(&restic);
        let (ha, hb) = hosts();
        write_cfg(&a, &a, &ha, "maintenance = true");
        a.init();
        let b = second(&a, &hb, "");
        b.run(&["backup"]).ok();
        a.run(&["forget", "--prune"]).ok();
        for env in [&a, &b] {
            env.run(&["restore-test"]).ok();
        }
        assert_eq!(ids_of(&a, &ha, "omk:attestation").len(), 1, "restic {ver}");
        // The job's retention (keep_last = 2) does not count or remove attestations.
        for _ in 0..3 {
            a.run(&["backup"]).ok();
        }
        a.run(&["forget"]).ok();
        assert_eq!(ids_of(&a, &ha, "omk:job=files1").len(), 2, "restic {ver}");
        assert_eq!(ids_of(&a, &ha, "omk:attestation").len(), 1, "restic {ver}");

        // A fresh machine: only a config (another host name), no catalog.
        let fresh = Env::new(&restic);
        write_cfg(&fresh, &a, "omk-fresh", "");
        let v = fresh.run(&["--json", "fleet"]).ok().json();
        assert!(!fresh.path("catalog.db").exists(), "fleet needs no catalog");
        assert_eq!(v["maintenance_host"], ha.as_str(), "{v}");
        for h in [&ha, &hb] {
            let j = fleet_job(&v, h);
            assert_eq!(j["last_test_passed"], true, "restic {ver}: {v}");
            assert!(j["last_verified_restore"].is_string(), "{v}");
            assert!(j["rto_seconds"].as_f64().unwrap() > 0.0, "{v}");
            assert!(j["rpo_seconds"].as_i64().unwrap() >= 0, "{v}");
            assert_eq!(j["problems"].as_array().unwrap().len(), 0, "{v}");
        }
        let human = fresh.run(&["fleet"]).ok().stdout;
        assert!(human.contains(&ha) && human.contains(&hb), "{human}");

        // Hostile attestations with our tags: garbage for A, a huge one for B.
        plant(&a, &ha, "files1", b"{\"schema\": 1, \"job\": ");
        plant(&a, &hb, "files1", &vec![b' '; 200_000]);
        let r = fresh.run(&["--json", "fleet"]).code(1);
        let v = r.json();
        let (ja, jb) = (fleet_job(&v, &ha), fleet_job(&v, &hb));
        let pa = ja["problems"].to_string();
        let pb = jb["problems"].to_string();
        assert!(pa.contains("not a valid attestation"), "restic {ver}: {v}");
        assert!(pb.contains("larger than 64 KiB"), "restic {ver}: {v}");
        // ...and the older, valid ones still count.
        assert_eq!(ja["last_test_passed"], true, "{v}");
        assert_eq!(jb["last_test_passed"], true, "{v}");

        // A lost catalog: rebuild brings back A's restore-test history, names the bad one.
        for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
            let _ = std::fs::remove_file(a.path(f));
        }
        let rb = a.run(&["--json", "catalog", "rebuild"]).ok().json();
        assert_eq!(rb["restore_tests_added"], 1, "restic {ver}: {rb}");
        let errs = rb["attestation_errors"].to_string();
        assert!(errs.contains("not a valid attestation"), "{rb}");
        let st = a.run(&["--json", "status"]).ok().json();
        assert!(
            st["jobs"][0]["last_verified_restore"].is_string(),
            "restic {ver}: {st}"
        );
        assert_eq!(
            a.sql("SELECT count(*) FROM restore_tests WHERE passed = 1"),
            "1"
        );
    }
}
