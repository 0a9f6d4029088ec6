//! The dashboard in a real browser: Debian's chromium driven by chromium-driver over
//! WebDriver (a small client here, plain HTTP + JSON). Loads the overview, follows the
//! job link, reads the restore-test checks, clicks "Back up now" with actions on and
//! sees the run appear. Screenshots go to target/test-artifacts/.

use crate::util::*;
use crate::web_http::{Server, env_with_history, free_port};
use base64::Engine as _;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The W3C WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Driver {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("chromedriver");
        s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        // chromedriver keeps the connection open: read the head, then Content-Length bytes.
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let (head, mut body) = loop {
            let n = s.read(&mut buf).expect("read from chromedriver");
            assert!(
                n > 0,
                "chromedriver closed the connection: {}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break (
                    String::from_utf8_lossy(&raw[..i]).into_owned(),
                    raw[i + 4..].to_vec(),
                );
            }
        };
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no Content-Length from chromedriver: {head}"));
        while body.len() < len {
            let n = s.read(&mut buf).expect("read from chromedriver");
            assert!(n > 0, "chromedriver closed the connection early");
            body.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let rest = text.as_str();
        let v: Value = serde_json::from_str(rest)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: bad JSON ({e}): {text}"));
        if let Some(err) = v["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {err}: {}",
                v["value"]["message"]
            );
        }
        v["value"].clone()
    }

    fn start(dir: &std::path::Path) -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver (Debian's chromium-driver, installed by scripts/setup-test-env.sh)",
            );
        let mut d = Driver {
            child,
            port,
            session: String::new(),
        };
        wait_until(60, "chromedriver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", format!("--user-data-dir={}", dir.display())]
            }
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().expect("a session id").to_string();
        d
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.call(
            "POST",
            &self.s("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_string())
            .collect()
    }

    fn find(&self, css: &str) -> String {
        self.find_all(css)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element {css} on {}", self.url()))
    }

    fn text(&self, el: &str) -> String {
        self.call("GET", &self.s(&format!("/element/{el}/text")), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn click(&self, el: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{el}/click")),
            Some(json!({})),
        );
    }

    fn screenshot(&self, name: &str) {
        let v = self.call("GET", &self.s("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let s = self.s("");
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &s, None)
            }));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn web_in_a_real_browser() {
    let env = env_with_history();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::create_dir_all(env.path("schedules")).unwrap();
    std::fs::write(env.path("schedules/web.cron"), "0 0 1 1 * check\n").unwrap();
    env.write_config(&format!(
        "[schedule]\nfiles = [\"schedules/*.cron\"]\n\n[web]\nlisten = \"{addr}\"\nactions = true\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n"
    ));
    let server = Server::start(&env, &["daemon"], addr);
    let d = Driver::start(&env.path("chromium-profile"));
    let base = format!("http://{addr}");
    d.go(&format!("{base}/"));
    let link = d.find("a.job");
    assert_eq!(d.text(&link), "files1");
    d.screenshot("web-overview");
    d.click(&link);
    wait_until(30, "the job page", || d.url().ends_with("/jobs/files1"));
    // The restore test's checks, as the browser renders them.
    let names: Vec<String> = d
        .find_all("table.checks td:first-child")
        .iter()
        .map(|e| d.text(e))
        .collect();
    let results: Vec<String> = d
        .find_all("table.checks td:nth-child(2)")
        .iter()
        .map(|e| d.text(e))
        .collect();
    assert!(!names.is_empty(), "no restore-test checks shown");
    assert!(
        results.iter().all(|r| r == "passed"),
        "{names:?} {results:?}"
    );
    d.screenshot("web-job");
    let runs_before = d.find_all("table.runs tbody tr").len();
    d.click(&d.find("#backup-now"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !d.url().ends_with("/live") {
        if std::time::Instant::now() > deadline {
            d.screenshot("web-after-click");
            panic!(
                "not on /live after the click: {} shows {}",
                d.url(),
                d.text(&d.find("body"))
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    d.screenshot("web-live");
    // The run appears on the job page once the daemon has run it.
    wait_until(120, "the new backup run on the job page", || {
        d.go(&format!("{base}/jobs/files1"));
        d.find_all("table.runs tbody tr").len() > runs_before
    });
    let first = d.find("table.runs tbody tr");
    let row = d.text(&first);
    assert!(row.contains("backup") && row.contains("cli"), "{row}");
    wait_until(120, "the new backup to succeed", || {
        d.go(&format!("{base}/jobs/files1"));
        d.text(&d.find("table.runs tbody tr"))
            .contains("backup success")
    });
    d.screenshot("web-job-after-backup");
    assert_live_follows_events(&d, addr);
    assert!(
        server.log().contains("dashboard: `backup files1` queued"),
        "{}",
        server.log()
    );
}

/// The live page follows the daemon by server-sent events, without a reload: a restore
/// test queued through the API shows up as running, then as done.
fn assert_live_follows_events(d: &Driver, addr: SocketAddr) {
    d.go(&format!("http://{addr}/live"));
    let running = d.find("#running");
    wait_until(60, "the live page to show nothing running", || {
        d.text(&running) == "nothing is running"
    });
    let page = crate::web_http::get(addr, "/jobs/files1").body;
    let token = crate::web_http::csrf_of(&page);
    let origin = format!("http://{addr}");
    let a = crate::web_http::http(
        "127.0.0.1",
        addr,
        "POST",
        "/api/restore-test/files1",
        &[("Origin", &origin), ("X-CSRF-Token", &token)],
        "",
    );
    assert_eq!(a.status, 202, "{a:?}");
    wait_until(
        120,
        "the live page to show the restore test running",
        || d.text(&running).starts_with("restore-test files1"),
    );
    d.screenshot("web-live-running");
    wait_until(300, "the live page to show the restore test done", || {
        d.text(&running) == "nothing is running"
    });
}
