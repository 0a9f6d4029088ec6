//! Copies (3-2-1): `omk-backup copy` puts this host's good snapshots into `[copies.NAME]`
//! repositories (a local path and the harness's real REST server), once each, with real
//! restic 0.14 and 0.18; `restore --from` and `restore-test --repository` work from a
//! copy alone; and the faults: a wrong password on one copy, a copy that does not exist,
//! a copy stopped by SIGTERM, another host's snapshots, a snapshot that is not good.

use crate::util::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

/// An env with two backups of `files1` and the copies given (TOML after the jobs).
fn env_with(restic: &Path, copies: &str) -> Env {
    let env = Env::new(restic);
    std::fs::write(env.path("password2"), format!("copy-{}\n", unique())).unwrap();
    env.write_config(&format!(
        "[metrics]\ntextfile = \"metrics.prom\"\n\n[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n{copies}"
    ));
    env
}

fn local_copy(name: &str, dir: &str, extra: &str) -> String {
    format!("[copies.{name}]\nurl = \"{dir}\"\npassword_file = \"password2\"\n{extra}\n")
}

/// restic on another repository of the env (password file relative to the env).
fn restic_on(env: &Env, url: &str, password: &str, args: &[&str]) -> Run {
    let out = Command::new(&env.restic)
        .args(args)
        .env("RESTIC_REPOSITORY", url)
        .env("RESTIC_PASSWORD_FILE", env.path(password))
        .env("RESTIC_CACHE_DIR", env.path(".cache"))
        .current_dir(env.dir.path())
        .output()
        .expect("run restic");
    Run::from_output(out)
}

/// (id, original, hostname) of every snapshot in a repository.
fn snapshots_in(env: &Env, url: &str, password: &str) -> Vec<(String, Option<String>, String)> {
    let r = restic_on(env, url, password, &["snapshots", "--json"]).ok();
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["original"].as_str().map(str::to_string),
                s["hostname"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn good_ids(env: &Env) -> BTreeSet<String> {
    env.sql("SELECT snapshot_id FROM snapshots WHERE state = 'good'")
        .lines()
        .map(str::to_string)
        .collect()
}

fn originals(env: &Env, url: &str, password: &str) -> Vec<String> {
    snapshots_in(env, url, password)
        .into_iter()
        .filter_map(|s| s.1)
        .collect()
}

/// The harness's REST server as a copy URL (fresh path), and its password.
fn rest_copy_url() -> (String, String) {
    let addr = std::env::var("OMK_TEST_REST_ADDR")
        .expect("OMK_TEST_REST_ADDR is not set: run the tests with scripts/test.sh");
    let user = std::env::var("OMK_TEST_REST_USER").expect("OMK_TEST_REST_USER is not set");
    let file =
        std::env::var("OMK_TEST_REST_PASS_FILE").expect("OMK_TEST_REST_PASS_FILE is not set");
    let pass = std::fs::read_to_string(&file).unwrap().trim().to_string();
    (
        format!("rest:http://{user}:{pass}@{addr}/omk-it-copy-{}/", unique()),
        pass,
    )
}

#[test]
fn copy_fills_each_copy_once_and_a_copy_alone_restores_and_restore_tests() {
    let (rest_url, rest_pass) = rest_copy_url();
    for (ver, restic) in restics() {
        let copies = format!(
            "{}\n[copies.nas]\nurl = \"{rest_url}{ver}\"\npassword_file = \"password2\"\nretention = {{ keep_last = 1 }}\n",
            local_copy("usb", "usb-repo", "")
        );
        let env = env_with(&restic, &copies);
        env.init();
        env.run(&["backup"]).ok();
        let good = good_ids(&env);
        assert_eq!(good.len(), 2, "restic {ver}");
        let r = env.run(&["-vv", "copy", "--init"]).ok();
        assert!(
            !r.all().contains(&rest_pass),
            "restic {ver}: REST password shown: {}",
            r.all()
        );
        let usb: BTreeSet<String> = originals(&env, "usb-repo", "password2")
            .into_iter()
            .collect();
        assert_eq!(
            usb, good,
            "restic {ver}: the usb copy holds every good snapshot"
        );
        let nas = originals(&env, &format!("{rest_url}{ver}"), "password2");
        assert_eq!(
            nas.len(),
            1,
            "restic {ver}: the nas copy's retention keeps 1: {nas:?}"
        );
        // Same chunker parameters as the primary (copy --init --copy-chunker-params).
        let poly = |url: &str, pw: &str| {
            restic_on(&env, url, pw, &["cat", "config"]).ok().json()["chunker_polynomial"].clone()
        };
        assert_eq!(
            poly("repo", "password"),
            poly("usb-repo", "password2"),
            "restic {ver}"
        );
        // A repeat copies nothing.
        let again = env.run(&["--json", "copy"]).ok().json();
        for c in again["copies"].as_array().unwrap() {
            assert_eq!(
                c["jobs"][0]["copied"].as_array().unwrap().len(),
                0,
                "restic {ver}: {again}"
            );
        }
        assert_eq!(
            snapshots_in(&env, "usb-repo", "password2").len(),
            2,
            "restic {ver}"
        );
        assert_eq!(
            env.sql(
                "SELECT count(*) FROM copies WHERE repository = 'usb' AND forgotten_at IS NULL"
            ),
            "2"
        );
        assert!(
            !env.catalog_bytes()
                .windows(rest_pass.len())
                .any(|w| w == rest_pass.as_bytes())
        );
        // The primary goes away: the copy alone restores and restore-tests.
        std::fs::rename(env.repo(), env.path("repo-gone")).unwrap();
        env.run(&[
            "restore", "latest", "--job", "files1", "--from", "usb", "--target", "out",
        ])
        .ok();
        let data = env.path("data");
        assert_same_tree(
            &data,
            &env.path("out").join(data.strip_prefix("/").unwrap()),
        );
        let t = env
            .run(&["--json", "restore-test", "--repository", "usb"])
            .ok()
            .json();
        assert_eq!(t["tests"][0]["passed"], true, "restic {ver}: {t}");
        assert_eq!(t["tests"][0]["repository"], "usb", "restic {ver}: {t}");
        assert!(
            t["encryption"]["repository"]
                .as_str()
                .unwrap()
                .ends_with("usb-repo"),
            "restic {ver}: the encryption proof ran on the copy: {t}"
        );
        assert_eq!(
            env.sql("SELECT repository FROM restore_tests ORDER BY id DESC LIMIT 1"),
            "usb"
        );
        // Nothing the proof left behind is taken for a copied snapshot.
        assert_eq!(
            snapshots_in(&env, "usb-repo", "password2").len(),
            2,
            "restic {ver}"
        );
    }
}

#[test]
fn a_wrong_password_on_one_copy_fails_that_copy_only() {
    for (ver, restic) in restics() {
        let copies = format!(
            "{}{}",
            local_copy("good", "good-repo", ""),
            "[copies.bad]\nurl = \"bad-repo\"\npassword_file = \"wrong\"\n"
        );
        let env = env_with(&restic, &copies);
        std::fs::write(env.path("wrong"), "not-the-password\n").unwrap();
        env.init();
        // The bad copy exists, made with another password.
        restic_on(&env, "bad-repo", "password2", &["init"]).ok();
        env.run(&["copy", "--to", "good", "--init"]).ok();
        env.run(&["backup"]).ok();
        let r = env.run(&["copy"]).code(1);
        assert!(
            r.all().contains("copies.bad.password_file") && r.all().contains("bad-repo"),
            "restic {ver}: the error names the copy and its key: {}",
            r.all()
        );
        let held: BTreeSet<String> = originals(&env, "good-repo", "password2")
            .into_iter()
            .collect();
        assert_eq!(
            held,
            good_ids(&env),
            "restic {ver}: the good copy was still filled"
        );
        assert_eq!(
            env.sql(
                "SELECT status FROM runs WHERE command = 'copy' ORDER BY started_at DESC LIMIT 1"
            ),
            "failed"
        );
        // The primary is untouched: the next backup works.
        env.run(&["backup"]).ok();
    }
}

#[test]
fn a_missing_copy_repository_is_named_and_created_only_with_init() {
    for (ver, restic) in restics() {
        let env = env_with(&restic, &local_copy("offsite", "offsite-repo", ""));
        env.init();
        let r = env.run(&["copy"]).code(1);
        assert!(
            r.all().contains("offsite-repo")
                && r.all().contains("copies.offsite.url")
                && r.all().contains("copy --to offsite --init"),
            "restic {ver}: {}",
            r.all()
        );
        assert!(
            !env.path("offsite-repo").exists(),
            "restic {ver}: nothing created"
        );
        env.run(&["copy", "--to", "offsite", "--init"]).ok();
        assert_eq!(
            originals(&env, "offsite-repo", "password2").len(),
            1,
            "restic {ver}"
        );
    }
}

#[test]
fn a_copy_stopped_by_sigterm_is_completed_by_the_next_copy_without_duplicates() {
    for (ver, restic) in restics() {
        let env = env_with(&restic, &local_copy("usb", "usb-repo", ""));
        env.init();
        env.run(&["copy", "--init"]).ok();
        env.run(&["backup"]).ok();
        env.run(&["backup"]).ok();
        // restic copies, then the run is stopped before it records what was copied.
        let wrapper = env.path("copy-then-wait");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nif [ \"$1\" = copy ]; then {} \"$@\"; sleep 60; exit 0; fi\nexec {} \"$@\"\n",
                restic.display(),
                restic.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = env
            .cmd(&["copy"])
            .env("OMK_BACKUP_RESTIC", &wrapper)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until(120, "restic copy wrote the snapshots", || {
            std::fs::read_dir(env.path("usb-repo/snapshots"))
                .map(|d| d.count() == 3)
                .unwrap_or(false)
        });
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = Run::from_output(child.wait_with_output().unwrap());
        assert_eq!(out.code, 143, "restic {ver}: {}", out.all());
        assert_eq!(
            env.sql(
                "SELECT status FROM runs WHERE command = 'copy' ORDER BY started_at DESC LIMIT 1"
            ),
            "interrupted"
        );
        env.run(&["copy"]).ok();
        let held = originals(&env, "usb-repo", "password2");
        let unique: BTreeSet<String> = held.iter().cloned().collect();
        assert_eq!(
            held.len(),
            unique.len(),
            "restic {ver}: no duplicates: {held:?}"
        );
        assert_eq!(unique, good_ids(&env), "restic {ver}");
        assert_eq!(
            env.sql(
                "SELECT count(*) FROM copies WHERE repository = 'usb' AND forgotten_at IS NULL"
            ),
            "3",
            "restic {ver}: the catalog knows every copied snapshot"
        );
    }
}

#[test]
fn copy_never_copies_another_hosts_snapshots_or_one_that_is_not_good() {
    for (ver, restic) in restics() {
        let env = env_with(&restic, &local_copy("usb", "usb-repo", ""));
        env.init();
        env.run(&["backup"]).ok();
        // Another host shares the repository with our tags.
        let data = env.path("data").display().to_string();
        env.restic_cmd(&[
            "backup",
            "--host",
            "other-host",
            "--tag",
            "omk:job=files1",
            &data,
        ])
        .ok();
        // One of ours is not vouched for any more.
        let suspect = env.sql("SELECT snapshot_id FROM snapshots ORDER BY time LIMIT 1");
        env.sql(&format!(
            "UPDATE snapshots SET state = 'suspect' WHERE snapshot_id = '{suspect}'"
        ));
        env.run(&["copy", "--init"]).ok();
        let in_copy = snapshots_in(&env, "usb-repo", "password2");
        assert_eq!(in_copy.len(), 1, "restic {ver}: {in_copy:?}");
        assert!(in_copy.iter().all(|s| s.2 != "other-host"), "restic {ver}");
        assert!(
            in_copy
                .iter()
                .all(|s| s.1.as_deref() != Some(suspect.as_str())),
            "restic {ver}: the suspect snapshot was not copied"
        );
    }
}

#[test]
fn a_schedule_line_copies_and_scheduled_restore_tests_rotate_over_repositories() {
    for (ver, restic) in restics() {
        let env = env_with(&restic, &local_copy("usb", "usb-repo", ""));
        let text = std::fs::read_to_string(env.config_path()).unwrap();
        std::fs::write(
            env.config_path(),
            format!("[schedule]\ngrace = \"400d\"\n\n{text}"),
        )
        .unwrap();
        std::fs::create_dir_all(env.path("schedules")).unwrap();
        // Yearly at new year, caught up once within the 400-day grace.
        std::fs::write(
            env.path("schedules/test.cron"),
            "0 0 1 1 * copy\n0 0 1 1 * restore-test\n",
        )
        .unwrap();
        env.init();
        env.run(&["copy", "--init"]).ok();
        env.run(&["backup"]).ok();
        env.sql("DELETE FROM runs WHERE command IN ('copy', 'restore-test')");
        let r = env.run(&["--json", "run-due"]).ok();
        assert_eq!(
            r.json()["tasks"].as_array().unwrap().len(),
            2,
            "restic {ver}: {}",
            r.stdout
        );
        let held: BTreeSet<String> = originals(&env, "usb-repo", "password2")
            .into_iter()
            .collect();
        assert_eq!(held, good_ids(&env), "restic {ver}: the scheduled copy ran");
        assert_eq!(
            env.sql("SELECT trigger || ' ' || status FROM runs WHERE command = 'copy'"),
            "catch-up success"
        );
        // Scheduled restore tests alternate: the primary, then the copy, then the primary.
        let mut tested =
            vec![env.sql(
                "SELECT ifnull(repository, 'main') FROM restore_tests ORDER BY id DESC LIMIT 1",
            )];
        for _ in 0..2 {
            env.sql("DELETE FROM runs WHERE command = 'restore-test'");
            env.run(&["run-due"]).ok();
            tested.push(env.sql(
                "SELECT ifnull(repository, 'main') FROM restore_tests ORDER BY id DESC LIMIT 1",
            ));
        }
        assert_eq!(tested, ["main", "usb", "main"], "restic {ver}");
        assert_eq!(
            env.sql("SELECT count(*) FROM restore_tests WHERE passed = 1"),
            "3",
            "restic {ver}"
        );
    }
}

#[test]
fn a_database_job_restore_tests_and_restores_from_a_copy_alone() {
    let lite = crate::dock::sqlite();
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        std::fs::write(env.path("password2"), format!("copy-{}\n", unique())).unwrap();
        env.write_config(&format!(
            "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.lite]\nkind = \"sqlite\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\n\n{}",
            crate::dock::proxy(),
            lite.name,
            local_copy("usb", "usb-repo", "")
        ));
        env.run(&["backup", "--init"]).ok();
        env.run(&["copy", "--init"]).ok();
        std::fs::rename(env.repo(), env.path("repo-gone")).unwrap();
        let t = env
            .run(&["--json", "restore-test", "--repository", "usb"])
            .ok()
            .json();
        let test = &t["tests"][0];
        assert_eq!(test["passed"], true, "restic {ver}: {t}");
        let digest = test["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "dump-digest")
            .unwrap_or_else(|| panic!("restic {ver}: no dump-digest check: {t}"));
        assert_eq!(digest["passed"], true, "restic {ver}: {digest}");
        let r = env
            .run(&[
                "--json", "restore", "latest", "--job", "lite", "--from", "usb", "--target", "out",
            ])
            .ok()
            .json();
        let file = env.path(r["restored"][0].as_str().unwrap());
        assert!(
            std::fs::metadata(&file)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "restic {ver}: the dump {} was restored from the copy: {r}",
            file.display()
        );
    }
}

/// A local copy is recorded from restic's own report of the copy, checked against the
/// copy's snapshot files: no restic process lists the copy afterwards (that listing was
/// the whole cost over a bare `restic copy`), the catalog holds the copies' real full
/// ids, and a copy removed behind omk-backup's back is noticed and copied again.
#[test]
fn a_local_copy_is_recorded_from_restics_report_checked_against_its_files() {
    use std::os::unix::fs::PermissionsExt;
    for (ver, restic) in restics() {
        let env = env_with(&restic, &local_copy("usb", "usb-repo", ""));
        env.init();
        env.run(&["backup"]).ok();
        let log = env.path("restic-calls");
        let wrapper = env.path("logging-restic");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$1\" >> {}\nexec {} \"$@\"\n",
                log.display(),
                restic.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = |extra: &[&str]| {
            let _ = std::fs::remove_file(&log);
            let mut args = vec!["--json", "copy"];
            args.extend(extra);
            let out = env
                .cmd(&args)
                .env("OMK_BACKUP_RESTIC", &wrapper)
                .output()
                .unwrap();
            let r = Run::from_output(out).ok();
            let calls = std::fs::read_to_string(&log).unwrap_or_default();
            (r.json(), calls)
        };
        let (first, calls) = copy(&["--init"]);
        assert_eq!(
            first["copies"][0]["status"], "success",
            "restic {ver}: {first}"
        );
        // The fresh copy was opened (and created) on purpose, then one restic copy.
        assert!(calls.lines().any(|c| c == "copy"), "restic {ver}: {calls}");
        let (again, calls) = copy(&[]);
        assert_eq!(
            again["copies"][0]["status"], "success",
            "restic {ver}: {again}"
        );
        let lines: Vec<&str> = calls.lines().collect();
        // restic copy, then the copy's retention (keep_last = 3 from [retention]); no
        // `snapshots` listing of the copy.
        assert_eq!(
            lines,
            ["version", "copy", "forget"],
            "restic {ver}: a local copy needs no listing afterwards"
        );
        // The catalog's copy ids are the copy's real ids, by original.
        let real: BTreeSet<String> = snapshots_in(&env, "usb-repo", "password2")
            .into_iter()
            .map(|(id, original, _)| format!("{}|{id}", original.unwrap()))
            .collect();
        let recorded: BTreeSet<String> = env
            .sql("SELECT snapshot_id || '|' || copy_id FROM copies WHERE repository = 'usb' AND forgotten_at IS NULL")
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(recorded.len(), 2, "restic {ver}");
        assert_eq!(recorded, real, "restic {ver}");
        // One copy removed behind omk-backup's back: the next copy notices and copies
        // that snapshot again; the catalog then names the new copy.
        let (victim_original, victim) = real.iter().next().unwrap().split_once('|').unwrap();
        restic_on(&env, "usb-repo", "password2", &["forget", victim]).ok();
        let (third, _) = copy(&[]);
        assert_eq!(
            third["copies"][0]["jobs"][0]["held"], 2,
            "restic {ver}: {third}"
        );
        let now: Vec<(String, Option<String>, String)> =
            snapshots_in(&env, "usb-repo", "password2");
        assert_eq!(now.len(), 2, "restic {ver}: {now:?}");
        assert!(now.iter().all(|s| s.0 != victim), "restic {ver}");
        let again_id = now
            .iter()
            .find(|s| s.1.as_deref() == Some(victim_original))
            .map(|s| s.0.clone())
            .expect("the removed copy is back");
        assert_eq!(
            env.sql(&format!(
                "SELECT copy_id FROM copies WHERE repository = 'usb' AND snapshot_id = '{victim_original}' AND forgotten_at IS NULL"
            )),
            again_id,
            "restic {ver}"
        );
    }
}
