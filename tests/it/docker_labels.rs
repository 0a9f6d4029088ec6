//! Labels are untrusted input (they come with whoever built the image): through the
//! real haproxy proxy, a container whose labels name a host file, a host path outside
//! `[docker] label_path_roots`, or a job name another container claims is refused — no
//! job from it runs, the run fails (exit 1) naming the container and the label, the
//! host file's content goes nowhere, and well-labelled containers are still backed up.

use crate::dock::*;
use crate::util::*;

#[test]
fn hostile_labels_are_refused_and_fail_the_run_naming_container_and_label() {
    let restic = restics().into_iter().find(|(v, _)| *v == "0.18").unwrap().1;
    let u = &unique()[..10];
    let env = Env::new(&restic);
    // A host file an image must never get to read.
    let secret = format!("HOSTSECRET-{u}");
    std::fs::write(env.path("host-secret"), format!("{secret}\n")).unwrap();
    let root = env.path("appdata");
    std::fs::create_dir_all(root.join("ok")).unwrap();
    std::fs::write(root.join("ok/file.txt"), "ok\n").unwrap();

    let steal = Container::run(
        "steal",
        &[
            "--label",
            "omk-backup.enable=true",
            "--label",
            "omk-backup.kind=postgres",
            "--label",
            &format!("omk-backup.job=steal-{u}"),
            "--label",
            &format!(
                "omk-backup.password_file={}",
                env.path("host-secret").display()
            ),
            "-e",
            "POSTGRES_PASSWORD=pw",
        ],
        "OMK_TEST_IMAGE_POSTGRES",
    );
    let grab = Container::run(
        "grab",
        &[
            "--label",
            "omk-backup.enable=true",
            "--label",
            "omk-backup.kind=files",
            "--label",
            &format!("omk-backup.job=grab-{u}"),
            "--label",
            "omk-backup.paths=/etc",
        ],
        "OMK_TEST_IMAGE_SQLITE",
    );
    let twin = |n: &str| {
        Container::run(
            n,
            &[
                "--label",
                "omk-backup.enable=true",
                "--label",
                "omk-backup.kind=sqlite",
                "--label",
                "omk-backup.database=/data/app.db",
                "--label",
                &format!("omk-backup.job=twin-{u}"),
            ],
            "OMK_TEST_IMAGE_SQLITE",
        )
    };
    let (twin_a, twin_b) = (twin("twina"), twin("twinb"));
    let _good = Container::run(
        "good",
        &[
            "--label",
            "omk-backup.enable=true",
            "--label",
            "omk-backup.kind=files",
            "--label",
            &format!("omk-backup.job=good-{u}"),
            "--label",
            &format!("omk-backup.paths={}", root.join("ok").display()),
        ],
        "OMK_TEST_IMAGE_SQLITE",
    );
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\nlabel_path_roots = [\"{}\"]\n\n[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        proxy(),
        root.display()
    ));
    let b = env.run(&["-vv", "--json", "backup", "--init"]);
    assert_eq!(b.code, 1, "refused labels fail the run: {}", b.all());
    let all = b.all();
    assert!(
        !all.contains(&secret),
        "the host file's content leaked: {all}"
    );
    let twin_job = format!("twin-{u}");
    for (container, label) in [
        (steal.name.as_str(), "omk-backup.password_file"),
        (grab.name.as_str(), "omk-backup.paths"),
        (twin_a.name.as_str(), twin_job.as_str()),
        (twin_b.name.as_str(), twin_job.as_str()),
    ] {
        let problems = b.json()["problems"].to_string();
        assert!(
            problems.contains(container) && problems.contains(label),
            "the refusal names {container} and {label}: {problems}"
        );
    }
    let report = b.json();
    let jobs = report["jobs"].as_array().unwrap();
    let status_of = |name: &str| {
        jobs.iter()
            .find(|j| j["job"] == name)
            .map(|j| j["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status_of("files1").as_deref(), Some("success"), "{report}");
    assert_eq!(
        status_of(&format!("good-{u}")).as_deref(),
        Some("success"),
        "{report}"
    );
    for refused in [
        format!("steal-{u}"),
        format!("grab-{u}"),
        format!("twin-{u}"),
    ] {
        assert_eq!(
            status_of(&refused),
            None,
            "{refused} must not run: {report}"
        );
        assert_eq!(
            env.sql(&format!(
                "SELECT count(*) FROM snapshots WHERE job = '{refused}'"
            )),
            "0"
        );
    }
    assert!(
        report["problems"].as_array().unwrap().len() >= 3,
        "{report}"
    );
    // The catalog and status say so too; the secret is nowhere.
    let cat = env.catalog_bytes();
    assert!(!cat.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let st = env.run(&["--json", "status"]).ok().json();
    let problems = st["discovery_problems"].to_string();
    assert!(
        problems.contains(&steal.name) && problems.contains("password_file"),
        "{st}"
    );
    // Without --json the refusals are said on stderr, once each.
    let t = env.run(&["backup"]);
    assert_eq!(t.code, 1, "{}", t.all());
    assert_eq!(
        t.stderr
            .lines()
            .filter(|l| l.contains(steal.name.as_str()))
            .count(),
        1,
        "{}",
        t.stderr
    );
    assert!(
        t.stdout.contains("FAILED") && t.stdout.contains("omk-backup.password_file"),
        "{}",
        t.stdout
    );
    // A run of named jobs is about those jobs only.
    env.run(&["backup", "files1"]).ok();
}
