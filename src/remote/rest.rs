//! rest: repositories, read through the REST protocol's own file endpoints
//! (`GET /config`, `GET /{type}/` listing with `Accept: application/vnd.x.restic.rest.v2`,
//! `GET /{type}/{name}`) with the URL's credentials as a basic-auth header built here,
//! and the repository's `cacert` trusted for https.

use super::{RemoteError, TYPES};
use crate::redact::percent_decode;
use std::path::Path;

const V2: &str = "application/vnd.x.restic.rest.v2";

#[derive(Debug)]
pub struct Rest {
    /// `scheme://host[:port]/path/`, without credentials.
    base: String,
    user: Option<String>,
    pass: Option<String>,
    client: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Entry {
    name: String,
}

impl Rest {
    pub fn parse(url: &str, cacert: Option<&Path>) -> Result<Rest, RemoteError> {
        let bad = |why: &str| RemoteError::new("rest URL", why);
        let inner = url.strip_prefix("rest:").ok_or_else(|| bad("not rest:"))?;
        let (scheme, rest) = inner
            .split_once("://")
            .ok_or_else(|| bad("expected rest:http(s)://HOST/PATH"))?;
        let auth_len = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(auth_len);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, pass) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
            Some((u, p)) => (
                Some(percent_decode(u)),
                (!p.is_empty()).then(|| percent_decode(p)),
            ),
            None => (None, None),
        };
        let path = path.trim_end_matches('/');
        let base = format!("{scheme}://{host}{path}/");
        let mut b = reqwest::Client::builder().timeout(std::time::Duration::from_secs(300));
        if let Some(ca) = cacert {
            let pem = std::fs::read(ca)
                .map_err(|e| RemoteError::new(format!("cacert {}", ca.display()), e))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| RemoteError::new(format!("cacert {}", ca.display()), e))?;
            b = b.add_root_certificate(cert);
        }
        let client = b
            .build()
            .map_err(|e| RemoteError::new("cannot set up an HTTP client", e))?;
        Ok(Rest {
            base,
            user,
            pass,
            client,
        })
    }

    pub fn describe(&self) -> String {
        format!("the REST protocol's file endpoints at {}", self.base)
    }

    async fn get(&self, rel: &str, accept: Option<&str>) -> Result<Vec<u8>, RemoteError> {
        let url = format!("{}{rel}", self.base);
        let mut req = self.client.get(&url);
        if let Some(u) = &self.user {
            req = req.basic_auth(u, self.pass.as_deref());
        }
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        let what = format!("GET {url}");
        let resp = req
            .send()
            .await
            .map_err(|e| RemoteError::new(&what, error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let why = if status.as_u16() == 401 {
                format!("{status}: the server refused the URL's credentials")
            } else {
                status.to_string()
            };
            return Err(RemoteError::new(what, why));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| RemoteError::new(&what, error_chain(&e)))?;
        Ok(body.to_vec())
    }

    pub async fn list(&self) -> Result<Vec<String>, RemoteError> {
        let mut names = vec!["config".to_string()];
        for t in TYPES {
            let body = self.get(&format!("{t}/"), Some(V2)).await?;
            let entries: Vec<Entry> = serde_json::from_slice(&body)
                .map_err(|e| RemoteError::new(format!("the {t}/ listing (REST protocol v2)"), e))?;
            names.extend(entries.into_iter().map(|e| format!("{t}/{}", e.name)));
        }
        Ok(names)
    }

    pub async fn read(&self, names: &[String]) -> Result<Vec<(String, Vec<u8>)>, RemoteError> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.push((n.clone(), self.get(n, None).await?));
        }
        Ok(out)
    }
}

/// reqwest's error and its causes (a TLS failure is in the source chain). The URL in it
/// carries no credential: they travel in the header only.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_for_the_header() {
        let r = Rest::parse("rest:https://omk:p%40ss@127.0.0.1:2381/repo/x/", None).unwrap();
        assert_eq!(r.base, "https://127.0.0.1:2381/repo/x/");
        assert_eq!(r.user.as_deref(), Some("omk"));
        assert_eq!(r.pass.as_deref(), Some("p@ss"));
        let r = Rest::parse("rest:http://127.0.0.1:8000/", None).unwrap();
        assert_eq!((r.base.as_str(), r.user), ("http://127.0.0.1:8000/", None));
    }
}
