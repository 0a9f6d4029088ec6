//! Label discovery: labelled containers become jobs (config wins on a clash, and says
//! so); an unreachable Docker fails only the jobs that need it.

use crate::dock::*;
use crate::util::*;

#[test]
fn labelled_containers_become_jobs_and_config_wins_a_clash() {
    let (_, restic) = restics().pop().unwrap();
    let u = unique();
    let job = format!("lab-{}", &u[u.len() - 8..]);
    let clash = format!("clash-{}", &u[u.len() - 8..]);
    let job_label = format!("omk-backup.job={job}");
    let clash_label = format!("omk-backup.job={clash}");
    let labelled = Container::run(
        "lab",
        &[
            "--label",
            "omk-backup.enable=true",
            "--label",
            "omk-backup.kind=sqlite",
            "--label",
            "omk-backup.database=/data/app.db",
            "--label",
            &job_label,
        ],
        "OMK_TEST_IMAGE_SQLITE",
    );
    labelled.wait_for(60, "test -s /data/app.db");
    let other = Container::run(
        "clash",
        &[
            "--label",
            "omk-backup.enable=true",
            "--label",
            "omk-backup.kind=sqlite",
            "--label",
            "omk-backup.database=/data/app.db",
            "--label",
            &clash_label,
        ],
        "OMK_TEST_IMAGE_SQLITE",
    );
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\n\n[metrics]\ntextfile = \"omk.prom\"\n\n[jobs.{clash}]\nkind = \"files\"\npaths = [\"data\"]\n",
        proxy()
    ));
    let r = env.run(&["--json", "config", "check"]).ok();
    let jobs = r.json()["jobs"].as_array().unwrap().clone();
    let mine = jobs
        .iter()
        .find(|j| j["job"] == job.as_str())
        .unwrap_or_else(|| panic!("{job} discovered: {jobs:?}"));
    assert_eq!(mine["kind"], "sqlite");
    assert!(
        mine["source"].as_str().unwrap().contains(&labelled.name),
        "{mine}"
    );
    let configured = jobs.iter().find(|j| j["job"] == clash.as_str()).unwrap();
    assert_eq!(configured["kind"], "files", "the config wins");
    let r = env.run(&["config", "check"]).ok();
    assert!(
        r.stderr.contains(&format!(
            "job `{clash}` from the labels of container {}",
            other.name
        )) && r.stderr.contains("already defines it"),
        "{}",
        r.stderr
    );
    let b = env.run(&["--json", "backup", "--init", &job]);
    assert_eq!(b.code, 0, "{}", b.all());
    assert_eq!(
        env.sql(&format!("SELECT count(*) FROM dumps WHERE job = '{job}'")),
        "1"
    );
    // status knows the discovered job too.
    let st = env.run(&["--json", "status"]).ok().json();
    let row = st["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == job.as_str())
        .unwrap_or_else(|| panic!("{job} in status: {st}"))
        .clone();
    assert!(row["last_backup"].is_string(), "{row}");
    // The metrics textfile (refreshed by the CLI backup), restore-test and the monthly
    // report know it too.
    let m = std::fs::read_to_string(env.path("omk.prom")).expect("metrics after a backup");
    assert!(
        m.contains(&format!("omk_backup_last_status{{job=\"{job}\"}} 0")),
        "{m}"
    );
    let t = env.run(&["--json", "restore-test", &job]);
    assert_eq!(t.code, 0, "{}", t.all());
    let tj = t.json();
    assert_eq!(tj["tests"][0]["job"], job.as_str(), "{tj}");
    assert_eq!(tj["tests"][0]["passed"], true, "{tj}");
    let m = std::fs::read_to_string(env.path("omk.prom")).unwrap();
    assert!(
        m.contains(&format!(
            "omk_backup_last_verified_restore_timestamp_seconds{{job=\"{job}\"}} "
        )),
        "{m}"
    );
    let rep = env.run(&["report", "--format", "json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&rep.stdout).expect("report JSON");
    let month = doc["report"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == job.as_str())
        .unwrap_or_else(|| panic!("{job} in the report: {doc}"))
        .clone();
    assert_eq!(month["restore_tests_passed"], 1, "{month}");
}

#[test]
fn unreachable_docker_fails_only_the_jobs_that_need_it() {
    let (_, restic) = restics().pop().unwrap();
    let env = Env::new(&restic);
    env.write_config(
        "[docker]\nhost = \"tcp://127.0.0.1:1\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n[jobs.db]\nkind = \"postgres\"\ncontainer = \"nowhere\"\n",
    );
    env.run(&["config", "check"]).ok();
    let r = env.run(&["--json", "backup", "--init"]).code(1);
    let j = r.json();
    let by = |n: &str| {
        j["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["job"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("files1")["status"], "success", "{j}");
    assert_eq!(by("db")["status"], "failed");
    let e = by("db")["error"].as_str().unwrap().to_string();
    assert!(
        e.contains("cannot reach Docker at tcp://127.0.0.1:1"),
        "{e}"
    );
    // Said once, in plain words: the hint once, no transport chain, however many jobs.
    let h = env.run(&["backup"]).code(1);
    assert!(!h.stderr.contains("hyper"), "{}", h.stderr);
    assert_eq!(
        h.stderr.matches("check that dockerd").count(),
        1,
        "{}",
        h.stderr
    );
    assert!(h.stderr.contains("connection refused"), "{}", h.stderr);
}
