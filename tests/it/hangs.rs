//! Nothing hangs forever: a Docker endpoint that accepts and never answers, a proxy that
//! withholds the answer to a pause and to an exec start (the call happened, the answer
//! never came), a Postgres dump blocked by another session's lock, and a daemon task
//! past `[schedule] max_runtime`. Each fails within its bound, names what hung, records
//! nothing good, and leaves the containers running. Real binary, real restic, real
//! dockerd behind the haproxy proxy, real Postgres; the two fault endpoints are tiny
//! TCP servers here (a hang on demand is a fault no real proxy produces).

use crate::dock::*;
use crate::util::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn restic_018() -> std::path::PathBuf {
    restics()
        .into_iter()
        .find(|(v, _)| *v == "0.18")
        .map(|(_, p)| p)
        .unwrap()
}

/// A TCP endpoint that accepts connections and never answers (a hung proxy).
fn silent_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    format!("tcp://{addr}")
}

/// A forwarding proxy in front of the harness's haproxy that passes every request, but
/// withholds the answer to a request whose request line `withhold` picks: the request
/// reaches Docker (it happens), the answer never comes back, the connection stays open.
fn withholding_proxy(withhold: fn(&str) -> bool) -> String {
    let upstream = proxy().trim_start_matches("tcp://").to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let up = TcpStream::connect(&upstream).expect("the harness's haproxy proxy");
            forward(c, up, withhold);
        }
    });
    format!("tcp://{addr}")
}

fn forward(client: TcpStream, up: TcpStream, withhold: fn(&str) -> bool) {
    let held = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut up_out) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let h = held.clone();
    let (client2, up2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.lines().any(withhold) {
                h.store(true, Ordering::SeqCst);
            }
            if up_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = up2.shutdown(std::net::Shutdown::Both);
        let _ = client2.shutdown(std::net::Shutdown::Both);
    });
    let (mut up_in, mut c_out) = (up, client);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = up_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            // Withheld: read and drop what Docker answers, keep the client waiting.
            if !held.load(Ordering::SeqCst) && c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        // Withheld, the client keeps waiting even when Docker is done (the reader
        // thread closes it once the client gives up).
        if !held.load(Ordering::SeqCst) {
            let _ = c_out.shutdown(std::net::Shutdown::Both);
        }
    });
}

fn pause_or_exec_start(line: &str) -> bool {
    (line.starts_with("POST /containers/") && line.contains("/pause "))
        || (line.starts_with("POST /exec/") && line.contains("/start "))
}

fn good_snapshots(env: &Env) -> String {
    env.sql("SELECT count(*) FROM snapshots WHERE state = 'good'")
}

#[test]
fn a_docker_endpoint_that_never_answers_fails_the_backup_within_the_bound() {
    let env = Env::new(&restic_018());
    env.init();
    let before = good_snapshots(&env);
    let host = silent_endpoint();
    env.write_config(&format!(
        "[docker]\nhost = \"{host}\"\ndiscover = false\ntimeout = \"3s\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"omk-it-hangs-nowhere\", mode = \"pause\" }}\n\n[jobs.lite]\nkind = \"sqlite\"\ncontainer = \"omk-it-hangs-nowhere\"\ndatabase = \"/data/app.db\"\n"
    ));
    let t0 = Instant::now();
    let r = env.run(&["backup"]);
    let took = t0.elapsed();
    assert_eq!(r.code, 1, "{}", r.all());
    let want = format!("Docker at {host} did not answer GET /version within 3 s");
    assert!(r.stderr.contains(&want), "{}", r.all());
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(good_snapshots(&env), before, "nothing new recorded good");
    assert_eq!(
        env.sql("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1"),
        "failed"
    );
}

#[test]
fn a_proxy_withholding_the_pause_and_exec_answers_fails_and_the_container_is_resumed() {
    let app = sqlite();
    let db = sqlite();
    let env = Env::new(&restic_018());
    env.init();
    let before = good_snapshots(&env);
    let host = withholding_proxy(pause_or_exec_start);
    env.write_config(&format!(
        "[docker]\nhost = \"{host}\"\ndiscover = false\ntimeout = \"3s\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n\n[jobs.lite]\nkind = \"sqlite\"\ncontainer = \"{}\"\ndatabase = \"/data/app.db\"\n",
        app.name, db.name
    ));
    let t0 = Instant::now();
    let r = env.run(&["backup"]);
    let took = t0.elapsed();
    assert_eq!(r.code, 1, "{}", r.all());
    let pause = format!(
        "did not answer POST /containers/{}/pause within 3 s",
        app.name
    );
    assert!(r.stderr.contains(&pause), "{}", r.all());
    assert!(
        r.stderr.contains("did not answer POST /exec/") && r.stderr.contains("/start within 3 s"),
        "{}",
        r.all()
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // The pause did happen in Docker: the guard resumed it through the same proxy.
    assert_eq!(app.status(), "running");
    assert_eq!(db.status(), "running");
    assert_eq!(good_snapshots(&env), before, "nothing new recorded good");
    // The journal is closed: the next command has nothing to recover.
    assert_eq!(
        env.sql("SELECT count(*) FROM quiesce_journal WHERE state = 'quiesced'"),
        "0"
    );
}

/// The pg_dump processes in the container (their pids).
fn pg_dumps(pg: &Container) -> String {
    pg.sh("for p in /proc/[0-9]*; do if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^pg_dump '; then echo ${p#/proc/}; fi; done")
}

#[test]
fn a_dump_blocked_by_a_lock_is_stopped_after_stall_timeout() {
    let pw = format!("pgpw-{}", unique());
    let pg = postgres(&pw);
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g;\"");
    let env = Env::new(&restic_018());
    env.init();
    let before = good_snapshots(&env);
    std::fs::write(
        env.config_path(),
        format!(
            "[repository]\nurl = \"repo\"\npassword_file = \"password\"\nstall_timeout = \"5s\"\n\n[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.pg]\nkind = \"postgres\"\ncontainer = \"{}\"\ndatabase = \"app\"\n",
            proxy(),
            pg.name
        ),
    )
    .unwrap();
    // Another session holds an ACCESS EXCLUSIVE lock: pg_dump's ACCESS SHARE waits.
    docker_ok(&[
        "exec",
        "-d",
        &pg.name,
        "psql",
        "-U",
        "postgres",
        "-d",
        "app",
        "-c",
        "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);",
    ]);
    let locked = "psql -U postgres -d app -tAc \"SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'items' AND l.mode = 'AccessExclusiveLock' AND l.granted\"";
    pg.wait_for(30, &format!("test \"$({locked})\" = 1"));
    let t0 = Instant::now();
    let r = env.run(&["backup", "pg"]);
    let took = t0.elapsed();
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("stalled after 5s"), "{}", r.all());
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // The dump in the container was stopped, its session is gone from Postgres.
    wait_until(20, "pg_dump to be gone from the container", || {
        pg_dumps(&pg).is_empty()
    });
    let sessions = "psql -U postgres -d app -tAc \"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'\"";
    wait_until(20, "pg_dump's session to end", || pg.sh(sessions) == "0");
    assert_eq!(pg.status(), "running");
    assert_eq!(good_snapshots(&env), before, "nothing new recorded good");
    assert_eq!(
        env.restic_cmd(&["snapshots", "--json", "--tag", "omk:job=pg"])
            .stdout
            .trim(),
        "[]"
    );
    // Once the lock is gone the same job backs up.
    pg.sh("psql -U postgres -tAc \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()\"");
    env.run(&["backup", "pg"]).ok();
}

/// The daemon with its stderr going to a file.
fn spawn_daemon(env: &Env, restic: &std::path::Path) -> std::process::Child {
    let log = std::fs::File::create(env.path("daemon.log")).unwrap();
    env.cmd(&["-v", "daemon"])
        .env("OMK_BACKUP_RESTIC", restic)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon")
}

fn sql_busy(env: &Env, query: &str) -> String {
    let out = Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(env.path("catalog.db"))
        .arg(query)
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_daemon_task_past_max_runtime_is_stopped_recorded_failed_and_the_daemon_goes_on() {
    let c = sqlite();
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.init();
        env.sql("DELETE FROM runs");
        std::fs::create_dir_all(env.path("schedules")).unwrap();
        // Both caught up at start, FIFO: the slow backup first, then a check.
        std::fs::write(
            env.path("schedules/test.cron"),
            "0 0 1 1 * backup\n0 0 2 1 * check\n",
        )
        .unwrap();
        env.write_config(&format!(
            "[schedule]\ngrace = \"400d\"\nmax_runtime = \"5s\"\n\n[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n",
            proxy(),
            c.name
        ));
        // restic's backup takes a minute: the container stays paused meanwhile.
        let slow = env.slow_restic("backup", 60);
        let t0 = Instant::now();
        let mut d = spawn_daemon(&env, &slow);
        let log = || std::fs::read_to_string(env.path("daemon.log")).unwrap_or_default();
        wait_until(60, "the backup to pause the container", || {
            c.status() == "paused"
        });
        let wrappers = children(d.id());
        let sleeps: Vec<u32> = wrappers.iter().flat_map(|w| children(*w)).collect();
        wait_until(60, "the check after the stopped backup", || {
            sql_busy(&env, "SELECT status FROM runs WHERE command = 'check'") == "success"
        });
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(50),
            "restic {ver}: took {took:?}"
        );
        assert_eq!(c.status(), "running", "restic {ver}: {}", log());
        assert_eq!(
            sql_busy(&env, "SELECT status FROM runs WHERE command = 'backup'"),
            "failed",
            "restic {ver}: {}",
            log()
        );
        let err = sql_busy(&env, "SELECT error FROM runs WHERE command = 'backup'");
        assert!(
            err.contains("exceeded max_runtime 5s"),
            "restic {ver}: {err}"
        );
        assert_eq!(
            sql_busy(
                &env,
                "SELECT count(*) FROM quiesce_journal WHERE state = 'quiesced'"
            ),
            "0",
            "restic {ver}"
        );
        assert_eq!(good_snapshots(&env), "1", "restic {ver}: only --init's");
        assert!(d.try_wait().unwrap().is_none(), "the daemon goes on");
        let _ = Command::new("kill")
            .args(["-TERM", &d.id().to_string()])
            .status();
        let _ = d.wait();
        // The slow wrapper's `sleep` outlives the killed wrapper: end it, by pid.
        for p in sleeps {
            if alive(p) {
                kill9(p);
            }
        }
    }
}

/// The endpoints a dump streams through: haproxy, nginx, the plain socket.
fn endpoints() -> [String; 3] {
    [
        proxy(),
        need("OMK_TEST_DOCKER_UPGRADE_PROXY"),
        need("OMK_TEST_DOCKER_SOCKET"),
    ]
}

/// A restic wrapper whose `backup --stdin` waits `secs` before reading: the dump fills
/// the pipes and blocks, mid-dump, until then.
fn late_reading_restic(env: &Env, secs: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = env.path("late-restic");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --stdin \"*) sleep {secs} ;; esac\nexec {} \"$@\"\n",
            env.restic.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

/// The pids of processes in `c` whose command line starts with `prog `.
fn procs(c: &Container, prog: &str) -> String {
    c.sh(&format!("for p in /proc/[0-9]*; do if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^{prog} '; then echo ${{p#/proc/}}; fi; done"))
}

/// SIGKILL omk-backup and everything it started (restic or its wrapper, and theirs).
fn kill_tree(child: &mut std::process::Child) {
    let pid = child.id();
    let kids = children(pid);
    let grandkids: Vec<u32> = kids.iter().flat_map(|k| children(*k)).collect();
    kill9(pid);
    let _ = child.wait();
    for p in kids.into_iter().chain(grandkids) {
        if alive(p) {
            kill9(p);
        }
    }
}

/// Start `backup JOB` and SIGKILL it once `prog` runs in `c`; returns how long the dump
/// process outlived the kill.
fn sigkill_mid_dump(
    env: &Env,
    c: &Container,
    job: &str,
    prog: &str,
    restic: &std::path::Path,
) -> Duration {
    let mut child = env
        .cmd(&["backup", job])
        .env("OMK_BACKUP_RESTIC", restic)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(60, "the dump to run in the container", || {
        !procs(c, prog).is_empty()
    });
    // Mid-dump: it has filled the pipes and waits for its reader.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!procs(c, prog).is_empty(), "{prog} ended before the kill");
    let t0 = Instant::now();
    kill_tree(&mut child);
    wait_until(30, &format!("{prog} to be gone after the SIGKILL"), || {
        procs(c, prog).is_empty()
    });
    let took = t0.elapsed();
    let cfg = std::fs::read_to_string(env.config_path()).unwrap_or_default();
    let host = cfg.lines().find(|l| l.starts_with("host")).unwrap_or("");
    eprintln!("{prog} outlived the SIGKILL of omk-backup by {took:?} ({host})");
    took
}

#[test]
fn sigkill_mid_dump_leaves_no_pg_dump_and_no_lock_in_postgres() {
    let pg = postgres(&format!("pgpw-{}", unique()));
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 600000) g;\"");
    let env = Env::new(&restic_018());
    env.init();
    for host in endpoints() {
        env.write_config(&format!(
            "[docker]\nhost = \"{host}\"\ndiscover = false\n\n[jobs.pg]\nkind = \"postgres\"\ncontainer = \"{}\"\ndatabase = \"app\"\n",
            pg.name
        ));
        let late = late_reading_restic(&env, 60);
        sigkill_mid_dump(&env, &pg, "pg", "pg_dump", &late);
        let held = "psql -U postgres -d app -tAc \"SELECT count(*) FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid WHERE a.application_name = 'pg_dump'\"";
        wait_until(20, "pg_dump's session and locks to be gone", || {
            pg.sh(held) == "0"
        });
        assert_eq!(pg.status(), "running");
    }
}

#[test]
fn sigkill_mid_dump_leaves_no_mariadb_dump_in_mariadb() {
    let pw = format!("mariapw-{}", unique());
    let m = mariadb(&pw);
    let env_pw = format!("MYSQL_PWD={pw}");
    m.pipe(
        &[&env_pw],
        &["mariadb", "-uroot"],
        b"CREATE DATABASE app; USE app; CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT seq, md5(seq) FROM seq_1_to_600000;",
    );
    let env = Env::new(&restic_018());
    env.init();
    for host in endpoints() {
        env.write_config(&format!(
            "[docker]\nhost = \"{host}\"\ndiscover = false\n\n[jobs.maria]\nkind = \"mariadb\"\ncontainer = \"{}\"\ndatabase = \"app\"\n",
            m.name
        ));
        let late = late_reading_restic(&env, 60);
        sigkill_mid_dump(&env, &m, "maria", "mariadb-dump", &late);
        // Its connection (and the snapshot transaction it held) is gone from the server.
        let q = format!(
            "MYSQL_PWD={pw} mariadb -uroot -N -e \"SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER = 'root'\""
        );
        wait_until(20, "mariadb-dump's connection to end", || m.sh(&q) == "0");
        assert_eq!(m.status(), "running");
    }
}

#[test]
fn a_lock_blocked_dump_outliving_a_sigkill_is_stopped_by_the_next_command() {
    let pg = postgres(&format!("pgpw-{}", unique()));
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc 'CREATE TABLE items (id int)'");
    let env = Env::new(&restic_018());
    env.init();
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.pg]\nkind = \"postgres\"\ncontainer = \"{}\"\ndatabase = \"app\"\n",
        proxy(),
        pg.name
    ));
    docker_ok(&[
        "exec",
        "-d",
        &pg.name,
        "psql",
        "-U",
        "postgres",
        "-d",
        "app",
        "-c",
        "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);",
    ]);
    let waiting = "psql -U postgres -d app -tAc \"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'\"";
    let mut child = env
        .cmd(&["backup", "pg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(60, "pg_dump to wait for the lock", || pg.sh(waiting) == "1");
    kill_tree(&mut child);
    // Blocked, it writes nothing and gets no broken pipe: it stays.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        pg.sh(waiting),
        "1",
        "pg_dump is still blocked after the SIGKILL"
    );
    let r = env.run(&["status"]).ok();
    assert!(
        r.stderr.contains("stopped 1 dump process(es) left by run"),
        "{}",
        r.all()
    );
    wait_until(20, "pg_dump to be gone", || {
        procs(&pg, "pg_dump").is_empty()
    });
    let sessions = "psql -U postgres -d app -tAc \"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'\"";
    wait_until(20, "pg_dump's session to end", || pg.sh(sessions) == "0");
    // Only ours: the session that holds the lock is untouched.
    assert_eq!(
        pg.sh("psql -U postgres -d app -tAc \"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()\""),
        "1"
    );
    // The next command finds nothing left to stop.
    let again = env.run(&["status"]).ok();
    assert!(!again.stderr.contains("dump process"), "{}", again.all());
}
