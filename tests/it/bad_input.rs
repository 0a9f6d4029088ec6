//! Bad input: exit code 2 and a message naming the file or field and what to do.

use crate::util::*;

fn restic014() -> std::path::PathBuf {
    restics().remove(0).1
}

#[track_caller]
fn expect_usage(r: Run, fragments: &[&str]) {
    assert_eq!(
        r.code, 2,
        "want exit 2:\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    for f in fragments {
        assert!(r.stderr.contains(f), "stderr lacks {f:?}:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn missing_config() {
    let env = Env::new(&restic014());
    let r = Run::from_output(
        env.cmd(&["--config", "/nonexistent/omk.toml", "status"])
            .output()
            .unwrap(),
    );
    expect_usage(
        r,
        &["/nonexistent/omk.toml", "config file not found", "--config"],
    );
    // The default location is used when nothing is given.
    let r = Run::from_output(
        env.cmd(&["status"])
            .env_remove("OMK_BACKUP_CONFIG")
            .output()
            .unwrap(),
    );
    expect_usage(r, &["/etc/omk-backup/omk-backup.toml"]);
}

#[test]
fn config_errors_name_file_line_and_column() {
    let env = Env::new(&restic014());
    let file = env.config_path().display().to_string();
    let cases: &[(&str, &[&str])] = &[
        ("[jobs.x\nkind = \"files\"\n", &[":5:8:", "unclosed table"]),
        (
            "[retention]\nkeep_dialy = 3\n",
            &[":6:1:", "unknown field `keep_dialy`", "hint:"],
        ),
        (
            "[retention]\nkeep_daily = \"seven\"\n",
            &[":6:14:", "invalid type", "hint:"],
        ),
        (
            "[jobs.a]\nkind = \"files\"\n",
            &[":5:1:", "jobs.a has no paths", "paths = ["],
        ),
        (
            "[jobs.a]\nkind = \"files\"\npaths = [\"/does/not/exist\"]\n",
            &[":7:10:", "/does/not/exist does not exist"],
        ),
    ];
    for (rest, fragments) in cases {
        env.write_config(rest);
        let r = env.run(&["config", "check"]);
        let mut want = vec![file.as_str()];
        want.extend_from_slice(fragments);
        expect_usage(r, &want);
        // Every command validates the config the same way.
        expect_usage(env.run(&["backup"]), fragments);
    }
}

#[test]
fn password_file_unreadable_or_empty() {
    let env = Env::new(&restic014());
    let text = |pf: &str| format!("[repository]\nurl = \"repo\"\npassword_file = \"{pf}\"\n");
    std::fs::write(env.config_path(), text("nope")).unwrap();
    expect_usage(
        env.run(&["backup"]),
        &["repository.password_file", "nope", "cannot read", "hint:"],
    );
    std::fs::write(env.path("empty"), "").unwrap();
    std::fs::write(env.config_path(), text("empty")).unwrap();
    expect_usage(
        env.run(&["backup"]),
        &["repository.password_file", "is empty"],
    );
}

#[test]
fn restic_not_installed() {
    let env = Env::new(&restic014());
    let r = Run::from_output(
        env.cmd(&["backup"])
            .env("OMK_BACKUP_RESTIC", "/nonexistent/restic")
            .output()
            .unwrap(),
    );
    expect_usage(
        r,
        &[
            "restic not found",
            "/nonexistent/restic",
            "apt-get install restic",
        ],
    );
}

#[test]
fn repository_that_does_not_exist() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let r = env.run(&["backup"]);
        expect_usage(
            r,
            &[
                &env.repo().display().to_string(),
                "no restic repository",
                "--init",
            ],
        );
        assert!(
            !env.repo().exists(),
            "restic {ver}: nothing is created silently"
        );
        // The failed run is recorded as failed, never as a success.
        let st = env.run(&["--json", "status"]).ok().json();
        assert_eq!(st["jobs"][0]["last_backup"], serde_json::Value::Null);
        assert_eq!(st["jobs"][0]["last_run_status"], "failed");
    }
}

#[test]
fn usage_errors_from_the_command_line() {
    let env = Env::new(&restic014());
    expect_usage(env.run(&["frobnicate"]), &["frobnicate"]);
    expect_usage(
        env.run(&["backup", "nosuchjob"]),
        &["no job named `nosuchjob`", "files1"],
    );
    expect_usage(env.run(&["restore", "latest"]), &["--target"]);
}
