//! Several Docker engines from one omk-backup (`[engines.NAME]`, `engine = "NAME"`), the
//! restore lab (`[restore_test] docker`) behind a production proxy that refuses every
//! create, and the cross-host restore `--into-container NAME --engine B`. The second
//! engine is the harness's second dockerd (scripts/env/20-dockerd2.sh), behind its own
//! haproxy; the lab-mode production proxy fronts the first engine.

use crate::dock::*;
use crate::dock2::*;
use crate::util::*;
use std::process::Command;

const ITEMS: &str = "psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, N) g;\"";
const COUNT: &str = "psql -U postgres -d app -tAc \"SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM items\"";

fn items(n: u32) -> String {
    ITEMS.replace(" N)", &format!(" {n})"))
}

fn ref_args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn job_of<'a>(report: &'a serde_json::Value, key: &str, job: &str) -> &'a serde_json::Value {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .iter()
        .find(|j| j["job"] == job)
        .unwrap_or_else(|| panic!("no job {job} in {report}"))
}

#[test]
fn a_postgres_job_on_each_engine_is_backed_up_and_restore_tested_in_one_run() {
    let (_, restic) = restics().pop().unwrap();
    let one = postgres(&format!("pw1-{}", unique()));
    one.sh(&items(3000));
    let two = postgres2(&format!("pw2-{}", unique()));
    two.sh(&items(4000));
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[engines.two]\ndocker = \"{}\"\n\n[metrics]\ntextfile = \"omk.prom\"\n\n\
         [jobs.pg-one]\nkind = \"postgres\"\ncontainer = \"{}\"\n\n\
         [jobs.pg-two]\nkind = \"postgres\"\nengine = \"two\"\ncontainer = \"{}\"\nprobes = [{{ sql = \"SELECT count(*) FROM items\", expect = \"4000\", database = \"app\" }}]\n",
        proxy(),
        engine2_proxy(),
        one.name,
        two.name
    ));
    let b = env.run(&["--json", "backup", "--init"]).ok().json();
    for j in ["pg-one", "pg-two"] {
        assert_eq!(job_of(&b, "jobs", j)["status"], "success", "{b}");
    }
    let t = env.run(&["--json", "restore-test"]).ok().json();
    for j in ["pg-one", "pg-two"] {
        let test = job_of(&t, "tests", j);
        assert_eq!(test["passed"], true, "{test}");
    }
    // pg-two's probe ran on the restored copy of engine two's database.
    let probes = job_of(&t, "tests", "pg-two")["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "probes")
        .cloned()
        .unwrap();
    assert_eq!(probes["passed"], true, "{probes}");
    // status, metrics and the report name each job's engine.
    let st = env.run(&["--json", "status"]).ok().json();
    assert_eq!(job_of(&st, "jobs", "pg-one")["engine"], "local");
    assert_eq!(job_of(&st, "jobs", "pg-two")["engine"], "two");
    let text = env.run(&["status"]).ok().stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with("pg-two ") && l.contains(" two ")),
        "{text}"
    );
    let prom = std::fs::read_to_string(env.path("omk.prom")).unwrap();
    assert!(
        prom.contains("omk_backup_job_info{job=\"pg-two\",kind=\"postgres\",engine=\"two\"} 1"),
        "{prom}"
    );
    let month = chrono_month();
    let rep = env
        .run(&["--json", "report", "--month", &month, "--format", "json"])
        .ok();
    assert!(
        rep.stdout.contains("\"engine\":\"two\"") || rep.stdout.contains("\"engine\": \"two\""),
        "{}",
        rep.all()
    );
    // One rule set per engine, each naming only its own database container.
    let rules = env
        .run(&["proxy-rules", "--format", "cetusguard"])
        .ok()
        .stdout;
    let (local, second) = rules
        .split_once("===== engine `two`")
        .unwrap_or_else(|| panic!("no rule set for engine two: {rules}"));
    assert!(local.contains("===== engine `local`"), "{rules}");
    assert!(
        local.contains(&one.name) && !local.contains(&two.name),
        "{rules}"
    );
    assert!(
        second.contains(&two.name) && !second.contains(&one.name),
        "{rules}"
    );
    // No scratch container left on either engine.
    for out in [
        docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            "label=omk-backup.scratch=1",
            "--filter",
            "name=omk-restore-pg-",
        ]),
        docker2_ok(&[
            "ps",
            "-aq",
            "--filter",
            "label=omk-backup.scratch=1",
            "--filter",
            "name=omk-restore-pg-",
        ]),
    ] {
        assert!(out.is_empty(), "scratch containers left: {out}");
    }
}

/// This month as YYYY-MM (UTC), from the system clock.
fn chrono_month() -> String {
    let o = Command::new("date")
        .args(["-u", "+%Y-%m"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn discovery_runs_on_every_engine_and_a_name_claimed_on_two_is_refused() {
    let (_, restic) = restics().pop().unwrap();
    let u = unique();
    let tail = &u[u.len() - 8..];
    let (a, b, dup) = (
        format!("la-{tail}"),
        format!("lb-{tail}"),
        format!("dup-{tail}"),
    );
    let labels = |job: &str| {
        vec![
            "--label".to_string(),
            "omk-backup.enable=true".into(),
            "--label".into(),
            "omk-backup.kind=sqlite".into(),
            "--label".into(),
            "omk-backup.database=/data/app.db".into(),
            "--label".into(),
            format!("omk-backup.job={job}"),
        ]
    };
    let la = labels(&a);
    let lb = labels(&b);
    let ld = labels(&dup);
    let on1 = Container::run("disc1", &ref_args(&la), "OMK_TEST_IMAGE_SQLITE");
    let on2 = Container2::run("disc2", &ref_args(&lb), "OMK_TEST_IMAGE_SQLITE");
    let dup1 = Container::run("dup1", &ref_args(&ld), "OMK_TEST_IMAGE_SQLITE");
    let dup2 = Container2::run("dup2", &ref_args(&ld), "OMK_TEST_IMAGE_SQLITE");
    on1.wait_for(60, "test -s /data/app.db");
    on2.wait_for(60, "test -s /data/app.db");
    let env = Env::new(&restic);
    let base = format!(
        "[docker]\nhost = \"{}\"\n\n[engines.two]\ndocker = \"{}\"\n",
        proxy(),
        engine2_proxy()
    );
    env.write_config(&base);
    let r = env.run(&["--json", "config", "check"]).ok();
    let c = r.json();
    assert_eq!(job_of(&c, "jobs", &a)["engine"], "local", "{c}");
    assert_eq!(job_of(&c, "jobs", &b)["engine"], "two", "{c}");
    assert!(
        c["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["job"] != dup.as_str()),
        "a name claimed on two engines makes no job: {c}"
    );
    let st = env.run(&["status"]).ok();
    let want = format!(
        "job `{dup}` is claimed by the labels of several containers ({} on engine local, {} on engine two)",
        dup1.name, dup2.name
    );
    assert!(st.all().contains(&want), "{}", st.all());
    // A backup of everything fails on the refusal (exit 1) but backs up the others,
    // each on its own engine.
    let bk = env.run(&["--json", "backup", "--init"]).code(1).json();
    for j in [&a, &b] {
        assert_eq!(job_of(&bk, "jobs", j)["status"], "success", "{bk}");
    }
    // The config names the job (with its engine): it wins, the labels are ignored.
    env.write_config(&format!(
        "{base}\n[jobs.{dup}]\nkind = \"sqlite\"\nengine = \"two\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\n",
        dup2.name
    ));
    let r = env.run(&["--json", "config", "check"]).ok();
    assert_eq!(job_of(&r.json(), "jobs", &dup)["engine"], "two");
    let st = env.run(&["status"]).ok();
    assert!(!st.all().contains("claimed by the labels"), "{}", st.all());
    assert!(st.stderr.contains("already defines it"), "{}", st.all());
}

#[test]
fn an_unreachable_engine_fails_only_its_jobs() {
    let (_, restic) = restics().pop().unwrap();
    let app = sqlite();
    let env = Env::new(&restic);
    // A port nothing listens on: engine `gone` is down.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[engines.gone]\ndocker = \"tcp://127.0.0.1:{gone}\"\n\n\
         [jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n\n\
         [jobs.far-db]\nkind = \"postgres\"\nengine = \"gone\"\ncontainer = \"pg-far\"\n",
        proxy(),
        app.name
    ));
    let r = env.run(&["--json", "backup", "--init"]).code(1);
    let rep = r.json();
    assert_eq!(job_of(&rep, "jobs", "files1")["status"], "success", "{rep}");
    let far = job_of(&rep, "jobs", "far-db");
    assert_eq!(far["status"], "failed", "{far}");
    let err = far["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("engine `gone`") && err.contains(&format!("127.0.0.1:{gone}")),
        "{far}"
    );
    assert!(err.contains("[engines.gone] docker"), "{far}");
    // The live engine's container was paused for the copy and is running again.
    assert_eq!(app.status(), "running");
    assert_eq!(
        env.sql("SELECT engine || ':' || state FROM quiesce_journal WHERE job = 'files1'"),
        "local:resumed"
    );
    // The next run still backs up the live engine's job.
    let r = env.run(&["--json", "backup", "files1"]).ok().json();
    assert_eq!(job_of(&r, "jobs", "files1")["status"], "success", "{r}");
    // With label discovery on, the dead engine's discovery failure names it; the live
    // engine's jobs are still listed.
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("discover = false\n", "");
    std::fs::write(env.config_path(), text).unwrap();
    let st = env.run(&["--json", "status"]).ok();
    let problems = st.json()["discovery_problems"].to_string();
    assert!(
        problems.contains("label discovery failed: engine `gone`"),
        "{}",
        st.all()
    );
    assert_eq!(job_of(&st.json(), "jobs", "files1")["engine"], "local");
}

#[test]
fn restore_tests_on_the_lab_engine_need_no_create_on_production() {
    let (_, restic) = restics().pop().unwrap();
    let image = OwnImage::build();
    let id = image.id();
    // The lab must not have it: only our copy is ever removed (by id, made by us).
    let _ = docker2(&["rmi", "-f", &id]);
    assert!(!docker2(&["image", "inspect", &id]).status.success());
    let pw = format!("pwlab-{}", unique());
    let name = format!("omk-it-labpg-{}", unique());
    let env_arg = format!("POSTGRES_PASSWORD={pw}");
    docker_ok(&[
        "run", "-d", "--name", &name, "--label", "omk-it=1", "-e", &env_arg, &image.tag,
    ]);
    let pg = Container { name };
    pg.wait_for(120, "pg_isready -h 127.0.0.1 -U postgres");
    pg.sh(&items(2500));
    let lab_proxy = need("OMK_TEST_DOCKER_LAB_PROXY");
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{lab_proxy}\"\ndiscover = false\n\n[restore_test]\ndocker = \"{}\"\n\n\
         [jobs.labpg]\nkind = \"postgres\"\ncontainer = \"{}\"\n",
        engine2_proxy(),
        pg.name
    ));
    // The production proxy really refuses creates.
    let refused = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!(
            "http://{}/containers/create?name=omk-restore-x",
            lab_proxy.trim_start_matches("tcp://")
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "403");
    env.run(&["--json", "backup", "--init"]).ok();
    let t = env.run(&["--json", "restore-test"]).ok().json();
    let test = job_of(&t, "tests", "labpg");
    assert_eq!(test["passed"], true, "{test}");
    let checks = test["checks"].as_array().unwrap();
    let lab = checks.iter().find(|c| c["name"] == "lab-image").unwrap();
    eprintln!("lab-image: {}", lab["detail"]);
    assert!(
        lab["detail"]
            .as_str()
            .unwrap()
            .contains("copied from engine `local` to the restore lab"),
        "{lab}"
    );
    assert!(
        docker2(&["image", "inspect", &id]).status.success(),
        "the image is on the lab now"
    );
    // The second test finds it there.
    let t = env.run(&["--json", "restore-test"]).ok().json();
    let test = job_of(&t, "tests", "labpg");
    assert_eq!(test["passed"], true, "{test}");
    let lab = test["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lab-image")
        .cloned()
        .unwrap();
    assert!(
        lab["detail"]
            .as_str()
            .unwrap()
            .contains("already on the restore lab"),
        "{lab}"
    );
    // proxy-rules: production gets no create-side rule at all, the lab gets them.
    let rules = env.run(&["proxy-rules", "--format", "haproxy"]).ok().stdout;
    let (prod, lab) = rules
        .split_once("===== the restore lab")
        .unwrap_or_else(|| panic!("no lab rule set: {rules}"));
    assert!(prod.contains("===== engine `local`"), "{rules}");
    for refused in ["/containers/create", "archive", "DELETE", "omk-restore"] {
        let rule_lines: Vec<&str> = prod
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter(|l| l.contains(refused))
            .collect();
        assert!(rule_lines.is_empty(), "{refused}: {rule_lines:?}");
    }
    assert!(prod.contains("/get$'"), "{prod}");
    assert!(
        lab.contains("/containers/create$'") && lab.contains("/images/load$'"),
        "{lab}"
    );
    assert!(!lab.contains(&pg.name), "{lab}");
}

#[test]
fn a_dump_of_host_a_restores_into_a_container_on_engine_b() {
    let (_, restic) = restics().pop().unwrap();
    let pg = postgres(&format!("pwa-{}", unique()));
    pg.sh(&items(3500));
    let want = pg.sh(COUNT);
    let env = Env::new(&restic);
    // Host A backs up (one config), host B restores (another config, same repository,
    // the catalog A's kit would bring).
    let text_a = format!(
        "[repository]\nurl = \"repo\"\npassword_file = \"password\"\nhost = \"host-a\"\n\n[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.pg]\nkind = \"postgres\"\ncontainer = \"{}\"\n",
        proxy(),
        pg.name
    );
    std::fs::write(env.config_path(), text_a).unwrap();
    env.run(&["--json", "backup", "--init"]).ok();
    std::fs::create_dir_all(env.path("b")).unwrap();
    for f in ["catalog.db", "catalog.db-wal"] {
        if env.path(f).exists() {
            std::fs::copy(env.path(f), env.path(&format!("b/{f}"))).unwrap();
        }
    }
    let fresh = postgres2(&format!("pwb-{}", unique()));
    assert!(
        docker2(&["exec", &fresh.name, "sh", "-c", COUNT])
            .status
            .code()
            != Some(0),
        "no app database yet"
    );
    let text_b = format!(
        "[repository]\nurl = \"{}\"\npassword_file = \"{}\"\nhost = \"host-b\"\n\n[docker]\ndiscover = false\n\n[engines.b]\ndocker = \"{}\"\n\n[jobs.pg]\nkind = \"postgres\"\ncontainer = \"{}\"\n",
        env.repo().display(),
        env.path("password").display(),
        engine2_socket(),
        pg.name
    );
    std::fs::write(env.path("b/omk.toml"), text_b).unwrap();
    let args = [
        "--json",
        "restore",
        "latest",
        "--job",
        "pg",
        "--host",
        "host-a",
        "--into-container",
        &fresh.name,
        "--engine",
        "b",
        "--yes-overwrite-live-database",
    ];
    // An engine the config does not name: a usage error naming the engines.
    let mut bad = args.to_vec();
    bad[10] = "nowhere";
    let r = Run::from_output(
        env.cmd(&bad)
            .env("OMK_BACKUP_CONFIG", env.path("b/omk.toml"))
            .output()
            .unwrap(),
    )
    .code(2);
    assert!(
        r.stderr.contains("--engine nowhere") && r.stderr.contains("local, b"),
        "{}",
        r.all()
    );
    let r = Run::from_output(
        env.cmd(&args)
            .env("OMK_BACKUP_CONFIG", env.path("b/omk.toml"))
            .output()
            .unwrap(),
    )
    .ok();
    let rep = r.json();
    assert_eq!(rep["passed"], true, "{rep}");
    assert_eq!(
        fresh.sh(COUNT),
        want,
        "host A's rows are in engine B's database"
    );
}

#[test]
fn a_container_left_paused_on_another_engine_is_resumed_there() {
    let (_, restic) = restics().pop().unwrap();
    let app = Container2::run("paused2", &[], "OMK_TEST_IMAGE_SQLITE");
    app.wait_for(60, "test -s /data/app.db");
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\ndiscover = false\n\n[engines.two]\ndocker = \"{}\"\n\n\
         [jobs.files1]\nkind = \"files\"\nengine = \"two\"\npaths = [\"data\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n",
        engine2_proxy(),
        app.name
    ));
    env.run(&["backup", "--init"]).ok();
    // Killed while the container is paused (as by SIGKILL: no guard runs).
    let r = Run::from_output(
        env.cmd(&["backup"])
            .env("OMK_BACKUP_FAULT", "exit-while-quiesced")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 137, "{}", r.all());
    assert_eq!(
        docker2_ok(&["inspect", "-f", "{{.State.Status}}", &app.name]),
        "paused"
    );
    assert_eq!(
        env.sql("SELECT engine || ':' || state FROM quiesce_journal ORDER BY id DESC LIMIT 1"),
        "two:quiesced"
    );
    // A container of the same name on the local engine is not the one: recovery goes
    // to engine two, where the journal says it was paused (on the local engine it would
    // find another id and refuse).
    let image = need("OMK_TEST_IMAGE_SQLITE");
    docker_ok(&[
        "run", "-d", "--name", &app.name, "--label", "omk-it=1", &image,
    ]);
    let twin = Container {
        name: app.name.clone(),
    };
    let r = env.run(&["--json", "recover"]).ok();
    let rep = r.json();
    let c = &rep["containers"][0];
    assert_eq!(c["action"], "resumed", "{rep}");
    assert_eq!(
        docker2_ok(&["inspect", "-f", "{{.State.Status}}", &app.name]),
        "running"
    );
    assert_eq!(twin.status(), "running");
}
