//! `[repository] limit_upload`, `limit_download` and `compression` reach every restic
//! call (seen in restic's own argv through a logging wrapper, with real restic behind
//! it), and `compression = "max"` on a version 1 repository — which restic ignores
//! without a word — fails the run with what to do.

use crate::util::*;

fn logging_restic(env: &Env) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = env.path("logging-restic");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
            env.path("argv.log").display(),
            env.restic.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

const JOBS: &str =
    "[retention]\nkeep_last = 1\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n";

#[test]
fn limits_and_compression_go_on_every_restic_call() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let wrapper = logging_restic(&env);
        std::fs::write(
            env.config_path(),
            format!(
                "[repository]\nurl = \"repo\"\npassword_file = \"password\"\nrestic = \"{}\"\nlimit_upload = 40960\nlimit_download = 20480\ncompression = \"max\"\n\n{JOBS}",
                wrapper.display()
            ),
        )
        .unwrap();
        for args in [
            vec!["backup", "--init"],
            vec!["backup"],
            vec!["restore", "latest", "--target", "restored"],
            vec!["restore-test"],
            vec!["check"],
            vec!["forget", "--prune"],
        ] {
            let r = Run::from_output(
                env.cmd(&args)
                    .env_remove("OMK_BACKUP_RESTIC")
                    .output()
                    .unwrap(),
            );
            assert_eq!(r.code, 0, "restic {ver}: {}: {}", args.join(" "), r.all());
        }
        let log = std::fs::read_to_string(env.path("argv.log")).unwrap();
        let calls: Vec<&str> = log.lines().filter(|l| *l != "version").collect();
        for sub in ["backup", "restore", "dump", "check", "prune", "forget"] {
            assert!(
                calls.iter().any(|c| c.split_whitespace().any(|w| w == sub)),
                "restic {ver}: no `{sub}` call in\n{log}"
            );
        }
        for c in &calls {
            assert!(
                c.starts_with("--limit-upload 40960 --limit-download 20480 --compression max "),
                "restic {ver}: a call without the transfer flags: {c}"
            );
        }
        // The data really is compressed: the repository is version 2 and max applied.
        let cfg = env.restic_cmd(&["cat", "config"]).ok();
        assert!(cfg.stdout.contains("\"version\": 2"), "{}", cfg.stdout);
    }
}

#[test]
fn compression_max_on_a_version_1_repository_fails_with_what_to_do() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.restic_cmd(&["init", "--repository-version", "1"]).ok();
        env.write_config(JOBS);
        let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
            "password_file = \"password\"\n",
            "password_file = \"password\"\ncompression = \"max\"\n",
        );
        std::fs::write(env.config_path(), text).unwrap();
        let r = env.run(&["backup"]);
        assert_ne!(r.code, 0, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("version 1 repository") && r.stderr.contains("upgrade_repo_v2"),
            "restic {ver}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("omk.toml"),
            "restic {ver}: names the config: {}",
            r.stderr
        );
        assert_eq!(
            env.sql("SELECT count(*) FROM snapshots WHERE state = 'good'"),
            "0"
        );
        // auto on v1: noted, and the backup runs.
        let text = std::fs::read_to_string(env.config_path())
            .unwrap()
            .replace("compression = \"max\"", "compression = \"auto\"");
        std::fs::write(env.config_path(), text).unwrap();
        let r = env.run(&["backup"]);
        assert_eq!(r.code, 0, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("has no effect"),
            "restic {ver}: {}",
            r.stderr
        );
    }
}
