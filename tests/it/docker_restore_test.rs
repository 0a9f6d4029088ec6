//! Restore tests of database jobs in scratch containers, against a real dockerd through
//! the least-privilege haproxy proxy: a passing test per engine (with the stable
//! `--json` fields), the scratch container's isolation as Docker reports it, a cut dump
//! failing, leftovers of a killed run removed at the next start, passwords kept out of
//! output and argv, and `restore --into-container` on the plain socket.

use crate::dock::*;
use crate::util::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn restic18() -> std::path::PathBuf {
    restics()
        .into_iter()
        .find(|(v, _)| *v == "0.18")
        .map(|(_, p)| p)
        .unwrap()
}

fn test_of<'a>(report: &'a serde_json::Value, job: &str) -> &'a serde_json::Value {
    report["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("no tests in {report}"))
        .iter()
        .find(|t| t["job"] == job)
        .unwrap_or_else(|| panic!("no test of {job} in {report}"))
}

fn check<'a>(test: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    test["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {test}"))
}

/// Our scratch containers (by label), as `docker ps -a` names.
fn scratch_containers() -> Vec<String> {
    docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "label=omk-backup.scratch=1",
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(str::to_string)
    .filter(|l| !l.is_empty())
    .collect()
}

/// Our scratch containers whose name starts with `prefix` (tests run in parallel: each
/// uses its own job names).
fn ours(prefix: &str) -> Vec<String> {
    scratch_containers()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// While `f` runs, catch the first scratch container and record its inspect JSON and
/// the argv of every process in it.
fn watching<T>(
    prefix: &'static str,
    f: impl FnOnce() -> T,
) -> (T, Option<serde_json::Value>, String) {
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<(Option<serde_json::Value>, String)>> = Arc::default();
    let (s2, seen2) = (stop.clone(), seen.clone());
    let watcher = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            for name in ours(prefix) {
                let o = docker(&["inspect", &name]);
                if o.status.success() {
                    let mut g = seen2.lock().unwrap();
                    if g.0.is_none() {
                        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                        g.0 = Some(v[0].clone());
                    }
                    let ps = docker(&[
                        "exec",
                        &name,
                        "sh",
                        "-c",
                        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done",
                    ]);
                    g.1.push_str(&String::from_utf8_lossy(&ps.stdout));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let out = f();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let g = seen.lock().unwrap();
    (out, g.0.clone(), g.1.clone())
}

#[test]
fn restore_tests_per_engine_in_isolated_scratch_containers() {
    let restic = restic18();
    let pgpw = format!("pgpw-{}", unique());
    let mariapw = format!("mariapw-{}", unique());
    let pg = postgres(&pgpw);
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g; CREATE TABLE empty (x int);\"");
    let maria = mariadb(&mariapw);
    maria.sh("MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb -uroot -e \"CREATE DATABASE shop; USE shop; CREATE TABLE shop.orders (id int primary key, note varchar(40)); INSERT INTO shop.orders SELECT seq, CONCAT('o', seq) FROM seq_1_to_3000;\"");
    let lite = sqlite();
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[restore_test]\nmemory_mb = 1024\ncpus = 1.5\npids = 300\n\n[jobs.epg]\nkind = \"postgres\"\ncontainer = \"{pg}\"\nprobes = [{{ sql = \"SELECT count(*) FROM items\", expect = \"5000\", database = \"app\" }}]\n\n[jobs.eone]\nkind = \"postgres\"\ncontainer = \"{pg}\"\ndatabase = \"app\"\nprobes = [{{ sql = \"SELECT max(id) FROM items\", expect = \"4999\" }}]\n\n[jobs.emaria]\nkind = \"mariadb\"\ncontainer = \"{}\"\nprobes = [{{ sql = \"SELECT note FROM orders WHERE id = 7\", expect = \"o7\", database = \"shop\" }}]\n\n[jobs.elite]\nkind = \"sqlite\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\nprobes = [{{ sql = \"SELECT name FROM items WHERE id = 1\", expect = \"alpha\" }}]\n",
        proxy(),
        maria.name,
        lite.name,
        pg = pg.name
    ));
    env.run(&["--json", "backup", "--init"]).ok();

    let (r, inspect, argv) = watching("omk-restore-e", || {
        env.run(&["--json", "restore-test", "epg", "eone", "emaria", "elite"])
    });
    // eone's probe expects the wrong answer: that test fails, the others pass.
    let r = r.code(1);
    let report = r.json();
    let one = test_of(&report, "eone");
    assert_eq!(one["passed"], false, "{one}");
    assert_eq!(check(one, "fingerprint")["passed"], true, "{one}");
    let p = check(one, "probes");
    assert_eq!(p["passed"], false);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("got \"5000\", expected \"4999\""),
        "{p}"
    );
    for job in ["epg", "emaria", "elite"] {
        let t = test_of(&report, job);
        assert_eq!(t["passed"], true, "{job}: {t}");
        assert!(t["rto_seconds"].as_f64().unwrap() > 0.0, "{t}");
        for name in [
            "scratch-container",
            "engine-ready",
            "dump-digest",
            "restore",
            "fingerprint",
        ] {
            let c = check(t, name);
            assert_eq!(c["passed"], true, "{job}/{name}: {c}");
            assert!(c["detail"].is_string());
        }
    }
    assert!(
        check(test_of(&report, "epg"), "fingerprint")["detail"]
            .as_str()
            .unwrap()
            .contains("5000 rows"),
        "{report}"
    );
    assert!(
        check(test_of(&report, "emaria"), "fingerprint")["detail"]
            .as_str()
            .unwrap()
            .contains("3000 rows"),
        "{report}"
    );
    // Recorded in the catalog like the files tests.
    assert_eq!(
        env.sql("SELECT count(*) FROM restore_tests WHERE passed = 1 AND rto_ms > 0 AND rpo_seconds >= 0"),
        "3"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM restore_tests WHERE passed = 0 AND job = 'eone' AND rto_ms IS NULL"),
        "1"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM steps WHERE kind = 'restore-test' AND status = 'success'"),
        "3"
    );
    // Always removed.
    assert!(
        ours("omk-restore-e").is_empty(),
        "{:?}",
        ours("omk-restore-e")
    );

    // Isolation as Docker reports it.
    let i = inspect.expect("a scratch container was seen while the tests ran");
    let name = i["Name"].as_str().unwrap();
    assert!(name.starts_with("/omk-restore-"), "{name}");
    let hc = &i["HostConfig"];
    assert_eq!(hc["NetworkMode"], "none", "{hc}");
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(
        hc["Memory"].as_i64().unwrap(),
        1 << 30,
        "[restore_test] memory_mb"
    );
    assert_eq!(hc["NanoCpus"].as_i64().unwrap(), 1_500_000_000);
    assert_eq!(hc["PidsLimit"].as_i64().unwrap(), 300);
    assert_eq!(hc["Privileged"], false);
    assert!(
        hc["Binds"].is_null() || hc["Binds"] == serde_json::json!([]),
        "{hc}"
    );
    assert!(
        hc["PortBindings"].is_null() || hc["PortBindings"] == serde_json::json!({}),
        "{hc}"
    );
    for m in i["Mounts"].as_array().unwrap() {
        assert_ne!(m["Type"], "bind", "{m}");
        assert_ne!(m["Type"], "volume", "no anonymous volume: {m}");
    }
    assert_eq!(i["Config"]["Labels"]["omk-backup.scratch"], "1");
    assert!(i["Config"]["Labels"]["omk-backup.run"].is_string());

    // Passwords: never in the output, the catalog, or any argv in the scratch container.
    for pw in [&pgpw, &mariapw] {
        assert!(!r.all().contains(pw.as_str()));
        assert!(!String::from_utf8_lossy(&env.catalog_bytes()).contains(pw.as_str()));
    }
    let scratch_pw: Vec<&str> = i["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .filter_map(|e| {
            e.strip_prefix("POSTGRES_PASSWORD=")
                .or_else(|| e.strip_prefix("MARIADB_ROOT_PASSWORD="))
        })
        .collect();
    for pw in &scratch_pw {
        assert!(pw.len() >= 32, "a random password");
        assert!(!r.all().contains(pw));
        assert!(!argv.contains(pw), "password in argv: {argv}");
    }
    assert!(!argv.is_empty());
}

/// `restic backup --stdin` of `data` as `pg.sql`, tagged like omk-backup's; returns the
/// snapshot id.
fn backup_bytes_as(env: &Env, data: &[u8], run: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(&env.restic)
        .args([
            "backup",
            "--json",
            "--stdin",
            "--stdin-filename",
            "cutpg.sql",
            "--tag",
            "omk:job=cutpg",
            "--tag",
            &format!("omk:run={run}"),
        ])
        .env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD_FILE", env.path("password"))
        .env("RESTIC_CACHE_DIR", env.path(".cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap();
    summary["snapshot_id"].as_str().unwrap().to_string()
}

/// Register `snap` in the catalog as the job's newest good snapshot, with this digest.
fn register(env: &Env, snap: &str, run: &str, sha: &str, bytes: usize, fp: &str) {
    env.sql(&format!(
        "INSERT INTO snapshots (snapshot_id, job, run_id, time, bytes, state) VALUES ('{snap}', 'cutpg', '{run}', CAST(strftime('%s','now') AS INTEGER) * 1000 + 1, {bytes}, 'good'); \
         INSERT INTO dumps (snapshot_id, job, engine, filename, sha256, bytes, fingerprint) VALUES ('{snap}', 'cutpg', 'postgres', 'cutpg.sql', '{sha}', {bytes}, '{}')",
        fp.replace('\'', "''")
    ));
}

/// Back up `data` as cutpg's newest good dump, recorded with the digest and fingerprint
/// of exactly these bytes (what omk-backup would record if the dump tool exited 0
/// early), and restore-test it: the snapshot and the test. The digest check passes.
fn restore_test_as_recorded(env: &Env, data: &[u8], run: &str) -> (String, serde_json::Value) {
    use sha2::{Digest, Sha256};
    let mut counter = omk_backup::fingerprint::Counter::new(omk_backup::domain::JobKind::Postgres);
    counter.feed(data);
    let fp = serde_json::to_string(&counter.finish()).unwrap();
    let snap = backup_bytes_as(env, data, run);
    let sha = hex::encode(Sha256::digest(data));
    register(env, &snap, run, &sha, data.len(), &fp);
    let report = env.run(&["--json", "restore-test", "cutpg"]).code(1).json();
    let t = test_of(&report, "cutpg").clone();
    assert_eq!(check(&t, "dump-digest")["passed"], true, "{t}");
    (snap, t)
}

#[test]
fn cut_dumps_fail_and_scratch_containers_never_stay() {
    let restic = restic18();
    let pw = format!("pgpw-{}", unique());
    let pg = postgres(&pw);
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g;\"");
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.cutpg]\nkind = \"postgres\"\ncontainer = \"{}\"\n",
        proxy(),
        pg.name
    ));
    env.run(&["--json", "backup", "--init"]).ok();
    let full_snap = env.sql("SELECT snapshot_id FROM snapshots WHERE job = 'cutpg'");
    let run = env.sql("SELECT run_id FROM snapshots WHERE job = 'cutpg'");
    let row = env.sql(&format!(
        "SELECT sha256 || '|' || bytes || '|' || fingerprint FROM dumps WHERE snapshot_id = '{full_snap}'"
    ));
    let mut parts = row.splitn(3, '|');
    let (sha, bytes, fp) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().parse::<usize>().unwrap(),
        parts.next().unwrap().to_string(),
    );
    let full = env.restic_cmd(&["dump", &full_snap, "/cutpg.sql"]).ok();
    assert_eq!(full.stdout.len(), bytes);
    // The first half, cut at a line end (the worst case: every line parses).
    let raw = full.stdout.as_bytes();
    let cut = raw[..raw.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let half = &raw[..cut];

    // 1. The repository holds half of what the catalog says was dumped (storage lost
    //    or swapped data): the digest check fails before anything is loaded.
    let snap_a = backup_bytes_as(&env, half, &run);
    register(&env, &snap_a, &run, &sha, bytes, &fp);
    let a = env.run(&["--json", "restore-test", "cutpg"]).code(1).json();
    let t = test_of(&a, "cutpg");
    assert_eq!(t["passed"], false);
    assert!(t["rto_seconds"].is_null());
    let c = check(t, "dump-digest");
    assert_eq!(c["passed"], false, "{t}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("has {cut} bytes, but {bytes} were recorded")),
        "{c}"
    );

    // 2. The dump itself was cut while its digest and fingerprint were taken over what
    //    streamed (what omk-backup would record if a dump tool exited 0 half-way): digest
    //    and row counts agree with the half, but the dump tool's end marker is missing.
    let (snap_b, t) = restore_test_as_recorded(&env, half, &run);
    assert_eq!(t["passed"], false, "{t}");
    let c = check(&t, "dump-complete");
    assert_eq!(c["passed"], false, "{t}");
    assert!(c["detail"].as_str().unwrap().contains("cut short"), "{c}");
    assert!(
        ours("omk-restore-cutpg-").is_empty(),
        "{:?}",
        ours("omk-restore-cutpg-")
    );

    // 2b. A cluster dump cut between two databases: it ends with pg_dump's marker for
    //     the last whole database (`app`), not with pg_dumpall's cluster marker, and
    //     its digest and rows agree with what streamed. Regression: the check took
    //     either marker as the end of a cluster dump.
    let text = std::str::from_utf8(raw).unwrap();
    let app = text
        .find("\\connect app")
        .expect("the cluster dump holds `app`");
    let marker = "-- PostgreSQL database dump complete\n--\n";
    let after = app + text[app..].find(marker).unwrap() + marker.len();
    let after = after + text[after..].find("\\unrestrict").unwrap();
    let between = &raw[..after + text[after..].find('\n').unwrap() + 1];
    assert!(
        text[between.len()..].contains("\\connect postgres"),
        "a database follows"
    );
    let (snap_c, t) = restore_test_as_recorded(&env, between, &run);
    let c = check(&t, "dump-complete");
    assert_eq!(c["passed"], false, "{t}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("-- PostgreSQL database cluster dump complete"),
        "{c}"
    );

    // Back to the real dump for the rest.
    env.sql(&format!(
        "DELETE FROM dumps WHERE snapshot_id IN ('{snap_a}', '{snap_b}', '{snap_c}'); DELETE FROM snapshots WHERE snapshot_id IN ('{snap_a}', '{snap_b}', '{snap_c}')"
    ));

    // 3. SIGTERM mid-test: the scratch container goes with the process.
    let wait_for_scratch = |child: &mut std::process::Child| {
        wait_until(120, "a scratch container", || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "omk-backup ended early"
            );
            !ours("omk-restore-cutpg-").is_empty()
        });
    };
    let mut child = env
        .cmd(&["--json", "restore-test", "cutpg"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_scratch(&mut child);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = Run::from_output(child.wait_with_output().unwrap());
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.all().contains("SIGTERM"), "{}", out.all());
    assert!(
        ours("omk-restore-cutpg-").is_empty(),
        "{:?}",
        ours("omk-restore-cutpg-")
    );

    // 4. SIGKILL mid-test leaves the container; the next locking command removes it,
    //    but not a labelled container of a run this catalog does not know.
    let foreign = Container::run(
        "foreign",
        &[
            "--label",
            "omk-backup.scratch=1",
            "--label",
            "omk-backup.run=19990101T000000Z-0000",
        ],
        "OMK_TEST_IMAGE_SQLITE",
    );
    let mut child = env
        .cmd(&["--json", "restore-test", "cutpg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(120, "our scratch container", || {
        scratch_containers()
            .iter()
            .any(|n| n.starts_with("omk-restore-cutpg-"))
    });
    kill9(child.id());
    let _ = child.wait();
    let left: Vec<String> = scratch_containers()
        .into_iter()
        .filter(|n| n.starts_with("omk-restore-cutpg-"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let next = env.run(&["-v", "backup", "cutpg"]).ok();
    assert!(
        next.stderr
            .contains(&format!("removing scratch container {}", left[0])),
        "{}",
        next.all()
    );
    assert!(
        ours("omk-restore-cutpg-").is_empty(),
        "{:?}",
        ours("omk-restore-cutpg-")
    );
    assert!(
        scratch_containers().contains(&foreign.name),
        "a foreign run's container stays"
    );
    drop(foreign);

    // And a normal run passes again, with the real dump.
    let ok = env.run(&["--json", "restore-test", "cutpg"]).ok().json();
    assert_eq!(test_of(&ok, "cutpg")["passed"], true, "{ok}");
    assert!(!env.run(&["snapshots"]).all().contains(&pw));
}

#[test]
fn restore_into_a_running_container_needs_confirmation_and_the_socket() {
    let restic = restic18();
    let pw = format!("pgpw-{}", unique());
    let pg = postgres(&pw);
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 7000) g;\"");
    let env = Env::new(&restic);
    let config = |host: &str| {
        format!(
            "[docker]\nhost = \"{host}\"\ndiscover = false\n\n[jobs.pg]\nkind = \"postgres\"\ncontainer = \"{}\"\n",
            pg.name
        )
    };
    env.write_config(&config(&proxy()));
    env.run(&["--json", "backup", "--init"]).ok();
    // The disaster: a fresh container of the same image, with its own password.
    let fresh = postgres(&format!("fresh-{}", unique()));

    // No confirmation: a usage error, nothing touched.
    let r = env
        .run(&[
            "restore",
            "latest",
            "--job",
            "pg",
            "--into-container",
            &fresh.name,
        ])
        .code(2);
    assert!(
        r.stderr.contains("--yes-overwrite-live-database"),
        "{}",
        r.all()
    );
    let q = "psql -U postgres -d app -tAc \"SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM items\"";
    assert!(
        fresh.exec(&["sh", "-c", q]).status.code() != Some(0),
        "no app database yet"
    );

    // Through the least-privilege proxy: refused, and the message names the rule.
    let args = [
        "--json",
        "restore",
        "latest",
        "--job",
        "pg",
        "--into-container",
        &fresh.name,
        "--yes-overwrite-live-database",
    ];
    let r = env.run(&args).code(2);
    assert!(r.all().contains("403"), "{}", r.all());
    assert!(
        r.all()
            .contains(&format!("PUT /containers/{}/archive", fresh.name)),
        "{}",
        r.all()
    );

    // On the plain socket: loaded, checked, the drop file removed.
    env.write_config(&config(&need("OMK_TEST_DOCKER_SOCKET")));
    let r = env.run(&args).ok();
    let rep = r.json();
    assert_eq!(rep["passed"], true, "{rep}");
    for name in ["dump-digest", "dump-complete", "restore", "fingerprint"] {
        let c = rep["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {rep}"));
        assert_eq!(c["passed"], true, "{c}");
    }
    assert_eq!(fresh.sh(q), pg.sh(q));
    assert_eq!(fresh.sh("ls /tmp | grep -c omk-restore || true"), "0");
    assert!(!r.all().contains(&pw));
}

/// A proxy's 403 is a set-up problem: exit 2 (not 1), the refused call named once, with
/// the rule that allows it for this restore; nothing reaches the container.
#[test]
fn a_proxy_refusal_exits_2_with_the_rule_to_allow() {
    let restic = restic18();
    let db = sqlite();
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.lite403]\nkind = \"sqlite\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\n",
        proxy(),
        db.name
    ));
    env.run(&["backup", "--init"]).ok();
    let args = [
        "restore",
        "latest",
        "--job",
        "lite403",
        "--into-container",
        &db.name,
        "--yes-overwrite-live-database",
    ];
    let r = env.run(&args).code(2);
    let all = r.all();
    let call = format!("PUT /containers/{}/archive", db.name);
    assert!(all.contains(&format!("refused {call} (HTTP 403)")), "{all}");
    assert_eq!(all.matches("(HTTP 403)").count(), 1, "said once: {all}");
    assert!(
        all.contains(&format!("allow `{call}` temporarily")),
        "{all}"
    );
    assert!(all.contains("docs/runbook-restore.md"), "{all}");
    // The JSON error carries the same exit code.
    let mut json_args = vec!["--json"];
    json_args.extend(args);
    let j = env.run(&json_args).code(2).json();
    assert_eq!(j["exit_code"], 2, "{j}");
    // Nothing was delivered or loaded.
    assert_eq!(db.sh("ls /tmp | grep -c omk-restore || true"), "0");
    assert_eq!(
        db.sh("test -e /data/app.db.restored && echo yes || echo no"),
        "no"
    );
}

#[test]
fn restore_needs_a_target_or_a_container() {
    let restic = restic18();
    let env = Env::new(&restic);
    let r = env.run(&["restore", "latest"]).code(2);
    assert!(r.stderr.contains("--target"), "{}", r.all());
    let r = env
        .run(&[
            "restore",
            "latest",
            "--yes-overwrite-live-database",
            "--target",
            "x",
        ])
        .code(2);
    assert!(r.stderr.contains("--into-container"), "{}", r.all());
    // A files job cannot go into a container.
    env.init();
    let r = env
        .run(&[
            "restore",
            "latest",
            "--job",
            "files1",
            "--into-container",
            "whatever",
            "--yes-overwrite-live-database",
        ])
        .code(2);
    assert!(r.stderr.contains("--target DIR"), "{}", r.all());
}

#[test]
fn restore_mariadb_into_a_fresh_container_on_the_socket() {
    let restic = restic18();
    let pw = format!("mariapw-{}", unique());
    let src = mariadb(&pw);
    src.sh("MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb -uroot -e \"CREATE DATABASE shop; USE shop; CREATE TABLE orders (id int primary key, note varchar(40)); INSERT INTO orders SELECT seq, CONCAT('o', seq) FROM seq_1_to_2500;\"");
    let env = Env::new(&restic);
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.shop]\nkind = \"mariadb\"\ncontainer = \"{}\"\n",
        need("OMK_TEST_DOCKER_SOCKET"),
        src.name
    ));
    env.run(&["--json", "backup", "--init"]).ok();
    // The plain path first: the dump file restored into a folder, as recorded.
    let target = env.path("dump-out");
    let out = env
        .run(&[
            "--json",
            "restore",
            "latest",
            "--job",
            "shop",
            "--target",
            target.to_str().unwrap(),
        ])
        .ok()
        .json();
    let file = std::path::PathBuf::from(out["restored"][0].as_str().unwrap());
    assert!(file.starts_with(&target), "{out}");
    let dump = std::fs::read_to_string(&file).unwrap();
    assert!(
        dump.contains("CREATE TABLE `orders`"),
        "not the dump: {}",
        &dump[..dump.len().min(300)]
    );
    assert!(
        !dump.contains(&pw),
        "the dump restored to disk holds no root password"
    );
    let fresh_pw = format!("fresh-{}", unique());
    let fresh = mariadb(&fresh_pw);
    let r = env
        .run(&[
            "--json",
            "restore",
            "latest",
            "--job",
            "shop",
            "--into-container",
            &fresh.name,
            "--yes-overwrite-live-database",
        ])
        .ok();
    let rep = r.json();
    assert_eq!(rep["passed"], true, "{rep}");
    let q = "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb -uroot -N -e \"SELECT COUNT(*), MD5(GROUP_CONCAT(note ORDER BY id)) FROM shop.orders\"";
    assert_eq!(fresh.sh(q), src.sh(q));
    for secret in [&pw, &fresh_pw] {
        assert!(!r.all().contains(secret.as_str()));
    }
}
