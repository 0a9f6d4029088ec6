//! The systemd path: the units of deploy/systemd installed into a scratch root pass
//! `systemd-analyze verify --root` with no warning, and `run-due` runs the way
//! omk-backup.service runs it — as its `User=`/`Group=` with no new privileges, with
//! exactly its `Environment=` lines then its `EnvironmentFile=`, the credential under
//! `$CREDENTIALS_DIRECTORY`, the state and cache directories owned by the user, and
//! killed at `TimeoutStartSec` — against real restic and the harness's proxy.
//! systemd is not PID 1 here, so the service manager's part is played by the test:
//! absolute paths of the unit are taken below the scratch root.

use crate::util::*;
use std::path::Path;
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

    let unit =
        std::fs::read_to_string(super::repo_file("deploy/systemd/omk-backup.service")).unwrap();
    let svc = section(&unit, "Service");
    assert_eq!(one(&svc, "Type"), "oneshot");
    let timeout = one(&svc, "TimeoutStartSec");
    let user = one(&svc, "User");
    let group = one(&svc, "Group");
    let uid = id(&["-u", &user]);
    assert_ne!(uid, "0", "the service must not run as root");
    let under = |p: &str| root.join(p.trim_start_matches('/'));

    // What systemd sets up: StateDirectory, CacheDirectory (owned by User), the
    // credential (root-only on disk, readable by the unit under /run/credentials).
    let state = under(&format!("/var/lib/{}", one(&svc, "StateDirectory")));
    let cache = under(&format!("/var/cache/{}", one(&svc, "CacheDirectory")));
    let (cred_name, cred_src) = one(&svc, "LoadCredential")
        .split_once(':')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let creds = under("/run/credentials/omk-backup.service");
    for d in [&state, &cache, &creds, &under("/srv/restic/homelab")] {
        std::fs::create_dir_all(d).unwrap();
        chown_to(d, &user, &group);
    }
    std::fs::create_dir_all(under(&cred_src).parent().unwrap()).unwrap();
    std::fs::write(under(&cred_src), format!("pw-{}\n", unique())).unwrap();
    std::fs::copy(under(&cred_src), creds.join(&cred_name)).unwrap();
    chown_to(&creds.join(&cred_name), &user, &group);
    std::fs::create_dir_all(under("/srv/data")).unwrap();
    std::fs::write(under("/srv/data/a.txt"), "systemd data\n").unwrap();

    // The config as docs/deploy.md says (catalog in StateDirectory, credential path),
    // from the example config, with the scratch root's paths.
    let example =
        std::fs::read_to_string(super::repo_file("deploy/omk-backup.example.toml")).unwrap();
    let (head, _) = example.split_once("[notify]").unwrap();
    let r = |p: &str| under(p).display().to_string();
    let cfg = head
        .replace(
            "\"/var/lib/omk-backup",
            &format!("\"{}", r("/var/lib/omk-backup")),
        )
        .replace(
            "\"/run/secrets/restic_password\"",
            &format!("\"{}\"", creds.join(&cred_name).display()),
        )
        .replace(
            "url = \"/repo\"",
            &format!("url = \"{}\"", r("/srv/restic/homelab")),
        )
        .replace(
            "cache_dir = \"/cache\"",
            &format!("cache_dir = \"{}\"", cache.display()),
        );
    let cfg = format!(
        "{cfg}[docker]\ndiscover = false\n\n[jobs.data]\nkind = \"files\"\npaths = [\"{}\"]\n",
        r("/srv/data")
    );
    let cfg = cfg.replace("grace = \"6h\"", "grace = \"400d\"");
    std::fs::create_dir_all(under("/etc/omk-backup/schedules")).unwrap();
    std::fs::write(under("/etc/omk-backup/omk-backup.toml"), cfg).unwrap();
    std::fs::write(
        under("/etc/omk-backup/schedules/homelab.cron"),
        "0 0 1 1 * backup\n",
    )
    .unwrap();
    std::fs::write(
        under("/etc/omk-backup/omk-backup.env"),
        "TZ=Europe/Berlin\n",
    )
    .unwrap();

    // The unit's environment: Environment= lines, then the EnvironmentFile.
    let mut env: Vec<(String, String)> = Vec::new();
    for (_, v) in svc.iter().filter(|(k, _)| k == "Environment") {
        let (name, val) = v.split_once('=').unwrap();
        let val = if val.starts_with('/') {
            r(val)
        } else {
            val.to_string()
        };
        env.push((name.to_string(), val));
    }
    let envfile = one(&svc, "EnvironmentFile");
    let envfile = under(envfile.trim_start_matches('-'));
    for line in std::fs::read_to_string(envfile).unwrap().lines() {
        let (k, v) = line.split_once('=').unwrap();
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v.to_string()));
    }
    env.push(("CREDENTIALS_DIRECTORY".into(), creds.display().to_string()));
    env.push((
        "PATH".into(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    ));
    let exec = one(&svc, "ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[1..], ["run-due"], "{exec}");
    let service = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={user}"))
            .arg(format!("--regid={group}"))
            .arg("--init-groups")
            .arg("--no-new-privs")
            .arg("timeout")
            .arg("--kill-after=30")
            .arg(&timeout)
            .arg(r(argv[0]))
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null());
        Run::from_output(c.output().expect("setpriv (util-linux)"))
    };
    // The environment file took effect (TZ), the config parses as the user.
    let s = service(&["schedule", "list"]).ok();
    assert!(s.stdout.contains("Europe/Berlin"), "{}", s.stdout);
    // A repository for the service (as its user), then the timer's run-due: the
    // yearly line is missed and caught up within grace.
    service(&["backup", "--init"]).ok();
    std::fs::remove_file(state.join("catalog.db")).unwrap();
    let _ = std::fs::remove_file(state.join("catalog.db-wal"));
    let _ = std::fs::remove_file(state.join("catalog.db-shm"));
    let r = service(&["--json", "run-due"]).ok();
    let tasks = r.json()["tasks"].clone();
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{}", r.stdout);
    assert_eq!(tasks[0]["status"], "success", "{}", r.stdout);
    assert_eq!(tasks[0]["trigger"], "catch-up", "{}", r.stdout);
    // Everything it wrote belongs to the service user.
    for f in [
        state.join("catalog.db"),
        under("/srv/restic/homelab/config"),
    ] {
        let owner = String::from_utf8(
            Command::new("stat")
                .args(["-c", "%u"])
                .arg(&f)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert_eq!(owner.trim(), uid, "{}", f.display());
    }
    // Nothing due now: the next tick is a no-op.
    let r = service(&["--json", "run-due"]).ok();
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
