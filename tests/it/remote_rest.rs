//! A `rest:` repository on a real REST server (`rclone serve restic`, started by
//! scripts/setup-test-env.sh with basic auth): the credentials inside the URL never
//! appear in output at any verbosity, argv, the catalog, reports or the metrics file,
//! and wrong credentials are named as such (not as "no repository").

use crate::util::*;
use std::process::Stdio;

/// The REST server's address and password, from the harness.
fn rest_server() -> (String, String, String) {
    let addr = std::env::var("OMK_TEST_REST_ADDR")
        .expect("OMK_TEST_REST_ADDR is not set: run the tests with scripts/test.sh");
    let user = std::env::var("OMK_TEST_REST_USER").expect("OMK_TEST_REST_USER is not set");
    let file =
        std::env::var("OMK_TEST_REST_PASS_FILE").expect("OMK_TEST_REST_PASS_FILE is not set");
    let pass = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read the REST server password {file}: {e}"))
        .trim()
        .to_string();
    assert!(
        pass.len() >= 12,
        "the harness's REST password is too short to grep for"
    );
    (addr, user, pass)
}

/// An env whose repository is a fresh sub-path on the REST server.
fn rest_env(restic: &std::path::Path, pass: &str) -> (Env, String) {
    let (addr, user, _) = rest_server();
    let env = Env::new(restic);
    let url = format!("rest:http://{user}:{pass}@{addr}/omk-it-{}/", unique());
    let text = format!(
        "[repository]\nurl = \"{url}\"\npassword_file = \"password\"\n\n\
         [metrics]\ntextfile = \"metrics.prom\"\n\n\
         [retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n"
    );
    std::fs::write(env.config_path(), text).unwrap();
    (env, url)
}

fn assert_absent(what: &str, hay: &[u8], needle: &str) {
    assert!(
        !hay.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "{what} contains the REST password"
    );
}

#[test]
fn rest_repository_works_and_its_url_credentials_are_never_shown() {
    let (_, _, pass) = rest_server();
    for (ver, restic) in restics() {
        let (env, _url) = rest_env(&restic, &pass);
        let mut outputs = Vec::new();
        for args in [
            vec!["-vvv", "backup", "--init"],
            vec!["-vvv", "backup"],
            vec!["-vvv", "--json", "backup"],
            vec!["-vvv", "snapshots"],
            vec!["-vvv", "--json", "status"],
            vec!["-vvv", "status"],
            vec!["-vvv", "restore", "latest", "--target", "restored"],
            vec!["-vvv", "check"],
            vec!["-vvv", "forget", "--prune"],
            vec!["-vvv", "--json", "restore-test"],
            vec!["-vvv", "report", "--format", "md", "--output", "r.md"],
            vec!["-vvv", "report", "--format", "html", "--output", "r.html"],
            vec!["-vvv", "report", "--format", "json", "--output", "r.json"],
            vec!["-vvv", "config", "check"],
            vec!["-vvv", "catalog", "rebuild"],
        ] {
            let r = Run::from_output(env.cmd(&args).stdout(Stdio::piped()).output().unwrap());
            assert_eq!(
                r.code,
                0,
                "restic {ver}: `{}` failed: {}",
                args.join(" "),
                r.stderr
            );
            assert_absent(
                &format!("restic {ver}: `{}` output", args.join(" ")),
                r.all().as_bytes(),
                &pass,
            );
            outputs.push(r);
        }
        // The REST repository really holds the backup: restore matches the source.
        assert_same_tree(
            &env.path("data"),
            &env.path(&format!("restored{}", env.path("data").display())),
        );
        // The report names the repository, masked.
        let md = std::fs::read_to_string(env.path("r.md")).unwrap();
        assert!(
            md.contains(r":\*\*\*@"),
            "restic {ver}: the report does not show the masked URL:\n{md}"
        );
        assert_absent(
            &format!("restic {ver}: catalog"),
            &env.catalog_bytes(),
            &pass,
        );
        for f in ["r.md", "r.html", "r.json", "metrics.prom"] {
            let b = std::fs::read(env.path(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(!b.is_empty(), "{f} is empty");
            assert_absent(&format!("restic {ver}: {f}"), &b, &pass);
        }
        // The restore test passed over the wire.
        let rt = outputs[9].json();
        assert_eq!(rt["tests"][0]["passed"], true, "restic {ver}: {rt}");
    }
}

#[test]
fn wrong_rest_credentials_are_named_not_mistaken_for_a_missing_repository() {
    let (_, _, pass) = rest_server();
    for (ver, restic) in restics() {
        let (env, url) = rest_env(&restic, &pass);
        env.run(&["backup", "--init"]).ok();
        let wrong = format!("wrong-{}", unique());
        let text = std::fs::read_to_string(env.config_path())
            .unwrap()
            .replace(&url, &url.replace(&pass, &wrong));
        std::fs::write(env.config_path(), text).unwrap();
        let r = env.run(&["-vv", "backup"]);
        // The run is recorded and fails; credentials in the config are the set-up's to
        // fix: exit 2.
        assert_eq!(r.code, 2, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("refused the credentials") && r.stderr.contains("401"),
            "restic {ver}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("there is no restic repository"),
            "restic {ver}: {}",
            r.stderr
        );
        assert_absent(&format!("restic {ver}: output"), r.all().as_bytes(), &wrong);
        assert_absent(&format!("restic {ver}: output"), r.all().as_bytes(), &pass);
    }
}

#[test]
fn rest_https_repository_full_cycle_with_cacert_and_the_encryption_proof_over_the_wire() {
    for (ver, restic) in restics() {
        crate::remote_common::full_cycle(
            ver,
            &restic,
            &crate::remote_common::Backend::rest_https(),
        );
    }
}

#[test]
fn https_wrong_credentials_are_named_and_a_wrong_cacert_is_a_tls_error_naming_cacert() {
    use crate::remote_common::*;
    let pass = rest_password();
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let mut b = Backend::rest_https();
        let jobs =
            "[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n";
        b.write(&env, jobs);
        let r = b.run(&env, &["backup", "--init"]);
        assert_eq!(r.code, 0, "restic {ver}: {}", r.all());
        // A 401 over https: named, credentials not shown.
        let wrong = format!("wrong-{}", unique());
        b.url = b.url.replace(&pass, &wrong);
        b.write(&env, jobs);
        let r = b.run(&env, &["-vv", "backup"]);
        assert_eq!(r.code, 2, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("refused the credentials") && r.stderr.contains("401"),
            "restic {ver}: {}",
            r.stderr
        );
        assert_absent(&format!("restic {ver}: output"), r.all().as_bytes(), &wrong);
        assert_absent(&format!("restic {ver}: output"), r.all().as_bytes(), &pass);
        // A CA that did not sign the server's certificate: a TLS error naming cacert, at
        // once (restic 0.18 would retry it for 15 minutes), nothing recorded good.
        b.url = b.url.replace(&wrong, &pass);
        b.repo_extra = format!("cacert = \"{}\"\n", need_var("OMK_TEST_WRONG_CACERT"));
        b.write(&env, jobs);
        let good = env.sql("SELECT count(*) FROM snapshots WHERE state = 'good'");
        let t = std::time::Instant::now();
        let r = b.run(&env, &["backup"]);
        assert_eq!(r.code, 2, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("TLS certificate")
                && r.stderr.contains("cacert")
                && r.stderr.contains("unknown authority"),
            "restic {ver}: {}",
            r.stderr
        );
        assert!(
            t.elapsed().as_secs() < 60,
            "restic {ver}: {:?}",
            t.elapsed()
        );
        assert_absent(&format!("restic {ver}: output"), r.all().as_bytes(), &pass);
        assert_eq!(
            env.sql("SELECT count(*) FROM snapshots WHERE state = 'good'"),
            good
        );
    }
}

#[test]
fn a_rest_server_gone_mid_backup_fails_the_run_cleanly_and_the_next_run_succeeds() {
    use crate::remote_common::*;
    let (_, user, pass) = rest_server();
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let store = env.path("rest-store");
        std::fs::create_dir_all(&store).unwrap();
        // The harness's htpasswd, on a private rclone server of this test's own.
        let htpasswd = need_var("OMK_TEST_REST_PASS_FILE").replace(".pass", ".htpasswd");
        let mut server = PrivateServer::start(&[
            "/usr/bin/rclone".into(),
            "serve".into(),
            "restic".into(),
            "--addr".into(),
            "127.0.0.1:{port}".into(),
            "--htpasswd".into(),
            htpasswd,
            store.display().to_string(),
        ]);
        let b = Backend {
            name: "rest-private",
            url: format!("rest:http://{user}:{pass}@127.0.0.1:{}/r/", server.port),
            // restic 0.18 retries a vanished server for 15 minutes: stall_timeout bounds it.
            repo_extra: "limit_upload = 300\nstall_timeout = \"20s\"\n".into(),
            vars: Vec::new(),
        };
        server_gone_mid_backup(ver, &env, &b, &mut server);
    }
}
