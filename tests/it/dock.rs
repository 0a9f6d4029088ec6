//! Docker helpers for the integration tests: the harness's endpoints and images (from
//! `scripts/setup-test-env.sh`; a missing one fails loudly), and throw-away containers
//! with unique names that are always removed.

use std::process::{Command, Output, Stdio};

/// A required harness variable; panics with a clear message when it is missing.
pub fn need(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: source target/omk-test-env.sh (written by scripts/setup-test-env.sh), which starts dockerd, the socket proxies and builds the test images"
        ),
    }
}

pub fn proxy() -> String {
    need("OMK_TEST_DOCKER_PROXY")
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", need("OMK_TEST_DOCKER_SOCKET"))
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI (installed by scripts/setup-test-env.sh)")
}

#[track_caller]
pub fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A container removed (with its volumes) when dropped.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `docker run -d --name omk-it-<prefix>-<unique> ARGS... IMAGE`
    pub fn run(prefix: &str, args: &[&str], image_var: &str) -> Container {
        let image = need(image_var);
        let name = format!("omk-it-{prefix}-{}", crate::util::unique());
        let mut a = vec!["run", "-d", "--name", &name, "--label", "omk-it=1"];
        a.extend_from_slice(args);
        a.push(&image);
        docker_ok(&a);
        Container { name }
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        let mut a = vec!["exec", &self.name];
        a.extend_from_slice(args);
        docker(&a)
    }

    /// `sh -c SCRIPT` in the container; must succeed; returns trimmed stdout.
    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        let o = self.exec(&["sh", "-c", script]);
        assert!(
            o.status.success(),
            "{script} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Wait until `sh -c SCRIPT` succeeds.
    #[track_caller]
    pub fn wait_for(&self, secs: u64, script: &str) {
        crate::util::wait_until(secs, script, || {
            self.exec(&["sh", "-c", script]).status.success()
        });
    }

    /// running, paused, exited, ...
    pub fn status(&self) -> String {
        docker_ok(&["inspect", "-f", "{{.State.Status}}", &self.name])
    }

    #[allow(dead_code)]
    pub fn id(&self) -> String {
        docker_ok(&["inspect", "-f", "{{.Id}}", &self.name])
    }

    /// Pipe `input` into `docker exec -i NAME ARGS...`; returns stdout, must succeed.
    #[track_caller]
    pub fn pipe(&self, env: &[&str], args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut a = vec!["exec".to_string(), "-i".to_string()];
        for e in env {
            a.push("-e".into());
            a.push(e.to_string());
        }
        a.push(self.name.clone());
        a.extend(args.iter().map(|s| s.to_string()));
        let mut child = Command::new("docker")
            .args(&a)
            .env("DOCKER_HOST", need("OMK_TEST_DOCKER_SOCKET"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(
            out.status.success(),
            "docker exec -i {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// A running Postgres container with `POSTGRES_PASSWORD=password`, ready over TCP.
pub fn postgres(password: &str) -> Container {
    let env = format!("POSTGRES_PASSWORD={password}");
    let c = Container::run("pg", &["-e", &env], "OMK_TEST_IMAGE_POSTGRES");
    c.wait_for(120, "pg_isready -h 127.0.0.1 -U postgres");
    c
}

/// A running MariaDB container with `MARIADB_ROOT_PASSWORD=password`, ready over TCP.
pub fn mariadb(password: &str) -> Container {
    let env = format!("MARIADB_ROOT_PASSWORD={password}");
    let c = Container::run("maria", &["-e", &env], "OMK_TEST_IMAGE_MARIADB");
    c.wait_for(120, "mariadb-admin --protocol=tcp -h127.0.0.1 ping");
    c
}

/// A running SQLite container: /data/app.db with a 3-row `items` table.
pub fn sqlite() -> Container {
    let c = Container::run("sqlite", &[], "OMK_TEST_IMAGE_SQLITE");
    c.wait_for(60, "test -s /data/app.db");
    c
}

/// A stricter haproxy (no exec rules), started for this test only.
pub struct StrictProxy {
    child: std::process::Child,
    pub port: u16,
}

impl StrictProxy {
    pub fn start(dir: &std::path::Path) -> StrictProxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = need("OMK_TEST_DOCKER_SOCKET");
        let socket = socket.trim_start_matches("unix://");
        let cfg = format!(
            "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nfrontend f\n  bind 127.0.0.1:{port}\n  acl ro path,url_dec -m reg '^(/v1\\.[0-9]+)?/(_ping|version|containers/json|containers/[a-zA-Z0-9][a-zA-Z0-9_.-]*/json)$'\n  http-request allow if ro METH_GET\n  http-request deny deny_status 403\n  default_backend d\nbackend d\n  server s {socket}\n"
        );
        let path = dir.join("strict-haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (installed by scripts/setup-test-env.sh)");
        crate::util::wait_until(10, "the strict proxy to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        StrictProxy { child, port }
    }
}

impl Drop for StrictProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
