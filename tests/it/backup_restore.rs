//! The main path, on both restic versions: backup, snapshots, status, restore latest,
//! retention, check, catalog rebuild.

use crate::util::*;

#[test]
fn backup_then_restore_latest_roundtrip() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let first = env.init().json_of_backup();
        assert_eq!(first.0, "success", "restic {ver}");
        // Change the data, back up again: `restore latest` must bring back the new state.
        std::fs::write(env.path("data/hello.txt"), "changed\n").unwrap();
        std::fs::write(env.path("data/new.bin"), vec![7u8; 300_000]).unwrap();
        let run = env.run(&["--json", "backup"]).ok();
        let v = run.json();
        let snap = v["jobs"][0]["snapshot_id"].as_str().unwrap().to_string();
        assert_eq!(
            snap.len(),
            64,
            "restic {ver}: the catalog keeps full snapshot ids"
        );
        assert_eq!(
            v["jobs"][0]["bytes"].as_u64().unwrap() as usize,
            8 + 3890 + 300_000,
            "restic {ver}"
        );

        // snapshots --json: the stable fields.
        let list = env.run(&["--json", "snapshots"]).ok().json();
        let arr = list.as_array().unwrap();
        assert_eq!(arr.len(), 2, "restic {ver}");
        for s in arr {
            for field in ["job", "snapshot_id", "time", "bytes"] {
                assert!(s.get(field).is_some(), "snapshots --json lacks {field}");
            }
            assert!(s["time"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC");
        }
        assert_eq!(arr[1]["snapshot_id"], snap);

        // restore latest into an empty folder: exactly the job's data.
        let target = env.path("restored");
        let r = env
            .run(&[
                "restore",
                "latest",
                "--job",
                "files1",
                "--target",
                target.to_str().unwrap(),
            ])
            .ok();
        assert!(r.stdout.contains("restored files1"), "{}", r.stdout);
        let restored = target.join(env.path("data").strip_prefix("/").unwrap());
        assert_same_tree(&env.path("data"), &restored);

        // A non-empty target is refused (exit 2) unless --overwrite.
        let r = env
            .run(&["restore", "latest", "--target", target.to_str().unwrap()])
            .code(2);
        assert!(
            r.stderr.contains("is not empty") && r.stderr.contains("--overwrite"),
            "{}",
            r.stderr
        );
        env.run(&[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--overwrite",
        ])
        .ok();

        // An older snapshot by id prefix.
        let first_id = arr[0]["snapshot_id"].as_str().unwrap();
        let old = env.path("old");
        env.run(&[
            "restore",
            &first_id[..10],
            "--target",
            old.to_str().unwrap(),
        ])
        .ok();
        let hello = std::fs::read_to_string(
            old.join(env.path("data/hello.txt").strip_prefix("/").unwrap()),
        )
        .unwrap();
        assert_eq!(
            hello, "hello omk\n",
            "restic {ver}: the old snapshot has the old content"
        );

        // status --json: the stable fields.
        let st = env.run(&["--json", "status"]).ok().json();
        let job = &st["jobs"][0];
        for field in [
            "job",
            "last_backup",
            "last_verified_restore",
            "rpo_seconds",
            "next_run",
        ] {
            assert!(job.get(field).is_some(), "status --json lacks {field}");
        }
        assert_eq!(job["job"], "files1");
        assert!(job["rpo_seconds"].as_i64().unwrap() < 600);
    }
}

trait BackupJson {
    fn json_of_backup(self) -> (String, String);
}

impl BackupJson for Run {
    fn json_of_backup(self) -> (String, String) {
        // `backup --init` prints the human report; read the status word of the job line.
        let line = self
            .stdout
            .lines()
            .find(|l| l.contains("files1"))
            .unwrap_or_default()
            .to_string();
        let status = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        (status, line)
    }
}

#[test]
fn retention_check_and_catalog_rebuild() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.write_config(
            "[retention]\nkeep_last = 2\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        );
        env.init();
        for i in 0..3 {
            std::fs::write(env.path("data/counter.txt"), format!("{i}\n")).unwrap();
            env.run(&["backup"]).ok();
        }
        let before = env.run(&["--json", "snapshots"]).ok().json();
        assert_eq!(before.as_array().unwrap().len(), 4, "restic {ver}");
        let f = env.run(&["--json", "forget", "--prune"]).ok().json();
        assert_eq!(
            f["jobs"][0]["removed"].as_array().unwrap().len(),
            2,
            "restic {ver}: {f}"
        );
        assert_eq!(f["pruned"], true);
        let after = env.run(&["--json", "snapshots"]).ok().json();
        assert_eq!(after.as_array().unwrap().len(), 2, "restic {ver}");
        let in_repo = env.restic_cmd(&["snapshots", "--json"]).ok().json();
        assert_eq!(
            in_repo.as_array().unwrap().len(),
            2,
            "restic {ver}: the repository agrees with the catalog"
        );

        let c = env.run(&["check"]).ok();
        assert!(c.stdout.contains("check passed"), "{}", c.stdout);
        env.run(&["check", "--read-data-subset", "1/2"]).ok();
        env.run(&["check", "--read-data-subset", "3/2"]).code(2);

        // Lose the catalog: rebuild it from the repository's tags.
        for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
            let _ = std::fs::remove_file(env.path(f));
        }
        assert_eq!(
            env.run(&["--json", "snapshots"])
                .ok()
                .json()
                .as_array()
                .unwrap()
                .len(),
            0
        );
        let r = env.run(&["--json", "catalog", "rebuild"]).ok().json();
        assert_eq!(r["added"], 2, "restic {ver}: {r}");
        let rebuilt = env.run(&["--json", "snapshots"]).ok().json();
        let ids = |v: &serde_json::Value| {
            let mut x: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["snapshot_id"].as_str().unwrap().to_string())
                .collect();
            x.sort();
            x
        };
        assert_eq!(
            ids(&rebuilt),
            ids(&after),
            "restic {ver}: the same snapshots come back"
        );
        // Rebuild cannot vouch for files snapshots: restore latest refuses them, naming
        // the flag, and restores the newest with --allow-unverified.
        let r = env.run(&[
            "restore",
            "latest",
            "--target",
            env.path("r").to_str().unwrap(),
        ]);
        assert_eq!(r.code, 2, "restic {ver}: {}", r.all());
        assert!(r.stderr.contains("--allow-unverified"), "{}", r.stderr);
        env.run(&[
            "restore",
            "latest",
            "--allow-unverified",
            "--target",
            env.path("r").to_str().unwrap(),
        ])
        .ok();
        let counter = env
            .path("r")
            .join(env.path("data/counter.txt").strip_prefix("/").unwrap());
        assert_eq!(std::fs::read_to_string(counter).unwrap(), "2\n");
    }
}

#[test]
fn restore_latest_without_a_catalog_asks_the_repository() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.init();
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(env.path(f));
    }
    env.run(&[
        "restore",
        "latest",
        "--allow-unverified",
        "--target",
        env.path("r").to_str().unwrap(),
    ])
    .ok();
    assert!(
        env.path("r")
            .join(env.path("data/hello.txt").strip_prefix("/").unwrap())
            .exists()
    );
}

#[test]
fn config_check_lists_jobs_with_their_origin() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    let r = env.run(&["config", "check"]).ok();
    assert!(
        r.stdout.contains("files1") && r.stdout.contains("omk.toml:"),
        "{}",
        r.stdout
    );
    let v = env.run(&["--json", "config", "check"]).ok().json();
    assert_eq!(v["jobs"][0]["job"], "files1");
    assert_eq!(v["jobs"][0]["kind"], "files");
}

#[test]
fn progress_bar_on_a_terminal_only() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.init();
    let big = env.path("data/big.bin");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 300000000 /dev/urandom > {}",
            big.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    // Under a pseudo-terminal (script(1)), stderr is a TTY: a bar is drawn.
    let under_pty = |extra: &str| {
        let cmd = format!("{BIN} {extra}");
        let mut c = std::process::Command::new("script");
        for (k, v) in env.cmd(&[]).get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.args(["-qefc", &cmd, "/dev/null"])
            .current_dir(env.dir.path())
            .stdin(std::process::Stdio::null());
        Run::from_output(c.output().unwrap())
    };
    let tty = under_pty("backup").ok();
    assert!(
        tty.stdout.contains(" files (") && tty.stdout.contains("[="),
        "no progress bar on a TTY:\n{}",
        tty.stdout
    );
    // -q on a TTY: no bar, no notes. (300 MB down to 7 bytes is a real shrink, accepted.)
    std::fs::write(&big, b"changed").unwrap();
    let quiet = under_pty("-q backup --accept-shrink files1").ok();
    assert!(
        !quiet.stdout.contains("[=") && !quiet.stdout.contains("backing up"),
        "{}",
        quiet.stdout
    );
    // On a pipe: notes, no bar.
    let piped = env.run(&["backup"]).ok();
    assert!(
        piped.stderr.contains("backing up") && !piped.stderr.contains("[="),
        "{}",
        piped.stderr
    );
}
