//! Database dumps through the socket proxy: dump → restic → restore roundtrips per
//! engine (restored into a fresh container of the same image and compared), exec
//! streaming through haproxy, nginx and the plain socket, dump failures, restic dying
//! mid-stream, a proxy refusing exec, and passwords kept out of output and catalog.

use crate::dock::*;
use crate::util::*;
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn restic_by(ver: &str) -> std::path::PathBuf {
    restics()
        .into_iter()
        .find(|(v, _)| *v == ver)
        .map(|(_, p)| p)
        .unwrap()
}

/// `restic dump SNAPSHOT PATH` as raw bytes.
fn restic_dump(env: &Env, snapshot: &str, path: &str) -> Vec<u8> {
    let out = Command::new(&env.restic)
        .args(["dump", snapshot, path])
        .env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD_FILE", env.path("password"))
        .env("RESTIC_CACHE_DIR", env.path(".cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restic dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn job<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {report}"))
}

/// The dump row of a snapshot, with the digest checked against the repository.
fn checked_dump(env: &Env, snapshot: &str, file: &str) -> (Vec<u8>, serde_json::Value) {
    let row = env.sql(&format!(
        "SELECT sha256 || '|' || bytes || '|' || fingerprint FROM dumps WHERE snapshot_id = '{snapshot}'"
    ));
    let mut parts = row.splitn(3, '|');
    let (sha, bytes, fp) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap_or("0").parse::<usize>().unwrap(),
        parts.next().unwrap_or("null").to_string(),
    );
    let data = restic_dump(env, snapshot, file);
    assert_eq!(data.len(), bytes, "dump size in the catalog");
    assert!(bytes > 0);
    assert_eq!(
        hex::encode(Sha256::digest(&data)),
        sha,
        "SHA-256 in the catalog"
    );
    (data, serde_json::from_str(&fp).unwrap())
}

#[test]
fn sqlite_dump_roundtrip_through_haproxy_nginx_and_socket() {
    let restic = restic_by("0.18");
    let db = sqlite();
    // A few MB, so the stream spans many frames and (through nginx) many chunks.
    db.sh("sqlite3 /data/app.db \"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000) INSERT INTO items (name) SELECT 'row-' || x || '-' || hex(randomblob(16)) FROM c\"");
    let env = Env::new(&restic);
    let hosts = [
        proxy(),
        need("OMK_TEST_DOCKER_UPGRADE_PROXY"),
        need("OMK_TEST_DOCKER_SOCKET"),
    ];
    for (i, host) in hosts.iter().enumerate() {
        env.write_config(&format!(
            "[docker]\nhost = \"{host}\"\ndiscover = false\n\n[jobs.lite]\nkind = \"sqlite\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\n",
            db.name
        ));
        let args: &[&str] = if i == 0 {
            &["--json", "backup", "--init"]
        } else {
            &["--json", "backup"]
        };
        let r = env.run(args);
        assert_eq!(r.code, 0, "via {host}: {}", r.all());
        let snap = job(&r.json(), "lite")["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (data, fp) = checked_dump(&env, &snap, "/lite.sql");
        assert_eq!(fp["tables"]["items"], 60003, "via {host}: {fp}");
        assert!(data.len() > 3_000_000, "{}", data.len());
        let fresh = sqlite();
        fresh.pipe(&[], &["sqlite3", "/tmp/restored.db"], &data);
        assert_eq!(
            fresh.sh("sqlite3 /tmp/restored.db 'SELECT count(*), sum(length(name)), max(name) FROM items' && sqlite3 /tmp/restored.db 'SELECT name FROM items ORDER BY id' | md5sum"),
            db.sh("sqlite3 /data/app.db 'SELECT count(*), sum(length(name)), max(name) FROM items' && sqlite3 /data/app.db 'SELECT name FROM items ORDER BY id' | md5sum"),
            "via {host}"
        );
    }
}

#[test]
fn postgres_dump_roundtrip_failures_and_restic_dying() {
    let restic = restic_by("0.14");
    let pw = format!("pgpw-{}", unique());
    let pg = postgres(&pw);
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g;\"");
    let env = Env::new(&restic);
    std::fs::write(env.path("pgpw"), format!("{pw}\n")).unwrap();
    let jobs = |extra: &str| {
        format!(
            "[docker]\nhost = \"{}\"\ndiscover = false\n\n[retention]\nkeep_last = 1\n\n[jobs.pg]\nkind = \"postgres\"\ncontainer = \"{c}\"\npassword_file = \"pgpw\"\n\n[jobs.pgone]\nkind = \"postgres\"\ncontainer = \"{c}\"\ndatabase = \"app\"\n{extra}",
            proxy(),
            c = pg.name
        )
    };
    env.write_config(&jobs(&format!(
        "\n[jobs.pgbad]\nkind = \"postgres\"\ncontainer = \"{c}\"\ndatabase = \"nope\"\n\n[jobs.pgnouser]\nkind = \"postgres\"\ncontainer = \"{c}\"\nuser = \"nosuchrole\"\n",
        c = pg.name
    )));
    let r = env.run(&["--json", "backup", "--init"]).code(1);
    let report = r.json();
    for ok in ["pg", "pgone"] {
        assert_eq!(job(&report, ok)["status"], "success", "{ok}: {}", r.all());
    }
    let bad = job(&report, "pgbad");
    assert_eq!(bad["status"], "failed");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("\"nope\" does not exist"),
        "the dump's stderr is reported: {bad}"
    );
    let nouser = job(&report, "pgnouser");
    assert_eq!(nouser["status"], "failed");
    assert!(
        nouser["error"].as_str().unwrap().contains("nosuchrole"),
        "{nouser}"
    );
    for failed in ["pgbad", "pgnouser"] {
        let snaps = env.restic_cmd(&["snapshots", "--json", "--tag", &format!("omk:job={failed}")]);
        assert_eq!(snaps.stdout.trim(), "[]", "{failed}: no snapshot kept");
        assert_eq!(
            env.sql(&format!(
                "SELECT count(*) FROM snapshots WHERE job = '{failed}' AND state = 'good'"
            )),
            "0"
        );
    }
    assert_eq!(pg.status(), "running");

    // The digest matches the repository, the fingerprint counted every row, and the
    // dump restores into a fresh container of the same image with the same data.
    let snap = job(&report, "pg")["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (data, fp) = checked_dump(&env, &snap, "/pg.sql");
    assert_eq!(fp["tables"]["app.public.items"], 20000, "{fp}");
    let one = job(&report, "pgone")["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, fp_one) = checked_dump(&env, &one, "/pgone.sql");
    assert_eq!(fp_one["tables"]["public.items"], 20000, "{fp_one}");
    let fresh = postgres("other-pw");
    fresh.pipe(
        &[],
        &["psql", "-q", "-U", "postgres", "-d", "postgres"],
        &data,
    );
    let q = "psql -U postgres -d app -tAc \"SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM items\"";
    assert_eq!(fresh.sh(q), pg.sh(q));

    // Secrets: neither the output nor the catalog holds the password.
    assert!(!r.all().contains(&pw));
    assert!(!String::from_utf8_lossy(&env.catalog_bytes()).contains(&pw));

    // Retention skips the failed jobs.
    let f = env.run(&["--json", "forget"]).json();
    for failed in ["pgbad", "pgnouser"] {
        assert_eq!(job(&f, failed)["status"], "skipped", "{f}");
    }

    // The dump must outgrow the socket buffers between the daemon, the proxy and us (a few
    // MB on loopback), or it ends before anyone can kill it.
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"INSERT INTO items SELECT g, md5(g::text) FROM generate_series(20001, 600000) g\"");

    // restic dies (SIGKILL) after reading part of the stream: no hang, the job fails,
    // no snapshot, the dump in the container is stopped, the database still runs.
    env.write_config(&jobs(""));
    let wrapper = env.path("dying-restic");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --stdin \"*) head -c 100000 >/dev/null; kill -9 $$ ;; esac\nexec {} \"$@\"\n",
            restic.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x"])
        .arg(&wrapper)
        .status()
        .unwrap();
    let before = env
        .restic_cmd(&["snapshots", "--json", "--tag", "omk:job=pg"])
        .json();
    let t0 = Instant::now();
    let out = env
        .cmd(&["--json", "backup", "pg"])
        .env("OMK_BACKUP_RESTIC", &wrapper)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let r = Run::from_output(out);
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "no hang: {:?}",
        t0.elapsed()
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(job(&r.json(), "pg")["status"], "failed");
    let after = env
        .restic_cmd(&["snapshots", "--json", "--tag", "omk:job=pg"])
        .json();
    assert_eq!(before, after, "no new snapshot");
    assert_eq!(pg.status(), "running");
    wait_until(20, "pg_dumpall to end in the container", || {
        !pg.sh("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done")
            .contains("pg_dumpall")
    });

    // The database's dump process is killed mid-dump (restic is slow to start, so the
    // dump blocks on a full pipe): the job fails with the exit code, no snapshot.
    let slow = env.path("slow-restic");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --stdin \"*) sleep 15 ;; esac\nexec {} \"$@\"\n",
            restic.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x"])
        .arg(&slow)
        .status()
        .unwrap();
    let child = env
        .cmd(&["--json", "backup", "pg"])
        .env("OMK_BACKUP_RESTIC", &slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let find = "for p in /proc/[0-9]*; do if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^pg_dumpall'; then echo ${p#/proc/}; fi; done";
    wait_until(30, "pg_dumpall in the container", || {
        !pg.sh(find).is_empty()
    });
    pg.sh(&format!("kill -9 {}", pg.sh(find)));
    let r = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(r.code, 1, "{}", r.all());
    let err = job(&r.json(), "pg")["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("exited with code 137") || err.contains("cut"),
        "{err}"
    );
    let after_kill = env
        .restic_cmd(&["snapshots", "--json", "--tag", "omk:job=pg"])
        .json();
    assert_eq!(before, after_kill, "no new snapshot");
    assert_eq!(pg.status(), "running");
}

#[test]
fn mariadb_dump_roundtrip_with_the_containers_own_root_password() {
    let restic = restic_by("0.18");
    let pw = format!("mariapw-{}", unique());
    let m = mariadb(&pw);
    let env_pw = format!("MYSQL_PWD={pw}");
    m.pipe(
        &[&env_pw],
        &["mariadb", "-uroot"],
        b"CREATE DATABASE app; USE app; CREATE TABLE items (id int primary key, v text); INSERT INTO items VALUES (1, 'a (b)'), (2, 'it''s'), (3, 'x),(y'); INSERT INTO items SELECT seq + 10, md5(seq) FROM seq_1_to_5000; CREATE TABLE empty (x int);",
    );
    let env = Env::new(&restic);
    let wrong = format!("wrong-{}", unique());
    std::fs::write(env.path("wrongpw"), format!("{wrong}\n")).unwrap();
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.maria]\nkind = \"mariadb\"\ncontainer = \"{c}\"\n\n[jobs.mariabad]\nkind = \"mariadb\"\ncontainer = \"{c}\"\npassword_file = \"wrongpw\"\n",
        proxy(),
        c = m.name
    ));
    let r = env.run(&["--json", "backup", "--init"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let bad = job(&r.json(), "mariabad").clone();
    assert_eq!(bad["status"], "failed");
    assert!(
        bad["error"].as_str().unwrap().contains("Access denied"),
        "{bad}"
    );
    assert_eq!(
        env.restic_cmd(&["snapshots", "--json", "--tag", "omk:job=mariabad"])
            .stdout
            .trim(),
        "[]"
    );
    assert!(
        !r.all().contains(&wrong),
        "the wrong password is not echoed either"
    );
    assert_eq!(job(&r.json(), "maria")["status"], "success");
    let snap = job(&r.json(), "maria")["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (data, fp) = checked_dump(&env, &snap, "/maria.sql");
    assert_eq!(fp["tables"]["app.items"], 5003, "{fp}");
    assert_eq!(fp["tables"]["app.empty"], 0, "{fp}");
    let fresh = mariadb("fresh-pw");
    fresh.pipe(&["MYSQL_PWD=fresh-pw"], &["mariadb", "-uroot"], &data);
    let q = "SELECT concat(count(*), ':', md5(group_concat(v ORDER BY id SEPARATOR ','))) FROM app.items";
    // The dump carries the source's users too (in effect after a privilege reload):
    // try the fresh container's password, then the source's.
    let restored = fresh.sh(&format!(
        "MYSQL_PWD=fresh-pw mariadb -uroot -NB -e \"{q}\" 2>/dev/null || MYSQL_PWD='{pw}' mariadb -uroot -NB -e \"{q}\""
    ));
    let source = m.pipe(&[&env_pw], &["mariadb", "-uroot", "-NB", "-e", q], b"");
    assert_eq!(restored, source);
    assert!(!r.all().contains(&pw));
    assert!(!String::from_utf8_lossy(&env.catalog_bytes()).contains(&pw));
}

#[test]
fn a_proxy_refusing_exec_is_named_with_the_setting_that_allows_it() {
    let restic = restic_by("0.18");
    let db = sqlite();
    let env = Env::new(&restic);
    let strict = StrictProxy::start(env.dir.path());
    env.write_config(&format!(
        "[docker]\nhost = \"tcp://127.0.0.1:{}\"\ndiscover = false\n\n[jobs.lite]\nkind = \"sqlite\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\n",
        strict.port, db.name
    ));
    // A proxy refusal is the set-up's to fix: exit 2 (issue 8), with the rule to allow.
    let r = env.run(&["backup", "--init"]).code(2);
    let all = r.all();
    assert!(all.contains("refused POST /containers/"), "{all}");
    assert!(all.contains("/exec (HTTP 403)"), "{all}");
    assert!(all.contains("EXEC=1"), "{all}");
    assert_eq!(
        env.restic_cmd(&["snapshots", "--json", "--tag", "omk:job=lite"])
            .stdout
            .trim(),
        "[]"
    );
}
