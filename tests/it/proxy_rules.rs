//! `omk-backup proxy-rules`: the generated haproxy configuration is started as a real
//! haproxy in front of the real dockerd; backup (a Postgres dump and a paused files job)
//! and a database restore test pass through it, and everything outside this config's
//! containers is refused (exec elsewhere, pause elsewhere, DELETE or archive PUT of a
//! live container, a create not named omk-restore-*).

use crate::dock::*;
use crate::util::*;
use std::process::{Command, Stdio};

struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl -X METHOD` through the proxy; the HTTP status.
fn status(port: u16, method: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "--path-as-is",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
        ])
        .args(["-H", "Content-Type: application/json", "--data", "{}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl (installed by scripts/setup-test-env.sh)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn config(host: &str, pg: &str, app: &str) -> String {
    format!(
        "[docker]\nhost = \"{host}\"\ndiscover = false\n\n[retention]\nkeep_last = 3\n\n\
         [jobs.rulespg]\nkind = \"postgres\"\ncontainer = \"{pg}\"\n\n\
         [jobs.rulesfiles]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{app}\", mode = \"pause\" }}\n"
    )
}

#[test]
fn generated_haproxy_rules_run_backup_and_restore_test_and_refuse_the_rest() {
    let restic = restics().into_iter().find(|(v, _)| *v == "0.18").unwrap().1;
    let pg = postgres("pw-rules");
    pg.sh("psql -U postgres -c 'CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 500);'");
    let app = sqlite();
    let bystander = sqlite();
    let env = Env::new(&restic);
    let socket = need("OMK_TEST_DOCKER_SOCKET");
    env.write_config(&config(&socket, &pg.name, &app.name));

    // CetusGuard flavour: names filled in.
    let cg = env
        .run(&["proxy-rules", "--format", "cetusguard"])
        .ok()
        .stdout;
    assert!(
        cg.contains(&format!(
            "POST %API_PREFIX_CONTAINERS%/({}|omk-restore-",
            pg.name
        )),
        "{cg}"
    );
    let bad = env.run(&["proxy-rules", "--format", "nginx"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr.contains("haproxy") && bad.stderr.contains("cetusguard"),
        "{}",
        bad.stderr
    );

    let port = free_port();
    let rules = env
        .run(&[
            "proxy-rules",
            "--format",
            "haproxy",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--socket",
            socket.trim_start_matches("unix://"),
        ])
        .ok()
        .stdout;
    let cfg = env.path("generated-haproxy.cfg");
    std::fs::write(&cfg, &rules).unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy refuses the generated config: {}\n{rules}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _proxy = Haproxy(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy"),
    );
    wait_until(10, "the generated proxy to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // Everything this config does passes through the generated rules.
    env.write_config(&config(
        &format!("tcp://127.0.0.1:{port}"),
        &pg.name,
        &app.name,
    ));
    let b = env.run(&["--json", "backup", "--init"]);
    assert_eq!(b.code, 0, "backup through the generated rules: {}", b.all());
    assert_eq!(app.status(), "running", "the paused container came back");
    let t = env.run(&["--json", "restore-test"]);
    assert_eq!(
        t.code,
        0,
        "restore-test through the generated rules: {}",
        t.all()
    );
    let j = t.json();
    let tests = j["tests"].as_array().unwrap();
    assert!(
        tests
            .iter()
            .any(|x| x["job"] == "rulespg" && x["passed"] == true),
        "{j}"
    );

    // And nothing else does.
    for (method, path) in [
        ("POST", format!("/containers/{}/exec", bystander.name)),
        ("POST", format!("/containers/{}/exec", app.name)),
        ("POST", format!("/containers/{}/pause", bystander.name)),
        ("POST", format!("/containers/{}/stop", app.name)),
        ("POST", format!("/containers/{}/pause", pg.name)),
        ("DELETE", format!("/containers/{}?force=1&v=1", pg.name)),
        ("PUT", format!("/containers/{}/archive?path=/tmp", pg.name)),
        ("GET", format!("/containers/{}/json", bystander.name)),
        ("POST", "/containers/create?name=evil".to_string()),
        ("POST", "/containers/create".to_string()),
        (
            "POST",
            format!("/containers/omk-restore-x/../{}/exec", bystander.name),
        ),
        ("GET", "/info".to_string()),
    ] {
        assert_eq!(
            status(port, method, &path),
            "403",
            "{method} {path} must be refused"
        );
    }
    assert_eq!(bystander.status(), "running");
    // The allowed side answers from the daemon (not the proxy).
    assert_eq!(
        status(port, "GET", &format!("/containers/{}/json", pg.name)),
        "200"
    );
}
