//! Who is asking and may they: the TCP peer decides whether `Remote-User` and
//! `Remote-Groups` are believed (only from `[web] trusted_proxies`), HTTP basic auth
//! checks `[web] password_file` in constant time, every POST needs the page's CSRF
//! token and a same-origin `Origin`/`Sec-Fetch-Site`, and every answer carries the
//! security headers.

use super::State;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The longest header value we look at (user names, group lists).
const MAX_HEADER: usize = 1024;

/// The caller, as far as we can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// A person the trusted proxy authenticated.
    Proxy { user: String, groups: Vec<String> },
    /// The basic-auth password was right.
    Password,
    /// A local connection, no authentication configured.
    Local,
}

impl Identity {
    pub fn user(&self) -> Option<&str> {
        match self {
            Identity::Proxy { user, .. } => Some(user),
            _ => None,
        }
    }

    /// May this caller start tasks? With `[web] actions_group` only proxy users in it.
    pub fn may_act(&self, st: &State) -> bool {
        if !st.actions_on() {
            return false;
        }
        match (&st.web.actions_group, self) {
            (None, _) => true,
            (Some(g), Identity::Proxy { groups, .. }) => groups.iter().any(|x| x == g),
            (Some(_), _) => false,
        }
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .filter(|v| v.len() <= MAX_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn password_ok(st: &State, h: &HeaderMap) -> bool {
    let Some(want) = &st.password else {
        return false;
    };
    let Some(b64) = header_str(h, "authorization").and_then(|v| v.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    // Any user name; the password is what counts.
    let got = match raw.iter().position(|b| *b == b':') {
        Some(i) => &raw[i + 1..],
        None => return false,
    };
    bool::from(got.ct_eq(want.expose().as_bytes()))
}

/// Decide who the caller is, or answer 401/403 for them.
pub fn identify(st: &State, peer: SocketAddr, h: &HeaderMap) -> Result<Identity, Denied> {
    let from_proxy = st.web.trusted_proxies.iter().any(|c| c.contains(peer.ip()));
    if from_proxy && let Some(user) = header_str(h, "remote-user") {
        let groups = header_str(h, "remote-groups")
            .map(|g| {
                g.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Identity::Proxy {
            user: user.chars().take(128).collect(),
            groups,
        });
    }
    if st.password.is_some() {
        if password_ok(st, h) {
            return Ok(Identity::Password);
        }
        return Err(Denied::Unauthorized);
    }
    if from_proxy {
        return Err(forbidden(
            "the trusted proxy sent no Remote-User: put the authentication middleware (chain-authelia@file) on this router",
        ));
    }
    if peer.ip().is_loopback() && st.web.trusted_proxies.is_empty() {
        return Ok(Identity::Local);
    }
    Err(forbidden(
        "reach the dashboard through the trusted proxy (or set [web] password_file)",
    ))
}

/// Why a request is refused: 401 (asks for the password) or 403.
#[derive(Debug, Clone, PartialEq)]
pub enum Denied {
    Unauthorized,
    Forbidden(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Unauthorized => {
                let mut r = (StatusCode::UNAUTHORIZED, "password needed\n").into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"omk-backup\", charset=\"UTF-8\""),
                );
                r
            }
            Denied::Forbidden(why) => {
                (StatusCode::FORBIDDEN, format!("forbidden: {why}\n")).into_response()
            }
        }
    }
}

pub fn forbidden(why: &'static str) -> Denied {
    Denied::Forbidden(why)
}

/// The auth gate in front of every route but `/healthz`.
pub async fn gate(
    axum::extract::State(st): axum::extract::State<Arc<State>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    match identify(&st, peer, req.headers()) {
        Ok(id) => {
            req.extensions_mut().insert(id);
            next.run(req).await
        }
        Err(d) => d.into_response(),
    }
}

/// A POST must come from our own page: same origin, and the page's token.
pub fn check_post(st: &State, h: &HeaderMap, form_token: Option<&str>) -> Result<(), Denied> {
    if !same_origin(h) {
        return Err(forbidden(
            "cross-site request (Origin/Sec-Fetch-Site is not this site)",
        ));
    }
    let token = form_token.or_else(|| header_str(h, "x-csrf-token"));
    match token {
        Some(t) if bool::from(t.as_bytes().ct_eq(st.csrf.as_bytes())) => Ok(()),
        _ => Err(forbidden(
            "missing or wrong CSRF token; reload the page and try again",
        )),
    }
}

/// `Origin` must be this host; without `Origin` (or with `Origin: null`, which browsers
/// send under `Referrer-Policy: no-referrer` and from sandboxed frames), the browser's own
/// `Sec-Fetch-Site` must say same-origin.
fn same_origin(h: &HeaderMap) -> bool {
    if let Some(origin) = header_str(h, "origin").filter(|o| *o != "null") {
        let Some(host) = header_str(h, "host") else {
            return false;
        };
        return origin == format!("http://{host}") || origin == format!("https://{host}");
    }
    header_str(h, "sec-fetch-site") == Some("same-origin")
}

/// The content security policy: no inline script, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every answer.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    // A handler may set a stricter or different policy (the report page's inline style).
    h.entry("content-security-policy")
        .or_insert(HeaderValue::from_static(CSP));
    for (k, v) in [
        ("x-frame-options", "DENY"),
        // `same-origin`, not `no-referrer`: under no-referrer Chromium sends `Origin: null`
        // on our own form POSTs, and the same-origin check could not tell them apart.
        ("referrer-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderName;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn same_origin_rules() {
        assert!(same_origin(&hm(&[
            ("host", "a:1"),
            ("origin", "http://a:1")
        ])));
        assert!(same_origin(&hm(&[("host", "a"), ("origin", "https://a")])));
        assert!(!same_origin(&hm(&[
            ("host", "a"),
            ("origin", "https://evil")
        ])));
        assert!(!same_origin(&hm(&[("host", "a"), ("origin", "null")])));
        assert!(same_origin(&hm(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&hm(&[
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(same_origin(&hm(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&hm(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&hm(&[])));
    }
}
