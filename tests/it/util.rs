//! Test helpers: one temp dir per test, a config, a repository, the binary.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_omk-backup");

/// The restic binaries under test. Both must be there: `scripts/test.sh` installs them.
pub fn restics() -> Vec<(&'static str, PathBuf)> {
    let mut v = Vec::new();
    for (name, var) in [
        ("0.14", "OMK_TEST_RESTIC_014"),
        ("0.18", "OMK_TEST_RESTIC_018"),
    ] {
        let path = std::env::var_os(var).unwrap_or_else(|| {
            panic!(
                "{var} is not set: run the tests with scripts/test.sh, which installs restic {name}"
            )
        });
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "{var}={} does not exist: rerun scripts/setup-test-env.sh",
            path.display()
        );
        v.push((name, path));
    }
    v
}

/// A finished command: exit code and both streams.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, want: i32) -> Run {
        assert_eq!(
            self.code, want,
            "expected exit {want}:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A test environment: folder, data, password, config, repository path.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub restic: PathBuf,
    pub password: String,
}

impl Env {
    /// A new environment with a `files1` job over `data/` (a few files).
    pub fn new(restic: &Path) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("omk-it-")
            .tempdir()
            .expect("tempdir");
        let password = format!("pw-{}", unique());
        std::fs::write(dir.path().join("password"), format!("{password}\n")).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("hello.txt"), "hello omk\n").unwrap();
        std::fs::write(
            data.join("sub/numbers.txt"),
            (0..1000).map(|i| format!("{i}\n")).collect::<String>(),
        )
        .unwrap();
        let env = Env {
            dir,
            restic: restic.to_path_buf(),
            password,
        };
        env.write_config(
            "[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        );
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("omk.toml")
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// Write `omk.toml`: the repository section plus `rest`.
    pub fn write_config(&self, rest: &str) {
        let text = format!("[repository]\nurl = \"repo\"\npassword_file = \"password\"\n\n{rest}");
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// The command, ready to run with this env's config and restic.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("OMK_BACKUP_CONFIG", self.config_path())
            .env("OMK_BACKUP_RESTIC", &self.restic)
            .env("RESTIC_CACHE_DIR", self.path(".cache"))
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .current_dir(self.dir.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.cmd(args).output().expect("run omk-backup"))
    }

    /// Create the repository and make the first backup.
    pub fn init(&self) -> Run {
        self.run(&["backup", "--init"]).ok()
    }

    /// restic itself, on this env's repository (for checks the product does not do).
    pub fn restic_cmd(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.restic)
            .args(args)
            .env("RESTIC_REPOSITORY", self.repo())
            .env("RESTIC_PASSWORD_FILE", self.path("password"))
            .env("RESTIC_CACHE_DIR", self.path(".cache"))
            .output()
            .expect("run restic");
        Run::from_output(out)
    }

    /// A restic wrapper (`slow-restic` in the env) that sleeps `secs` before running
    /// restic's `command`, so a test can act while the run is in that step.
    pub fn slow_restic(&self, command: &str, secs: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let wrapper = self.path("slow-restic");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n[ \"$1\" = {command} ] && sleep {secs}\nexec {} \"$@\"\n",
                self.restic.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        wrapper
    }

    pub fn catalog_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["catalog.db", "catalog.db-wal"] {
            if let Ok(b) = std::fs::read(self.path(suffix)) {
                all.extend(b);
            }
        }
        all
    }

    /// Query the catalog with the sqlite3 CLI-free way: through rusqlite is not a dev
    /// dependency, so use the product's own `--json` views or this raw count helper.
    pub fn sql(&self, query: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(self.path("catalog.db"))
            .arg(query)
            .output()
            .expect("sqlite3 (installed by scripts/setup-test-env.sh)");
        assert!(
            out.status.success(),
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// A unique token for passwords and names.
pub fn unique() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", t, std::process::id())
}

/// Compare two folder trees: same relative paths, same bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let la = list_tree(a);
    let lb = list_tree(b);
    assert_eq!(
        la.iter().map(|x| &x.0).collect::<Vec<_>>(),
        lb.iter().map(|x| &x.0).collect::<Vec<_>>(),
        "file lists differ"
    );
    for ((p, ca), (_, cb)) in la.iter().zip(lb.iter()) {
        assert!(ca == cb, "content differs: {p}");
    }
}

fn list_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Wait until `f` is true, or panic after `secs`.
#[track_caller]
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The child processes of a pid (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                // pid (comm) state ppid ...
                if let Some(rest) = stat.rsplit_once(") ").map(|x| x.1)
                    && rest
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse::<u32>().ok())
                        == Some(pid)
                {
                    v.push(p);
                }
            }
        }
    }
    v
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(") ").is_some_and(|x| x.1.starts_with('Z')))
        .unwrap_or(false)
}

pub fn kill9(pid: u32) {
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -9 {pid}");
}

/// A tiny HTTP server: records request lines and bodies, answers with `status` after
/// `delay`.
pub fn http_server(
    status: u16,
    delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let s3 = s2.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                let _ = c.set_read_timeout(Some(std::time::Duration::from_millis(300)));
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|h| {
                                h.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                s3.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&got).into_owned());
                std::thread::sleep(delay);
                let _ = write!(
                    c,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            });
        }
    });
    (url, seen)
}
