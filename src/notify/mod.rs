//! Notifications: a healthchecks-style ping URL and a generic JSON webhook (ntfy,
//! Gotify, and the like). The only module that speaks HTTP.
//!
//! Invariants: a notifier never fails a task (every error is logged and dropped); each
//! attempt has a timeout and attempts are bounded (`retries`, short backoff); payloads
//! carry the task, job, status and a short reason — never a secret, a URL or a token;
//! target URLs (which may embed tokens) are logged by host only.

use crate::config::{Config, Notify};
use serde::Serialize;
use std::time::Duration;

/// The event being reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Start,
    Success,
    Fail,
}

/// The webhook's JSON body. Field names suit Gotify (`title`, `message`, `priority`)
/// and ntfy's JSON publishing (`topic`, `title`, `message`, `priority`, `tags`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub title: String,
    pub message: String,
    pub priority: u8,
    pub tags: Vec<String>,
    pub event: Kind,
    pub task: String,
    pub job: Option<String>,
    pub host: String,
}

/// Longest reason text sent anywhere.
const MAX_REASON: usize = 500;

/// A reason cut to size, with anything that looks like a URL's credentials removed.
pub fn short_reason(reason: &str) -> String {
    let mut s: String = reason
        .split_whitespace()
        .map(|w| match (w.find("://"), w.find('@')) {
            (Some(a), Some(b)) if b > a => format!("{}://***{}", &w[..a], &w[b..]),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

pub fn payload(
    n: &Notify,
    kind: Kind,
    task: &str,
    job: Option<&str>,
    reason: Option<&str>,
) -> Payload {
    let what = match job {
        Some(j) => format!("{task} {j}"),
        None => task.to_string(),
    };
    let (title, priority, tag) = match kind {
        Kind::Start => (format!("omk-backup: {what} started"), 2, "hourglass"),
        Kind::Success => (
            format!("omk-backup: {what} succeeded"),
            3,
            "white_check_mark",
        ),
        Kind::Fail => (format!("omk-backup: {what} FAILED"), 5, "warning"),
    };
    Payload {
        topic: n.topic.clone(),
        message: reason.map(short_reason).unwrap_or_else(|| title.clone()),
        title,
        priority,
        tags: vec![tag.into(), "omk-backup".into()],
        event: kind,
        task: task.to_string(),
        job: job.map(str::to_string),
        host: hostname(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `scheme://host[:port]` of a URL, for logs (the path may hold a token).
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(url)".into(),
    }
}

/// Notify the global targets (`job` None) or a job's own targets.
pub async fn send_all(
    config: &Config,
    job: Option<&str>,
    kind: Kind,
    task: &str,
    reason: Option<&str>,
) {
    let targets = match job {
        None => Some(&config.notify),
        Some(j) => config.jobs.get(j).and_then(|j| j.notify.as_ref()),
    };
    let Some(n) = targets.filter(|n| !n.is_empty()) else {
        return;
    };
    send(n, kind, task, job, reason).await;
}

/// Send one event to the targets of `n`. Never fails; problems are logged.
pub async fn send(n: &Notify, kind: Kind, task: &str, job: Option<&str>, reason: Option<&str>) {
    let client = match reqwest::Client::builder()
        .timeout(n.timeout)
        .connect_timeout(n.timeout)
        .user_agent(concat!("omk-backup/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("notification not sent: cannot set up the HTTP client: {e}");
            return;
        }
    };
    if let Some(url) = &n.ping_url {
        let base = url.trim_end_matches('/');
        let (target, body) = match kind {
            Kind::Start => (format!("{base}/start"), String::new()),
            Kind::Success => (base.to_string(), String::new()),
            Kind::Fail => (
                format!("{base}/fail"),
                reason.map(short_reason).unwrap_or_default(),
            ),
        };
        let req = || client.post(&target).body(body.clone());
        deliver("ping", &target, n, req).await;
    }
    if let Some(url) = &n.webhook
        && kind != Kind::Start
    {
        let p = payload(n, kind, task, job, reason);
        let token = n
            .webhook_token_file
            .as_ref()
            .and_then(|f| crate::secret::read_password_file(f).ok());
        let req = || {
            let r = client.post(url).json(&p);
            match &token {
                Some(t) => r.bearer_auth(t.expose()),
                None => r,
            }
        };
        deliver("webhook", url, n, req).await;
    }
}

/// Try a request up to 1 + retries times; 5xx, timeouts and connection errors are
/// retried after a short backoff, 4xx are not (the request itself is wrong).
async fn deliver(what: &str, url: &str, n: &Notify, req: impl Fn() -> reqwest::RequestBuilder) {
    let attempts = 1 + n.retries;
    for attempt in 1..=attempts {
        let why = match req().send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_client_error() => {
                tracing::warn!(
                    "{what} {} answered {}; not retrying (check the URL or token)",
                    redact(url),
                    r.status()
                );
                return;
            }
            Ok(r) => format!("answered {}", r.status()),
            Err(e) if e.is_timeout() => format!("timed out after {:?}", n.timeout),
            Err(e) if e.is_connect() => "cannot connect".to_string(),
            Err(e) => format!("failed: {}", without_url(&e)),
        };
        if attempt == attempts {
            tracing::warn!(
                "{what} {} {why}; gave up after {attempts} attempt(s) (the task's result is unaffected)",
                redact(url)
            );
            return;
        }
        tracing::info!("{what} {} {why}; retrying", redact(url));
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), &redact(u.as_str()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_and_carry_no_url_credentials() {
        let r = short_reason("cannot reach https://user:pw@nas.local/x: refused");
        assert_eq!(r, "cannot reach https://***@nas.local/x: refused");
        assert!(short_reason(&"é".repeat(600)).chars().count() <= MAX_REASON / 2 + 1);
    }

    #[test]
    fn redact_keeps_only_scheme_and_host() {
        assert_eq!(
            redact("https://hc-ping.com/0f3a-uuid"),
            "https://hc-ping.com/…"
        );
        assert_eq!(
            redact("http://u:p@host:8080/message?token=abc"),
            "http://host:8080/…"
        );
    }

    #[test]
    fn payload_fields() {
        let n = Notify {
            topic: Some("backups".into()),
            ..Default::default()
        };
        let p = payload(
            &n,
            Kind::Fail,
            "backup",
            Some("photos"),
            Some("restic exited 1"),
        );
        assert_eq!(p.title, "omk-backup: backup photos FAILED");
        assert_eq!(p.message, "restic exited 1");
        assert_eq!(p.priority, 5);
        assert_eq!(p.topic.as_deref(), Some("backups"));
    }
}
