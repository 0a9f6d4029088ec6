//! The dashboard over real HTTP: the real binary serving a catalog made by real backups
//! and restore tests with real restic. Auth rules (trusted proxy headers, basic auth,
//! CSRF, same origin), no secret in any answer, `/metrics` through `promtool`, and an
//! exposed listen without authentication refused at start.

use crate::util::*;
use crate::web_http::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;

fn assert_security_headers(a: &Answer, path: &str) {
    let csp = a.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: CSP {csp}");
    assert!(
        !csp.contains("script-src 'unsafe-inline'"),
        "{path}: CSP {csp}"
    );
    assert_eq!(
        a.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{path}"
    );
    assert_eq!(
        a.header("referrer-policy").as_deref(),
        Some("same-origin"),
        "{path}"
    );
    assert_eq!(
        a.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{path}"
    );
}

/// Every page and API answer of the read-only view, with its security headers, without
/// the repository password anywhere; the API's status is `status --json`'s; `/metrics`
/// passes `promtool check metrics`.
#[test]
fn web_pages_api_metrics_and_no_secret() {
    let env = env_with_history();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Server::start(&env, &["web", "--listen", &addr.to_string()], addr);
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let snap = env.run(&["--json", "snapshots"]).ok().json()[0]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let paths = [
        "/",
        "/jobs/files1",
        "/live",
        "/reports",
        &format!("/reports/{month}"),
        "/api/status",
        "/api/jobs/files1",
        "/api/runs?job=files1&limit=5",
        "/api/runs",
        "/metrics",
        "/assets/style.css",
        "/assets/live.js",
    ];
    let mut answers = Vec::new();
    for p in paths {
        let a = get(addr, p);
        assert_eq!(a.status, 200, "{p}: {a:?}\n{}", server.log());
        assert_security_headers(&a, p);
        assert!(
            !a.head.contains(&env.password) && !a.body.contains(&env.password),
            "{p} shows the repository password"
        );
        answers.push((p.to_string(), a));
    }
    let body = |p: &str| &answers.iter().find(|x| x.0 == p).unwrap().1.body;
    // Overview: the job, linked, with its verified restore.
    assert!(body("/").contains("href=\"/jobs/files1\""), "{}", body("/"));
    assert!(body("/").contains("pill good"), "{}", body("/"));
    // Job page: restore-test checks, the exact restore command, charts, runs.
    let job = body("/jobs/files1");
    assert!(job.contains("<svg"), "no chart: {job}");
    assert!(job.contains("passed"), "{job}");
    assert!(
        job.contains(&format!("restore {snap} --job files1 --target")),
        "no restore command for {snap}: {job}"
    );
    let api_job: serde_json::Value = serde_json::from_str(body("/api/jobs/files1")).unwrap();
    let checks = api_job["restore_tests"][0]["checks"].as_array().unwrap();
    assert!(!checks.is_empty(), "{api_job}");
    for c in checks {
        assert!(
            job.contains(c["name"].as_str().unwrap()),
            "check {} not on the page",
            c["name"]
        );
    }
    assert_status_is_cli(&env, body("/api/status"));
    let runs: serde_json::Value =
        serde_json::from_str(body("/api/runs?job=files1&limit=5")).unwrap();
    let cmds: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert!(
        cmds.contains(&"backup") && cmds.contains(&"restore-test"),
        "{runs}"
    );
    // The report is the self-contained HTML report.
    assert!(body(&format!("/reports/{month}")).contains(&month));
    assert_metrics(body("/metrics"));
    assert_hostile_input_refused(addr);
}

/// `/api/status` is `omk-backup status --json` (but for the RPO, which ages meanwhile).
fn assert_status_is_cli(env: &Env, api: &str) {
    let cli = env.run(&["--json", "status"]).ok().json();
    let mut api: serde_json::Value = serde_json::from_str(api).unwrap();
    let mut cli2 = cli.clone();
    for v in [&mut api, &mut cli2] {
        for j in v["jobs"].as_array_mut().unwrap() {
            j["rpo_seconds"] = serde_json::Value::Null; // time passes between the two
        }
    }
    assert_eq!(api, cli2);
}

/// The proof series are there, and promtool accepts the exposition.
fn assert_metrics(m: &str) {
    // /metrics: the proof series, and promtool accepts it.
    for s in [
        "omk_backup_last_rto_seconds{job=\"files1\"}",
        "omk_backup_encryption_proof_age_seconds ",
        "omk_backup_check_coverage_ratio ",
        "omk_backup_repository_check_failed 0",
        "omk_backup_last_success_timestamp_seconds{job=\"files1\"}",
    ] {
        assert!(m.contains(s), "/metrics lacks {s}:\n{m}");
    }
    let mut p = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, installed by scripts/setup-test-env.sh)");
    p.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unknown jobs are 404, bad query values 400, no POST on a read-only view.
fn assert_hostile_input_refused(addr: SocketAddr) {
    // Hostile input: unknown jobs are 404, bad query values 400, no POST on a read-only view.
    assert_eq!(get(addr, "/jobs/nope").status, 404);
    assert_eq!(get(addr, "/jobs/..%2F..%2Fetc").status, 404);
    assert_eq!(get(addr, "/api/jobs/nope").status, 404);
    assert_eq!(get(addr, "/api/runs?limit=abc").status, 400);
    assert_eq!(get(addr, "/api/runs?job=nope%0A").status, 404);
    assert_eq!(get(addr, "/reports/../../x").status, 404);
    let page = get(addr, "/jobs/files1").body;
    assert!(
        !page.contains("name=\"csrf\""),
        "the read-only view offers actions"
    );
    let a = http(
        "127.0.0.1",
        addr,
        "POST",
        "/api/backup/files1",
        &[("Origin", &format!("http://{addr}"))],
        "",
    );
    assert_eq!(a.status, 403, "{a:?}");
}

fn daemon_config(env: &Env, web: &str) {
    std::fs::create_dir_all(env.path("schedules")).unwrap();
    // A line that is never due during the test: the daemon only runs what we ask.
    std::fs::write(env.path("schedules/web.cron"), "0 0 1 1 * check\n").unwrap();
    env.write_config(&format!(
        "[schedule]\nfiles = [\"schedules/*.cron\"]\n\n[web]\n{web}\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n"
    ));
}

fn backups(addr: SocketAddr, src: &str, headers: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let a = http(
        src,
        addr,
        "GET",
        "/api/runs?job=files1&limit=100",
        headers,
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["command"] == "backup")
        .cloned()
        .collect()
}

/// Behind a trusted proxy with an actions group and a password: Remote-User from an
/// untrusted address is ignored; a POST without the token, or from a foreign origin, or
/// by someone outside the group, is 403; the proxy's admin queues a backup that runs.
#[test]
fn web_actions_need_proxy_group_csrf_and_same_origin() {
    let env = env_with_history();
    let web_pw = format!("webpw-{}", unique());
    std::fs::write(env.path("webpw"), format!("{web_pw}\n")).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    daemon_config(
        &env,
        &format!(
            "listen = \"{addr}\"\nactions = true\nactions_group = \"admins\"\ntrusted_proxies = [\"127.0.0.2/32\"]\npassword_file = \"webpw\"\n"
        ),
    );
    let server = Server::start(&env, &["daemon"], addr);
    let basic = assert_forged_headers_ignored(addr, &web_pw);
    // The proxy's admin sees the actions.
    let proxy = "127.0.0.2";
    let admin = [("Remote-User", "alice"), ("Remote-Groups", "users,admins")];
    let page = http(proxy, addr, "GET", "/jobs/files1", &admin, "");
    assert_eq!(page.status, 200, "{page:?}\n{}", server.log());
    assert!(
        page.body.contains("signed in as <strong>alice</strong>"),
        "{}",
        page.body
    );
    let token = csrf_of(&page.body);
    for answer in [&page.body, &page.head] {
        assert!(!answer.contains(&web_pw) && !answer.contains(&env.password));
    }
    let origin = format!("http://{addr}");
    let before = backups(addr, proxy, &admin).len();
    let origin_s: &'static str = Box::leak(origin.clone().into_boxed_str());
    let form = format!("csrf={token}");
    assert_refused_posts(addr, &admin, &basic, origin_s, &form);
    assert_eq!(
        backups(addr, proxy, &admin).len(),
        before,
        "a refused POST ran something"
    );
    let with = |k: &'static str, v: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![admin[0], admin[1], (k, v)]
    };
    let post = |src: &str, hs: &[(&str, &str)], body: &str| {
        http(src, addr, "POST", "/api/backup/files1", hs, body)
    };
    // The admin, same origin, with the token: queued, and it runs.
    let a = post(proxy, &with("Origin", origin_s), &form);
    assert_eq!(a.status, 202, "{a:?}\n{}", server.log());
    assert!(a.body.contains("backup files1"), "{a:?}");
    wait_until(120, "the queued backup to finish", || {
        let b = backups(addr, proxy, &admin);
        b.len() > before && b[0]["status"] == "success"
    });
    assert!(
        server.log().contains("dashboard: `backup files1` queued"),
        "{}",
        server.log()
    );
}

/// From 127.0.0.1 (not a trusted proxy) Remote-User counts for nothing: the password is
/// still needed, and with it the forged user is neither shown nor allowed to act.
fn assert_forged_headers_ignored(addr: SocketAddr, web_pw: &str) -> String {
    let forged = [("Remote-User", "mallory"), ("Remote-Groups", "admins")];
    // From 127.0.0.1 (not a trusted proxy) the headers count for nothing: password needed.
    let a = http("127.0.0.1", addr, "GET", "/", &forged, "");
    assert_eq!(a.status, 401, "{a:?}");
    assert!(
        a.header("www-authenticate")
            .unwrap_or_default()
            .starts_with("Basic")
    );
    let wrong = format!("Basic {}", b64(&format!("x:{web_pw}-not")));
    assert_eq!(
        http(
            "127.0.0.1",
            addr,
            "GET",
            "/",
            &[("Authorization", &wrong)],
            ""
        )
        .status,
        401
    );
    let basic = format!("Basic {}", b64(&format!("anyone:{web_pw}")));
    let mut h = forged.to_vec();
    h.push(("Authorization", &basic));
    let a = http("127.0.0.1", addr, "GET", "/jobs/files1", &h, "");
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        !a.body.contains("mallory"),
        "a forged Remote-User was believed"
    );
    assert!(
        !a.body.contains("name=\"csrf\""),
        "actions offered outside the group"
    );
    basic
}

/// POSTs without the token, with a wrong one, from a foreign origin or a cross-site
/// fetch, from outside the actions group, or for an unknown job: all refused.
fn assert_refused_posts(
    addr: SocketAddr,
    admin: &[(&'static str, &'static str); 2],
    basic: &str,
    origin_s: &'static str,
    form: &str,
) {
    let proxy = "127.0.0.2";
    let origin = origin_s;
    let post = |src: &str, hs: &[(&str, &str)], body: &str| {
        http(src, addr, "POST", "/api/backup/files1", hs, body)
    };
    let with = |k: &'static str, v: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![admin[0], admin[1], (k, v)]
    };
    // No token: 403.
    let a = post(proxy, &with("Origin", origin_s), "");
    assert_eq!(a.status, 403, "{a:?}");
    let a = post(proxy, &with("Origin", origin_s), "csrf=0000");
    assert_eq!(a.status, 403, "{a:?}");
    // Foreign origin, with the token: 403. No Origin and a cross-site fetch: 403.
    let a = post(proxy, &with("Origin", "https://evil.example"), form);
    assert_eq!(a.status, 403, "{a:?}");
    let a = post(proxy, &with("Sec-Fetch-Site", "cross-site"), form);
    assert_eq!(a.status, 403, "{a:?}");
    // Outside the group (even with the password): 403.
    let a = post(
        "127.0.0.1",
        &[("Authorization", basic), ("Origin", origin)],
        form,
    );
    assert_eq!(a.status, 403, "{a:?}");
    let users = [
        ("Remote-User", "bob"),
        ("Remote-Groups", "users"),
        ("Origin", origin),
    ];
    let a = post(proxy, &users, form);
    assert_eq!(a.status, 403, "{a:?}");
    // Unknown job: 404 even for the admin.
    let a = http(
        proxy,
        addr,
        "POST",
        "/api/backup/nope",
        &with("Origin", origin_s),
        form,
    );
    assert_eq!(a.status, 404, "{a:?}");
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A non-loopback listen with neither a trusted proxy nor a password is refused at
/// start, by `web` and by the daemon; with a password it starts.
#[test]
fn web_refuses_exposed_listen_without_auth() {
    let restic = restics().pop().unwrap().1;
    let env = Env::new(&restic);
    let port = free_port();
    daemon_config(&env, &format!("listen = \"0.0.0.0:{port}\"\n"));
    for args in [&["web"][..], &["daemon"][..]] {
        let r = env.run(args).code(2);
        assert!(
            r.stderr
                .contains("refusing to serve the dashboard on 0.0.0.0:")
                && r.stderr.contains("[web] trusted_proxies")
                && r.stderr.contains("[web] password_file"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = env
        .run(&["web", "--listen", &format!("[::]:{port}")])
        .code(2);
    assert!(r.stderr.contains("refusing"), "{}", r.stderr);
    // A bad [web] value is a config error with its place.
    daemon_config(&env, "trusted_proxies = [\"172.20.0.0/99\"]\n");
    let r = env.run(&["web"]).code(2);
    assert!(
        r.stderr.contains("omk.toml:") && r.stderr.contains("web.trusted_proxies: `172.20.0.0/99`"),
        "{}",
        r.stderr
    );
    // With a password, the exposed listen starts and asks for it.
    std::fs::write(env.path("webpw"), "secret-web\n").unwrap();
    daemon_config(
        &env,
        &format!("listen = \"0.0.0.0:{port}\"\npassword_file = \"webpw\"\n"),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _server = Server::start(&env, &["web"], addr);
    assert_eq!(get(addr, "/").status, 401);
}

/// With a trusted proxy and no password: only the proxy's requests with a Remote-User
/// get in; a forged Remote-User from another peer, or a proxy request without one, is 403.
#[test]
fn web_trusts_remote_user_only_from_the_proxy() {
    let env = env_with_history();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    daemon_config(
        &env,
        &format!("listen = \"{addr}\"\ntrusted_proxies = [\"127.0.0.2\"]\n"),
    );
    let _server = Server::start(&env, &["web"], addr);
    let user = [("Remote-User", "carol"), ("Remote-Groups", "admins")];
    let a = http("127.0.0.1", addr, "GET", "/", &user, "");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(!a.body.contains("carol"));
    let a = http("127.0.0.2", addr, "GET", "/", &[], "");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("no Remote-User"), "{a:?}");
    let a = http("127.0.0.2", addr, "GET", "/", &user, "");
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.contains("signed in as <strong>carol</strong>"));
    assert!(
        !a.body.contains("name=\"csrf\""),
        "the read-only view offers actions"
    );
    // /healthz stays open for the container's health check.
    assert_eq!(get(addr, "/healthz").status, 200);
}
