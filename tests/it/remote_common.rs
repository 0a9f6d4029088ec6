//! What every remote-repository test shares: one backend (its URL, the `[repository]`
//! lines it needs, the environment its tools read), the full cycle every backend must
//! pass (files and a Postgres dump backed up, `restore latest`, `restore-test` with the
//! encryption proof read over the wire, `check`, `forget --prune`, `catalog rebuild`),
//! and a private server that a test may stop without disturbing the others.

use crate::dock::*;
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One remote repository backend as a test configures it.
pub struct Backend {
    pub name: &'static str,
    pub url: String,
    /// More `[repository]` lines (e.g. `cacert = "..."`).
    pub repo_extra: String,
    /// Environment for omk-backup (and so for restic and the raw-file readers).
    pub vars: Vec<(String, String)>,
}

pub fn need_var(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/setup-test-env.sh and source target/omk-test-env.sh")
    })
}

impl Backend {
    pub fn sftp() -> Backend {
        let host = need_var("OMK_TEST_SFTP_HOST");
        let dir = need_var("OMK_TEST_SFTP_DIR");
        Backend {
            name: "sftp",
            url: format!("sftp:{host}:{dir}/omk-it-{}", unique()),
            repo_extra: String::new(),
            vars: Vec::new(),
        }
    }

    pub fn rclone() -> Backend {
        let remote = need_var("OMK_TEST_RCLONE_REMOTE");
        let dir = need_var("OMK_TEST_RCLONE_DIR");
        Backend {
            name: "rclone",
            url: format!("rclone:{remote}:{dir}/omk-it-{}", unique()),
            repo_extra: String::new(),
            vars: vec![("RCLONE_CONFIG".into(), need_var("OMK_TEST_RCLONE_CONFIG"))],
        }
    }

    /// `rest:https://` on the harness's TLS server, trusting its CA via `cacert`.
    pub fn rest_https() -> Backend {
        let addr = need_var("OMK_TEST_REST_HTTPS_ADDR");
        let user = need_var("OMK_TEST_REST_USER");
        let pass = rest_password();
        Backend {
            name: "rest-https",
            url: format!("rest:https://{user}:{pass}@{addr}/omk-it-{}/", unique()),
            repo_extra: format!("cacert = \"{}\"\n", need_var("OMK_TEST_CACERT")),
            vars: Vec::new(),
        }
    }

    /// `[repository]` plus `rest` written into the env's config.
    pub fn write(&self, env: &Env, rest: &str) {
        let text = format!(
            "[repository]\nurl = \"{}\"\npassword_file = \"password\"\n{}\n{rest}",
            self.url, self.repo_extra
        );
        std::fs::write(env.config_path(), text).unwrap();
    }

    pub fn cmd(&self, env: &Env, args: &[&str]) -> Command {
        let mut c = env.cmd(args);
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, env: &Env, args: &[&str]) -> Run {
        Run::from_output(self.cmd(env, args).stdout(Stdio::piped()).output().unwrap())
    }
}

/// The harness's REST password (the same htpasswd serves http and https).
pub fn rest_password() -> String {
    let file = need_var("OMK_TEST_REST_PASS_FILE");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
        .trim()
        .to_string()
}

fn check_named<'a>(t: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    t["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {t}"))
}

/// The jobs of the full cycle: `files1` over `data/` and `pg`, a dump of `pg`.
pub fn cycle_jobs(pg: &Container) -> String {
    format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[retention]\nkeep_last = 1\n\n\
         [jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n\
         [jobs.pg]\nkind = \"postgres\"\ncontainer = \"{}\"\npassword_file = \"pgpw\"\n",
        proxy(),
        pg.name
    )
}

/// A Postgres container with a table, and its password file in `env`.
pub fn postgres_with_rows(env: &Env) -> Container {
    let pw = format!("pgpw-{}", unique());
    let pg = postgres(&pw);
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g;\"");
    std::fs::write(env.path("pgpw"), format!("{pw}\n")).unwrap();
    pg
}

/// Everything a backend must do, on one restic version.
pub fn full_cycle(ver: &str, restic: &Path, b: &Backend) {
    let env = Env::new(restic);
    let pg = postgres_with_rows(&env);
    b.write(&env, &cycle_jobs(&pg));
    let what = format!("{} / restic {ver}", b.name);
    let ok = |args: &[&str]| {
        let r = b.run(&env, args);
        assert_eq!(r.code, 0, "{what}: `{}`: {}", args.join(" "), r.all());
        r
    };
    let rep = ok(&["--json", "backup", "--init"]).json();
    for j in rep["jobs"].as_array().unwrap() {
        assert_eq!(j["status"], "success", "{what}: {j}");
    }
    ok(&["backup", "pg"]);
    ok(&[
        "restore", "latest", "--job", "files1", "--target", "restored",
    ]);
    assert_same_tree(
        &env.path("data"),
        &env.path(&format!("restored{}", env.path("data").display())),
    );
    let rt = ok(&["--json", "restore-test"]).json();
    let tests = rt["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2, "{what}: {rt:#}");
    for t in tests {
        assert_eq!(t["passed"], true, "{what}: {t:#}");
    }
    let enc = &rt["encryption"];
    assert_eq!(enc["passed"], true, "{what}: {enc:#}");
    for name in ["canary-absent", "config-encrypted", "keys-scrypt"] {
        let c = check_named(enc, name);
        assert_eq!(c["passed"], true, "{what}: {c}");
        assert!(c.get("skipped").is_none(), "{what}: skipped: {c}");
    }
    let absent = check_named(enc, "canary-absent")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        absent.contains("read over the wire") && absent.contains("data"),
        "{what}: {absent}"
    );
    ok(&["check"]);
    let f = ok(&["--json", "forget", "--prune"]).json();
    assert!(f.to_string().contains("\"removed\""), "{what}: {f}");
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        std::fs::remove_file(env.path(f)).ok();
    }
    // Rebuilt from the repository alone: both snapshots found, the dump vouched for by
    // its end marker (a files snapshot has nothing in the repository to vouch for it).
    let rebuilt = ok(&["--json", "catalog", "rebuild"]).json();
    assert_eq!(rebuilt["snapshots_found"], 2, "{what}: {rebuilt}");
    assert_eq!(rebuilt["added"], 2, "{what}: {rebuilt}");
    assert_eq!(rebuilt["verified"], 1, "{what}: {rebuilt}");
}

/// A private copy of a harness server on its own port, for a test that stops it.
pub struct PrivateServer {
    pub port: u16,
    child: Option<Child>,
    argv: Vec<String>,
}

impl PrivateServer {
    /// `argv` with `{port}` replaced by a free port.
    pub fn start(argv: &[String]) -> PrivateServer {
        let port = free_port();
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let mut s = PrivateServer {
            port,
            child: None,
            argv,
        };
        s.restart();
        s
    }

    pub fn restart(&mut self) {
        use std::os::unix::process::CommandExt;
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.argv[0]));
        self.child = Some(child);
        let port = self.port;
        wait_until(30, "the private server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Kill the server and every process it forked (sshd's per-connection children).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let mut all = vec![c.id()];
            let mut i = 0;
            while i < all.len() {
                all.extend(children(all[i]));
                i += 1;
            }
            for p in all {
                let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private sshd for the harness's keys on its own port: its config is the harness's
/// with another ListenAddress and PidFile, written into `dir`.
pub fn private_sshd(dir: &Path) -> PrivateServer {
    let base = std::fs::read_to_string(need_var("OMK_TEST_SFTP_SSHD_CONFIG")).unwrap();
    let cfg: PathBuf = dir.join("sshd_config");
    let text: String = base
        .lines()
        .filter(|l| !l.starts_with("ListenAddress") && !l.starts_with("PidFile"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "ListenAddress 127.0.0.1:{{port}}\nPidFile {}\n{text}",
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let tmpl = std::fs::read_to_string(&cfg).unwrap();
    // The port is only known in start(), which fills it into every argument: the
    // shell writes the filled-in config, then becomes sshd.
    let script = format!(
        "printf '%s' \"$0\" > {c}.real && exec /usr/sbin/sshd -D -e -f {c}.real",
        c = cfg.display()
    );
    PrivateServer::start(&["/bin/sh".into(), "-c".into(), script, tmpl])
}

/// A files job quiescing `c` (pause), over `data/` with a few MB of random bytes, to a
/// repository on the private sshd at `port`, uploading slowly (`limit_upload`).
pub fn slow_config(b: &Backend, env: &Env, c: &Container) {
    let mut big = vec![0u8; 6 << 20];
    getrandom_fill(&mut big);
    std::fs::write(env.path("data/big.bin"), &big).unwrap();
    b.write(
        env,
        &format!(
            "[docker]\nhost = \"{}\"\ndiscover = false\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n",
            proxy(),
            c.name
        ),
    );
}

/// Random bytes without a crate: /dev/urandom.
pub fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// The server behind `b` (a private one) dies while a pause-quiesced backup uploads:
/// the run fails (exit 1), the container runs again, nothing new is recorded good; the
/// server comes back and the next run succeeds.
pub fn server_gone_mid_backup(ver: &str, env: &Env, b: &Backend, server: &mut PrivateServer) {
    let c = sqlite();
    slow_config(b, env, &c);
    let r = b.run(env, &["backup", "--init"]);
    assert_eq!(r.code, 0, "restic {ver}: the first run: {}", r.all());
    let mut more = vec![0u8; 6 << 20];
    getrandom_fill(&mut more);
    std::fs::write(env.path("data/big.bin"), &more).unwrap();
    let good = || env.sql("SELECT count(*) FROM snapshots WHERE state = 'good'");
    let before = good();
    let child = b
        .cmd(env, &["backup"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(60, "the container to be paused", || c.status() == "paused");
    std::thread::sleep(std::time::Duration::from_secs(3));
    server.kill();
    let r = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(r.code, 1, "restic {ver}: {}", r.all());
    assert_eq!(
        c.status(),
        "running",
        "restic {ver}: the container was resumed"
    );
    assert_eq!(good(), before, "restic {ver}: nothing new recorded good");
    assert_eq!(
        env.sql(
            "SELECT status FROM runs WHERE command = 'backup' ORDER BY started_at DESC LIMIT 1"
        ),
        "failed",
        "restic {ver}"
    );
    server.restart();
    let r = b.run(env, &["backup"]);
    assert_eq!(r.code, 0, "restic {ver}: the next run: {}", r.all());
    assert_eq!(c.status(), "running");
    let after: u32 = good().parse().unwrap();
    assert_eq!(after, before.parse::<u32>().unwrap() + 1, "restic {ver}");
}
