//! The systemd path: the units of deploy/systemd installed into a scratch root pass
//! `systemd-analyze verify --root` with no warning, and `run-due` runs the way
//! omk-backup.service runs it — as its `User=`/`Group=` with no new privileges, with
//! exactly its `Environment=` lines then its `EnvironmentFile=`, the credential under
//! `$CREDENTIALS_DIRECTORY`, the state and cache directories owned by the user, and
//! killed at `TimeoutStartSec` — against real restic and the harness's proxy.
//! systemd is not PID 1 here, so the service manager's part is played by the test:
//! absolute paths of the unit are taken below the scratch root.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const UNITS: [&str; 3] = [
    "omk-backup.service",
    "omk-backup.timer",
    "omk-backup-daemon.service",
];

/// `Key=Value` lines of one section, in order (repeated keys kept).
fn section(unit: &str, name: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

fn one(kv: &[(String, String)], key: &str) -> String {
    let v: Vec<&String> = kv.iter().filter(|(k, _)| k == key).map(|x| &x.1).collect();
    assert_eq!(v.len(), 1, "{key}= must appear once: {kv:?}");
    v[0].clone()
}

fn install_root(root: &Path) {
    let units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for u in UNITS {
        std::fs::copy(
            super::repo_file(&format!("deploy/systemd/{u}")),
            units.join(u),
        )
        .unwrap();
    }
    // verify resolves the units' dependencies (sysinit.target, ...) and executables in
    // the root: the distribution's units, /bin/kill, and our binary.
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let st = Command::new("cp")
        .args(["-a", "/lib/systemd/system"])
        .arg(root.join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    std::fs::copy("/usr/bin/kill", root.join("usr/bin/kill")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    std::fs::copy(BIN, root.join("usr/local/bin/omk-backup")).unwrap();
}

fn verify_units(root: &Path) {
    let mut verify = Command::new("systemd-analyze");
    verify
        .arg("verify")
        .arg(format!("--root={}", root.display()));
    for u in UNITS {
        verify.arg(format!("/etc/systemd/system/{u}"));
    }
    let r = Run::from_output(
        verify
            .output()
            .expect("systemd-analyze (Debian's systemd, installed by scripts/setup-test-env.sh)"),
    );
    assert_eq!(r.code, 0, "{}", r.all());
    // Unknown keys and bad values are only warnings: there must be none.
    assert_eq!(r.all().trim(), "", "systemd-analyze verify warned");
}

/// omk-backup.service's [Service] section, played below a scratch root.
struct Service {
    root: PathBuf,
    svc: Vec<(String, String)>,
    user: String,
    group: String,
    uid: String,
}

impl Service {
    fn from_unit(root: &Path) -> Service {
        let unit =
            std::fs::read_to_string(super::repo_file("deploy/systemd/omk-backup.service")).unwrap();
        let svc = section(&unit, "Service");
        assert_eq!(one(&svc, "Type"), "oneshot");
        let user = one(&svc, "User");
        let uid = id(&["-u", &user]);
        assert_ne!(uid, "0", "the service must not run as root");
        let exec = one(&svc, "ExecStart");
        assert_eq!(exec.split_whitespace().nth(1), Some("run-due"), "{exec}");
        Service {
            root: root.to_path_buf(),
            group: one(&svc, "Group"),
            svc,
            user,
            uid,
        }
    }

    fn under(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn rooted(&self, p: &str) -> String {
        self.under(p).display().to_string()
    }

    fn state(&self) -> PathBuf {
        self.under(&format!("/var/lib/{}", one(&self.svc, "StateDirectory")))
    }

    fn credential(&self) -> PathBuf {
        let cred = one(&self.svc, "LoadCredential");
        let name = cred.split_once(':').unwrap().0;
        self.under("/run/credentials/omk-backup.service").join(name)
    }

    /// What systemd sets up: StateDirectory, CacheDirectory (owned by User), the
    /// credential (root-only on disk, readable by the unit under /run/credentials).
    fn prepare(&self) {
        let cache = self.under(&format!("/var/cache/{}", one(&self.svc, "CacheDirectory")));
        let cred = self.credential();
        for d in [
            &self.state(),
            &cache,
            cred.parent().unwrap(),
            &self.under("/srv/restic/homelab"),
        ] {
            std::fs::create_dir_all(d).unwrap();
            chown_to(d, &self.user, &self.group);
        }
        let src = self.under(one(&self.svc, "LoadCredential").split_once(':').unwrap().1);
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, format!("pw-{}\n", unique())).unwrap();
        std::fs::copy(&src, &cred).unwrap();
        chown_to(&cred, &self.user, &self.group);
        std::fs::create_dir_all(self.under("/srv/data")).unwrap();
        std::fs::write(self.under("/srv/data/a.txt"), "systemd data\n").unwrap();
        self.write_config(&cache);
    }

    /// The config as docs/deploy.md says (catalog in StateDirectory, the credential),
    /// from the example config, with the scratch root's paths.
    fn write_config(&self, cache: &Path) {
        let example =
            std::fs::read_to_string(super::repo_file("deploy/omk-backup.example.toml")).unwrap();
        let (head, _) = example.split_once("[notify]").unwrap();
        let cfg = head
            .replace(
                "\"/var/lib/omk-backup",
                &format!("\"{}", self.rooted("/var/lib/omk-backup")),
            )
            .replace(
                "\"/run/secrets/restic_password\"",
                &format!("\"{}\"", self.credential().display()),
            )
            .replace(
                "url = \"/repo\"",
                &format!("url = \"{}\"", self.rooted("/srv/restic/homelab")),
            )
            .replace(
                "cache_dir = \"/cache\"",
                &format!("cache_dir = \"{}\"", cache.display()),
            )
            .replace("grace = \"6h\"", "grace = \"400d\"");
        let cfg = format!(
            "{cfg}[docker]\ndiscover = false\n\n[jobs.data]\nkind = \"files\"\npaths = [\"{}\"]\n",
            self.rooted("/srv/data")
        );
        std::fs::create_dir_all(self.under("/etc/omk-backup/schedules")).unwrap();
        std::fs::write(self.under("/etc/omk-backup/omk-backup.toml"), cfg).unwrap();
        std::fs::write(
            self.under("/etc/omk-backup/schedules/homelab.cron"),
            "0 0 1 1 * backup\n",
        )
        .unwrap();
        std::fs::write(
            self.under("/etc/omk-backup/omk-backup.env"),
            "TZ=Europe/Berlin\n",
        )
        .unwrap();
    }

    /// The unit's environment: Environment= lines, then the EnvironmentFile, then what
    /// systemd adds (credentials folder, its default PATH).
    fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        for (_, v) in self.svc.iter().filter(|(k, _)| k == "Environment") {
            let (name, val) = v.split_once('=').unwrap();
            let val = if val.starts_with('/') {
                self.rooted(val)
            } else {
                val.to_string()
            };
            env.push((name.to_string(), val));
        }
        let envfile = one(&self.svc, "EnvironmentFile");
        let envfile = self.under(envfile.trim_start_matches('-'));
        for line in std::fs::read_to_string(envfile).unwrap().lines() {
            let (k, v) = line.split_once('=').unwrap();
            env.retain(|(n, _)| n != k);
            env.push((k.to_string(), v.to_string()));
        }
        let creds = self.credential().parent().unwrap().display().to_string();
        env.push(("CREDENTIALS_DIRECTORY".into(), creds));
        env.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
        env
    }

    /// ExecStart's binary with `args`, as User/Group, NoNewPrivileges, the unit's
    /// environment only, killed at TimeoutStartSec (SIGTERM, SIGKILL after TimeoutStopSec).
    fn run(&self, args: &[&str]) -> Run {
        let exec = one(&self.svc, "ExecStart");
        let bin = self.rooted(exec.split_whitespace().next().unwrap());
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.user))
            .arg(format!("--regid={}", self.group))
            .arg("--init-groups")
            .arg("--no-new-privs")
            .arg("timeout")
            .arg(format!("--kill-after={}", one(&self.svc, "TimeoutStopSec")))
            .arg(one(&self.svc, "TimeoutStartSec"))
            .arg(bin)
            .args(args)
            .env_clear()
            .envs(self.environment())
            .current_dir("/")
            .stdin(Stdio::null());
        Run::from_output(c.output().expect("setpriv (util-linux)"))
    }

    fn owner(&self, f: &Path) -> String {
        let o = Command::new("stat")
            .args(["-c", "%u"])
            .arg(f)
            .output()
            .unwrap();
        assert!(o.status.success(), "stat {}", f.display());
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

#[test]
fn systemd_units_verify_and_run_due_runs_as_the_service_would() {
    let tmp = tempfile::Builder::new()
        .prefix("omk-it-systemd-")
        .tempdir()
        .unwrap();
    // The service user must reach into the scratch root.
    super::chmod(tmp.path(), "0755");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    install_root(&root);
    verify_units(&root);

    let s = Service::from_unit(&root);
    s.prepare();
    // The environment file took effect (TZ), the config parses as the user.
    let r = s.run(&["schedule", "list"]).ok();
    assert!(r.stdout.contains("Europe/Berlin"), "{}", r.stdout);
    // A repository made as the service user; then, with no runs in the catalog, the
    // timer's run-due: the yearly line was missed and is caught up within grace.
    s.run(&["backup", "--init"]).ok();
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(s.state().join(f));
    }
    let r = s.run(&["--json", "run-due"]).ok();
    let tasks = r.json()["tasks"].clone();
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{}", r.stdout);
    assert_eq!(tasks[0]["status"], "success", "{}", r.stdout);
    assert_eq!(tasks[0]["trigger"], "catch-up", "{}", r.stdout);
    // Everything it wrote belongs to the service user.
    for f in [
        s.state().join("catalog.db"),
        s.under("/srv/restic/homelab/config"),
    ] {
        assert_eq!(s.owner(&f), s.uid, "{}", f.display());
    }
    // Nothing due now: the next tick is a no-op.
    let r = s.run(&["--json", "run-due"]).ok();
    assert_eq!(
        r.json()["tasks"].as_array().unwrap().len(),
        0,
        "{}",
        r.stdout
    );
}

fn id(args: &[&str]) -> String {
    let o = Command::new("id").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "user missing: {} (scripts/setup-test-env.sh creates the service user omk-backup)",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn chown_to(p: &Path, user: &str, group: &str) {
    let st = Command::new("chown")
        .arg(format!("{user}:{group}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "chown {}", p.display());
}
