//! Credentials inside repository URLs: the only module that knows how to hide them.
//!
//! A restic URL may carry secrets (`rest:https://user:pass@host/`, an `s3:` URL with
//! keys, `?access_key=...` query values). [`RepoUrl`] keeps the real text for the one
//! place that hands it to restic (its environment, never argv) and shows everyone else a
//! redacted form: `Display` and `Debug` print `user:***@host`, and [`RepoUrl::scrub`]
//! removes the secrets from any text that may echo them back (restic's stderr).

use std::fmt;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Query parameters whose values are secrets (matched case-insensitively as substrings).
const SECRET_PARAMS: &[&str] = &[
    "key",
    "secret",
    "token",
    "pass",
    "auth",
    "signature",
    "sig",
    "credential",
];

/// A repository URL whose credentials never reach a log, a message or the catalog.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    raw: String,
    shown: String,
    secrets: Vec<String>,
}

impl RepoUrl {
    pub fn new(raw: impl Into<String>) -> RepoUrl {
        let raw = raw.into();
        let (shown, secrets) = redact(&raw);
        RepoUrl {
            raw,
            shown,
            secrets,
        }
    }

    /// The real URL, credentials included: only for restic's environment and the
    /// (encrypted) recovery kit.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with credentials masked: for every message, log line, row and page.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Does the URL carry any credential?
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// `text` with every occurrence of the URL's secrets masked (restic may print the
    /// location it was given).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.raw, &self.shown);
        for s in &self.secrets {
            out = out.replace(s.as_str(), MASK);
        }
        out
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({:?})", self.shown)
    }
}

/// The redacted text and the secrets found (each also percent-decoded, when that
/// differs, since restic may print either).
fn redact(raw: &str) -> (String, Vec<String>) {
    let mut secrets = Vec::new();
    let Some(scheme_end) = raw.find("://") else {
        // `sftp:user@host:/path`, `rclone:remote:path`, a local path: no password
        // syntax exists there.
        return (raw.to_string(), secrets);
    };
    let auth_start = scheme_end + 3;
    let rest = &raw[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let mut shown = String::with_capacity(raw.len());
    shown.push_str(&raw[..auth_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, pass)) if !pass.is_empty() => {
                    push_secret(&mut secrets, pass);
                    shown.push_str(user);
                    shown.push(':');
                    shown.push_str(MASK);
                }
                Some(_) => shown.push_str(userinfo),
                // A lone user part may itself be a token (`https://TOKEN@host`).
                None if !userinfo.is_empty() => {
                    push_secret(&mut secrets, userinfo);
                    shown.push_str(MASK);
                }
                None => {}
            }
            shown.push_str(&authority[at..]);
        }
        None => shown.push_str(authority),
    }
    let tail = &rest[auth_len..];
    match tail.split_once('?') {
        Some((path, query)) => {
            shown.push_str(path);
            shown.push('?');
            let parts: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if is_secret_param(k) && !v.is_empty() => {
                        push_secret(&mut secrets, v);
                        format!("{k}={MASK}")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            shown.push_str(&parts.join("&"));
        }
        None => shown.push_str(tail),
    }
    (shown, secrets)
}

fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|p| n.contains(p))
}

fn push_secret(secrets: &mut Vec<String>, s: &str) {
    secrets.push(s.to_string());
    let decoded = percent_decode(s);
    if decoded != s {
        secrets.push(decoded);
    }
    // Longest first, so a secret containing another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
}

/// Percent-decoding of a URL's user or password (`%40` → `@`; a bad escape stays as is).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_never_splits_a_character() {
        assert_eq!(percent_decode("p%40ss"), "p@ss");
        assert_eq!(percent_decode("%4"), "%4");
        // `%a` then a two-byte character: no escape, and no panic on the char boundary.
        assert_eq!(percent_decode("p%aé"), "p%aé");
        assert_eq!(percent_decode("%zz%"), "%zz%");
    }

    #[test]
    fn masks_the_password_of_rest_urls() {
        let u = RepoUrl::new("rest:https://backup:s3cr%21t@nas.lan:8000/homelab");
        assert_eq!(u.shown(), "rest:https://backup:***@nas.lan:8000/homelab");
        assert_eq!(format!("{u}"), u.shown());
        assert!(!format!("{u:?}").contains("s3cr"));
        assert!(u.has_secrets());
        let echoed =
            "Fatal: unable to open rest:https://backup:s3cr%21t@nas.lan:8000/homelab: s3cr!t";
        let s = u.scrub(echoed);
        assert!(!s.contains("s3cr"), "{s}");
        assert!(s.contains("backup:***@nas.lan"), "{s}");
    }

    #[test]
    fn masks_a_lone_token_and_secret_query_values() {
        let u = RepoUrl::new("rest:https://tok3n@h/");
        assert_eq!(u.shown(), "rest:https://***@h/");
        let u = RepoUrl::new("s3:https://s3.lan/bucket?access_key=AK1&secret_key=SK2&region=x");
        assert_eq!(
            u.shown(),
            "s3:https://s3.lan/bucket?access_key=***&secret_key=***&region=x"
        );
        assert!(!u.scrub("AK1 SK2").contains("SK2"));
    }

    #[test]
    fn leaves_urls_without_credentials_alone() {
        for raw in [
            "/srv/restic/homelab",
            "sftp:backup@nas:/srv/restic",
            "rclone:remote:bucket/path",
            "rest:http://127.0.0.1:8000/",
            "s3:https://s3.lan/bucket",
            "rest:http://:@h/",
        ] {
            let u = RepoUrl::new(raw);
            assert_eq!(u.shown(), raw);
            assert_eq!(u.expose(), raw);
            assert_eq!(u.scrub("text"), "text");
        }
    }

    #[test]
    fn at_signs_in_the_path_are_not_credentials() {
        let u = RepoUrl::new("rest:https://u:p@h/a@b");
        assert_eq!(u.shown(), "rest:https://u:***@h/a@b");
    }
}
