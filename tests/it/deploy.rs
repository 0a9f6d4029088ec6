//! The deployment as shipped: `omk-backup:local` (scripts/build-image.sh) run by Debian's
//! docker-compose 1.29 from `deploy/compose.yaml` exactly as written (an override file
//! only points the volumes, secrets and the external network at this test's folders),
//! behind the harness's haproxy config running as a container named `cetusguard` on a
//! user-defined network — the only network omk-backup is on. Files and Postgres jobs
//! back up and restore-test through it; `docker stop` during a scheduled backup records
//! it `interrupted` and resumes the paused container; a recreated container keeps its
//! catalog. The systemd units are checked in `deploy/systemd.rs`.

mod systemd;

use crate::dock::*;
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// uid:gid of the image's `omk-backup` user (images/omk-backup/rootfs-prepare.sh).
const PUID: &str = "1000";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// An image the harness must have built; a missing one fails loudly.
fn built_image(var: &str) -> String {
    let img = need(var);
    let o = docker(&["image", "inspect", "-f", "{{.Id}}", &img]);
    assert!(
        o.status.success(),
        "image {img} ({var}) is missing: run scripts/setup-test-env.sh (it runs scripts/build-image.sh --test-proxy)"
    );
    img
}

/// One deployment: folders, the proxy container and network, the compose project.
struct Deploy {
    dir: tempfile::TempDir,
    name: String,
    image: String,
}

impl Deploy {
    /// `big`: add a 70 MB file to the photos (more than the /tmp tmpfs).
    fn new(big: bool) -> Deploy {
        let image = built_image("OMK_TEST_IMAGE_OMK_BACKUP");
        let proxy_image = built_image("OMK_TEST_IMAGE_PROXY");
        let dir = tempfile::Builder::new()
            .prefix("omk-it-deploy-")
            .tempdir()
            .unwrap();
        let name = format!("omk-it-deploy-{}", unique());
        let d = Deploy { dir, name, image };
        chmod(d.dir.path(), "0755");
        for sub in ["cfg/schedules", "repo", "photos/small", "vw", "secrets"] {
            std::fs::create_dir_all(d.path(sub)).unwrap();
        }
        chown(&d.path("repo"));
        std::fs::write(
            d.path("secrets/restic_password"),
            format!("pw-{}\n", unique()),
        )
        .unwrap();
        std::fs::write(d.path("secrets/immich_db_password"), "unused\n").unwrap();
        for f in ["restic_password", "immich_db_password"] {
            let p = d.path(&format!("secrets/{f}"));
            chown(&p);
            chmod(&p, "0400");
        }
        d.write_data(big);
        d.start_proxy(&proxy_image);
        std::fs::write(d.path("override.yaml"), d.override_yaml()).unwrap();
        d
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write_data(&self, big: bool) {
        std::fs::write(self.path("photos/small/a.txt"), "photo a\n").unwrap();
        if !big {
            return;
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut big = Vec::with_capacity(70 << 20);
        while big.len() < 70 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            big.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(self.path("photos/big.raw"), big).unwrap();
    }

    /// The harness's haproxy config, listening on the container's network instead of
    /// the host's loopback, as `cetusguard` on a network of our own.
    fn start_proxy(&self, proxy_image: &str) {
        let cfg = std::fs::read_to_string(repo_file("tests/proxy/haproxy.cfg")).unwrap();
        assert_eq!(cfg.matches("bind 127.0.0.1:2375").count(), 1, "{cfg}");
        std::fs::write(
            self.path("haproxy.cfg"),
            cfg.replace("bind 127.0.0.1:2375", "bind :2375"),
        )
        .unwrap();
        docker_ok(&["network", "create", "--label", "omk-it=1", &self.name]);
        // Traefik's network in compose.yaml (the dashboard's way in): one of our own.
        docker_ok(&[
            "network",
            "create",
            "--internal",
            "--label",
            "omk-it=1",
            &format!("{}-ingress", self.name),
        ]);
        let socket = need("OMK_TEST_DOCKER_SOCKET");
        let socket = socket.trim_start_matches("unix://");
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &format!("{}-proxy", self.name),
            "--label",
            "omk-it=1",
            "--network",
            &self.name,
            "--network-alias",
            "cetusguard",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges:true",
            "-v",
            &format!("{socket}:/var/run/docker.sock"),
            "-v",
            &format!(
                "{}:/etc/haproxy/haproxy.cfg:ro",
                self.path("haproxy.cfg").display()
            ),
            proxy_image,
        ]);
    }

    /// Points what compose.yaml takes from the host at this test's folders. Nothing
    /// else: the service's settings are the file's own.
    fn override_yaml(&self) -> String {
        let d = self.dir.path().display();
        format!(
            "services:\n  omk-backup:\n    container_name: {n}\n    volumes:\n      - {d}/cfg:/etc/omk-backup:ro\n      - {d}/repo:/repo\n      - {d}/photos:/srv/photos:ro\n      - {d}/vw:/var/lib/docker/volumes/vaultwarden_data/_data:ro\nnetworks:\n  vnet-socket:\n    name: {n}\n    external: true\n  ingress:\n    name: {n}-ingress\n    external: true\nsecrets:\n  restic_password:\n    file: {d}/secrets/restic_password\n  immich_db_password:\n    file: {d}/secrets/immich_db_password\n",
            n = self.name
        )
    }

    /// `docker-compose -p NAME -f deploy/compose.yaml [-f override.yaml] ARGS`.
    fn compose(&self, with_override: bool, args: &[&str]) -> Run {
        let mut c = Command::new("docker-compose");
        c.arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(repo_file("deploy/compose.yaml"));
        if with_override {
            c.arg("-f").arg(self.path("override.yaml"));
        }
        c.args(args)
            .env("DOCKER_HOST", need("OMK_TEST_DOCKER_SOCKET"))
            .env("PUID", PUID)
            .env("DOMAINNAME", "omk-it.invalid")
            .env("PGID", PUID)
            .env("OMK_BACKUP_IMAGE", &self.image)
            .stdin(Stdio::null());
        Run::from_output(
            c.output()
                .expect("docker-compose (installed by scripts/setup-test-env.sh)"),
        )
    }

    /// `docker exec NAME omk-backup ARGS` (the CLI inside the running service).
    fn omk(&self, args: &[&str]) -> Run {
        let mut a = vec!["exec", &self.name, "omk-backup"];
        a.extend_from_slice(args);
        Run::from_output(docker(&a))
    }

    fn inspect(&self) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&docker_ok(&["inspect", &self.name])).unwrap();
        v[0].clone()
    }

    /// The catalog on the state volume, read from the host while the daemon may write.
    /// The state volume's folder on the host.
    fn state_volume(&self) -> PathBuf {
        let vol = format!("{}_omk_backup_state", self.name);
        PathBuf::from(docker_ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            &vol,
        ]))
    }

    fn sql(&self, query: &str) -> String {
        let mp = self.state_volume().display().to_string();
        let out = Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(format!("{mp}/catalog.db"))
            .arg(query)
            .output()
            .expect("sqlite3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn logs(&self) -> String {
        let o = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// The example config up to its `[notify]` section (no egress here), plus `extra`.
    fn write_config(&self, extra: &str, edits: &[(&str, &str)], cron: &str) {
        let example = std::fs::read_to_string(repo_file("deploy/omk-backup.example.toml")).unwrap();
        let (head, _) = example
            .split_once("[notify]")
            .expect("[notify] in the example config");
        assert!(head.contains("work_dir = \"/var/lib/omk-backup/"), "{head}");
        let mut text = format!("{head}[docker]\ndiscover = false\n\n{extra}");
        for (from, to) in edits {
            assert!(text.contains(from), "{from} not in {text}");
            text = text.replace(from, to);
        }
        std::fs::write(self.path("cfg/omk-backup.toml"), text).unwrap();
        std::fs::write(self.path("cfg/schedules/test.cron"), cron).unwrap();
    }
}

impl Drop for Deploy {
    fn drop(&mut self) {
        let _ = self.compose(true, &["down", "-v", "-t", "5"]);
        let _ = docker(&["rm", "-f", &format!("{}-proxy", self.name)]);
        let _ = docker(&["rm", "-f", &format!("{}-rest", self.name)]);
        let _ = docker(&["network", "rm", &self.name]);
        let _ = docker(&["network", "rm", &format!("{}-ingress", self.name)]);
    }
}

fn chown(p: &Path) {
    let st = Command::new("chown")
        .arg(format!("{PUID}:{PUID}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn chmod(p: &Path, mode: &str) {
    assert!(
        Command::new("chmod")
            .arg(mode)
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

/// The container runs with every setting compose.yaml gives it.
fn assert_hardened(d: &Deploy) {
    let i = d.inspect();
    let h = &i["HostConfig"];
    assert_eq!(h["ReadonlyRootfs"], true, "{h}");
    assert_eq!(h["CapDrop"], serde_json::json!(["ALL"]), "{h}");
    assert_eq!(
        h["SecurityOpt"],
        serde_json::json!(["no-new-privileges:true"]),
        "{h}"
    );
    assert_eq!(h["Init"], true, "{h}");
    assert_eq!(h["Memory"], 512 << 20, "{h}");
    assert_eq!(h["NanoCpus"], 1_000_000_000, "{h}");
    assert_eq!(h["PidsLimit"], 64, "{h}");
    assert!(
        h["Tmpfs"]["/tmp"].as_str().unwrap().contains("size=64m"),
        "{h}"
    );
    assert_eq!(i["Config"]["User"], format!("{PUID}:{PUID}"));
    assert_eq!(i["Config"]["StopTimeout"], 30);
    let mut nets: Vec<&String> = i["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    nets.sort();
    let ingress = format!("{}-ingress", d.name);
    assert_eq!(
        nets,
        [&d.name, &ingress],
        "only the socket-proxy network and Traefik's (for the dashboard)"
    );
    assert_eq!(
        i["Config"]["Hostname"], "omk-backup",
        "a fixed restic --host"
    );
    let mounts = i["Mounts"].as_array().unwrap();
    let dest = |p: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == p)
            .unwrap_or_else(|| panic!("no mount at {p}: {mounts:?}"))
    };
    assert_eq!(dest("/var/lib/omk-backup")["Type"], "volume");
    assert_eq!(dest("/cache")["Type"], "volume");
    assert_eq!(dest("/etc/omk-backup")["RW"], false);
    assert_eq!(dest("/srv/photos")["RW"], false);
    assert_eq!(dest("/run/secrets/restic_password")["Type"], "bind");
    let env = i["Config"]["Env"].to_string();
    assert!(env.contains("DOCKER_HOST=tcp://cetusguard:2375"), "{env}");
}

/// Wait for `f`, checking every 250 ms (each check runs `docker`).
#[track_caller]
fn poll(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The image's healthcheck command, run the way Docker runs it.
fn healthcheck(d: &Deploy) -> Run {
    let test = d.inspect()["Config"]["Healthcheck"]["Test"].clone();
    let argv: Vec<String> = test
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(argv[0], "CMD", "{test}");
    assert_eq!(argv[1], "omk-backup", "{test}");
    let mut a = vec!["exec".to_string(), d.name.clone()];
    a.extend(argv[1..].iter().cloned());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    Run::from_output(docker(&a))
}

#[test]
fn compose_deployment_backs_up_restore_tests_stops_cleanly_and_keeps_its_catalog() {
    let d = Deploy::new(true);
    let pg = postgres(&format!("pgpw-{}", unique()));
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 1000);\"");
    let app = sqlite();
    let jobs = format!(
        "[jobs.photos]\nkind = \"files\"\npaths = [\"/srv/photos\"]\n\n[jobs.db]\nkind = \"postgres\"\ncontainer = \"{}\"\nprobes = [{{ sql = \"SELECT count(*) FROM t\", expect = \"1000\", database = \"app\" }}]\n\n[jobs.slow]\nkind = \"files\"\npaths = [\"/srv/photos/small\"]\nquiesce = {{ container = \"{}\", mode = \"pause\" }}\n",
        pg.name, app.name
    );
    d.write_config(&jobs, &[], "0 0 1 1 * backup\n");

    // The file as written validates, and so does it with the override.
    d.compose(false, &["config", "-q"]).ok();
    d.compose(true, &["config", "-q"]).ok();
    d.compose(true, &["up", "-d"]).ok();
    assert_hardened(&d);
    poll(60, "the healthcheck command to pass", || {
        healthcheck(&d).code == 0
    });
    poll(30, "the daemon's start line", || {
        d.logs().contains("daemon started")
    });

    backup_and_restore_test(&d);
    interrupted_by_docker_stop(&d, &app, &jobs);

    // Recreated from the same file: the catalog volume still has every run.
    let runs_before = d.sql("SELECT id || ' ' || command || ' ' || status FROM runs ORDER BY id");
    let kinds: Vec<&str> = runs_before
        .lines()
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(
        kinds,
        [
            "backup success",
            "restore-test success",
            "backup interrupted"
        ],
        "{runs_before}"
    );
    let old_id = d.inspect()["Id"].clone();
    d.write_config(&jobs, &[], "0 0 1 1 * backup\n");
    d.compose(true, &["up", "-d", "--force-recreate"]).ok();
    assert_ne!(d.inspect()["Id"], old_id, "the container was not recreated");
    poll(60, "the healthcheck after recreate", || {
        healthcheck(&d).code == 0
    });
    assert_eq!(
        d.sql("SELECT id || ' ' || command || ' ' || status FROM runs ORDER BY id"),
        runs_before
    );
    let snaps = d.omk(&["--json", "snapshots"]).ok();
    for job in ["photos", "db"] {
        assert!(
            snaps.stdout.contains(&format!("\"{job}\"")),
            "{}",
            snaps.stdout
        );
    }
}

/// Backups and restore tests from inside the container, through the proxy (the
/// Postgres dump by exec, its scratch container created there).
fn backup_and_restore_test(d: &Deploy) {
    let r = d.omk(&["--json", "backup", "--init", "photos", "db"]).ok();
    let v = r.json();
    let jobs: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["photos", "db"], "{v}");
    assert!(
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["snapshot_id"].is_string()),
        "{v}"
    );
    let r = d.omk(&["--json", "restore-test", "photos", "db"]);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), d.logs());
    let report = r.json();
    let tests = report["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2, "{report}");
    assert!(tests.iter().all(|t| t["passed"] == true), "{report}");
    let leftovers = docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        "label=omk-backup.scratch=1",
        "--filter",
        "name=omk-restore-db",
    ]);
    assert_eq!(leftovers, "", "scratch containers left behind");
    // The files job was restored on the state volume ([restore_test] work_dir of the
    // example config), not in the 64 MB /tmp, and its scratch folder is gone.
    let work = d.state_volume().join("restore-test");
    assert!(work.is_dir(), "{} missing", work.display());
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "scratch left in {}",
        work.display()
    );
    // The repository password is in no log and no container setting.
    let pw = std::fs::read_to_string(d.path("secrets/restic_password")).unwrap();
    let pw = pw.trim();
    assert!(!d.logs().contains(pw), "password in docker logs");
    assert!(
        !d.inspect().to_string().contains(pw),
        "password in docker inspect"
    );
}

/// A scheduled backup (the daemon's own) is in flight with its container paused when
/// `docker stop` comes: it is recorded `interrupted`, the container resumed, and the
/// daemon exits 0 well within the 30 s grace period.
fn interrupted_by_docker_stop(d: &Deploy, app: &Container, jobs: &str) {
    // restic asks for the password first: this one takes 40 s.
    d.write_config(
        jobs,
        &[(
            "password_file = \"/run/secrets/restic_password\"",
            "password_command = \"sh -c 'sleep 40; cat /run/secrets/restic_password'\"",
        )],
        "* * * * * backup slow\n",
    );
    docker_ok(&["kill", "-s", "HUP", &d.name]);
    poll(90, "the scheduled backup to pause its container", || {
        app.status() == "paused"
            && d.sql("SELECT count(*) FROM runs WHERE status = 'running'") == "1"
    });
    let t0 = Instant::now();
    docker_ok(&["stop", &d.name]);
    let took = t0.elapsed();
    eprintln!("docker stop during a backup took {took:?}");
    let state = &d.inspect()["State"];
    assert_eq!(state["ExitCode"], 0, "{state}\n{}", d.logs());
    assert!(took < Duration::from_secs(15), "docker stop took {took:?}");
    assert_eq!(
        app.status(),
        "running",
        "the paused container was not resumed"
    );
    assert_eq!(
        d.sql("SELECT trigger || ' ' || status FROM runs WHERE status NOT IN ('success') ORDER BY started_at DESC LIMIT 1"),
        "daemon interrupted",
        "{}",
        d.logs()
    );
    assert!(d.logs().contains("recorded as interrupted"), "{}", d.logs());
}

/// A remote repository, as docs/deploy.md says to set one up: `url = "rest:..."` (the
/// credentials in the URL reach restic in its environment), served by `rclone serve
/// restic` from the same image on the test's one network (a deployment would reach it over
/// an egress network of its own). Backup and restore test work from
/// inside the container, nothing lands in the local `/repo`, the REST password shows in
/// no log or container setting of the service.
#[test]
fn compose_deployment_with_a_rest_repository_backs_up_and_restore_tests() {
    let d = Deploy::new(false);
    std::fs::create_dir_all(d.path("rest")).unwrap();
    chown(&d.path("rest"));
    let pass = format!("rest-{}", unique());
    let rest = format!("{}-rest", d.name);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &rest,
        "--label",
        "omk-it=1",
        "--network",
        &d.name,
        "--network-alias",
        "rest-server",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--user",
        "1000:1000",
        "-v",
        &format!("{}:/data", d.path("rest").display()),
        "--entrypoint",
        "rclone",
        &d.image,
        "serve",
        "restic",
        "--addr",
        ":8000",
        "--user",
        "omk",
        "--pass",
        &pass,
        "/data",
    ]);
    poll(30, "rclone's REST server", || {
        let o = docker(&["logs", &rest]);
        String::from_utf8_lossy(&o.stderr).contains("Serving restic REST API")
    });
    let url = format!("url = \"rest:http://omk:{pass}@rest-server:8000/\"");
    d.write_config(
        "[jobs.photos]\nkind = \"files\"\npaths = [\"/srv/photos\"]\n",
        &[("url = \"/repo\"", &url)],
        "0 0 1 1 * backup\n",
    );
    d.compose(true, &["up", "-d"]).ok();
    poll(60, "the healthcheck command to pass", || {
        healthcheck(&d).code == 0
    });
    let r = d.omk(&["--json", "backup", "--init"]);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), d.logs());
    let r = d.omk(&["--json", "restore-test"]);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), d.logs());
    let report = r.json();
    assert_eq!(report["tests"][0]["job"], "photos", "{report}");
    assert_eq!(report["tests"][0]["passed"], true, "{report}");
    assert!(
        d.path("rest/config").is_file(),
        "no repository on the REST server"
    );
    assert!(d.path("rest/snapshots").read_dir().unwrap().count() >= 1);
    assert_eq!(
        d.path("repo").read_dir().unwrap().count(),
        0,
        "local /repo used"
    );
    assert!(!d.logs().contains(&pass), "REST password in docker logs");
    assert!(
        !d.inspect().to_string().contains(&pass),
        "REST password in docker inspect"
    );
}
