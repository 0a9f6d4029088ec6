//! Errors at the Docker boundary. Each names the Engine API call (method and path) that
//! failed, why, and what to do — in particular which socket-proxy setting allows a call
//! the proxy refused, since least-privilege proxies answer 403 for anything not allowed.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DockerError {
    /// The host string is not one we can reach.
    #[error("docker host `{host}` is not usable: {detail}")]
    BadHost { host: String, detail: String },

    /// Nothing answers at the host (daemon down, proxy down, wrong address).
    #[error(
        "cannot reach Docker at {host} ({method} {path}): {detail}; check that dockerd (or the socket proxy) runs there, or set [docker] host / $DOCKER_HOST"
    )]
    Unreachable {
        host: String,
        method: String,
        path: String,
        detail: String,
    },

    /// A socket proxy (or the daemon's authz plugin) refused the call.
    #[error(
        "the Docker socket proxy at {host} refused {method} {path} (HTTP 403); allow it: {hint} (docs/socket-proxy.md lists every endpoint omk-backup uses)"
    )]
    Refused {
        host: String,
        method: String,
        path: String,
        hint: String,
    },

    /// No such container (or exec).
    #[error("{what} not found ({method} {path}); check the name with `docker ps -a`")]
    NotFound {
        what: String,
        method: String,
        path: String,
    },

    /// The daemon answered an error we do not handle specially.
    #[error("Docker refused {method} {path} (HTTP {status}): {message}")]
    Api {
        method: String,
        path: String,
        status: u16,
        message: String,
    },

    /// The connection failed or the answer was not what the API promises.
    #[error("Docker call {method} {path} failed: {detail}")]
    Transport {
        method: String,
        path: String,
        detail: String,
    },

    /// An exec's output stream ended in the middle of a frame, or was malformed.
    #[error("the output stream of exec {exec} was cut or malformed: {detail}")]
    Stream { exec: String, detail: String },

    /// A file sent into a container ended before its announced size.
    #[error(
        "the data sent with PUT {path} ended after {got} of {expected} bytes; the archive was abandoned"
    )]
    ShortSource {
        path: String,
        expected: u64,
        got: u64,
    },

    /// A call got no (complete) answer within `[docker] timeout`: a hung proxy or daemon.
    #[error(
        "Docker at {host} did not answer {method} {path} within {secs} s: the daemon or the socket proxy hangs (check both; `docker info` on that host), or raise [docker] timeout"
    )]
    TimedOut {
        host: String,
        method: String,
        path: String,
        secs: u64,
    },

    /// The exec did not report an exit code in time.
    #[error("exec {exec} did not finish within {secs} s after its output ended")]
    ExecTimeout { exec: String, secs: u64 },
}

impl DockerError {
    /// The user's set-up is at fault (a proxy that refuses a call omk-backup needs, a
    /// host string it cannot use): exit code 2, with the hint the message carries.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            DockerError::Refused { .. } | DockerError::BadHost { .. }
        )
    }

    /// Worth retrying (the daemon or proxy was briefly unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DockerError::Unreachable { .. }
                | DockerError::Transport { .. }
                | DockerError::TimedOut { .. }
        ) || matches!(self, DockerError::Api { status, .. } if *status >= 500)
    }
}

/// An error and its sources as one line, each text said once (hyper and bollard repeat
/// their source's text in their own).
pub fn chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        src = s.source();
    }
    text
}

/// Why a connection failed, in plain words: the innermost cause (the operating
/// system's), without its `(os error N)` suffix, e.g. "connection refused".
pub fn plain_cause(e: &dyn std::error::Error) -> String {
    let mut inner = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    let text = inner.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => chain_text(e),
    }
}

/// Which proxy setting allows `method path`: Tecnativa/linuxserver environment variables
/// and the CetusGuard rule, so the operator can fix the proxy without reading its code.
pub fn proxy_hint(method: &str, path: &str) -> String {
    let p = strip_version(path);
    let (tecnativa, cetus) = if p == "/_ping" || p == "/version" {
        (
            "allowed by default (PING/VERSION=1)",
            "GET,HEAD %API_PREFIX%/(_ping|version)",
        )
    } else if p.starts_with("/exec/") || p.ends_with("/exec") {
        (
            "EXEC=1 and POST=1 (plus CONTAINERS=1)",
            "POST %API_PREFIX_CONTAINERS%/%CONTAINER_ID_OR_NAME%/exec, POST %API_PREFIX_EXEC%/[0-9a-f]+/start, GET %API_PREFIX_EXEC%/[0-9a-f]+/json",
        )
    } else if p.ends_with("/archive") && method == "PUT" {
        (
            "no Tecnativa/linuxserver variable allows it for one name only: restore tests need PUT /containers/omk-restore-*/archive (haproxy: an acl on that path regex; see docs/socket-proxy.md)",
            "PUT %API_PREFIX_CONTAINERS%/omk-restore-[a-zA-Z0-9_.-]+/archive",
        )
    } else if p == "/containers/create" || (p.starts_with("/containers/") && method == "DELETE") {
        (
            "CONTAINERS=1, POST=1 and ALLOW_RESTARTS/DELETE as your proxy names them (restore tests create and remove omk-restore-* scratch containers)",
            "POST %API_PREFIX_CONTAINERS%/create, DELETE %API_PREFIX_CONTAINERS%/omk-restore-[a-zA-Z0-9_.-]+",
        )
    } else if p.starts_with("/containers/") && method == "POST" {
        (
            "CONTAINERS=1 and POST=1 (linuxserver: also ALLOW_START=1, ALLOW_STOP=1 or ALLOW_RESTARTS=1)",
            "POST %API_PREFIX_CONTAINERS%/%CONTAINER_ID_OR_NAME%/(pause|unpause|stop|start)",
        )
    } else if p.starts_with("/containers") {
        (
            "CONTAINERS=1",
            "GET %API_PREFIX_CONTAINERS%/json, GET %API_PREFIX_CONTAINERS%/%CONTAINER_ID_OR_NAME%/json",
        )
    } else if p == "/images/load" {
        (
            "IMAGES=1 and POST=1 on the restore lab's proxy only (it loads images copied from production)",
            "POST %API_PREFIX_IMAGES%/load",
        )
    } else if p.starts_with("/images/") && p.ends_with("/get") {
        (
            "IMAGES=1 (a read: the restore lab copies the image of a job's container)",
            "GET %API_PREFIX_IMAGES%/sha256:[0-9a-f]+/get",
        )
    } else if p.starts_with("/images") {
        ("IMAGES=1", "GET %API_PREFIX_IMAGES%/.+/json")
    } else {
        ("(not an endpoint omk-backup needs)", "-")
    };
    format!(
        "Tecnativa/linuxserver docker-socket-proxy: {tecnativa}; CetusGuard: --backend-rule \"{cetus}\""
    )
}

/// `/v1.41/containers/x/json` → `/containers/x/json`.
pub fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v")
        && let Some(i) = rest.find('/')
        && rest[..i].chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return &rest[i..];
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_setting() {
        assert!(proxy_hint("POST", "/containers/db/exec").contains("EXEC=1"));
        assert!(proxy_hint("POST", "/v1.41/exec/abc/start").contains("EXEC=1"));
        assert!(proxy_hint("POST", "/containers/db/pause").contains("POST=1"));
        assert!(proxy_hint("GET", "/containers/json").contains("CONTAINERS=1"));
        assert!(proxy_hint("POST", "/images/load").contains("POST %API_PREFIX_IMAGES%/load"));
        assert!(proxy_hint("GET", "/images/sha256:ab/get").contains("/get"));
        assert_eq!(strip_version("/v1.41/_ping"), "/_ping");
        assert_eq!(strip_version("/version"), "/version");
    }

    #[derive(Debug)]
    struct Wrap(String, Option<Box<dyn std::error::Error + 'static>>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref()
        }
    }

    /// Regression: "proxy down" printed hyper's chain three times.
    #[test]
    fn a_connection_error_is_said_once_in_plain_words() {
        let os = std::io::Error::from_raw_os_error(111);
        let os_text = os.to_string();
        let e = Wrap(
            format!("error trying to connect: tcp connect error: {os_text}"),
            Some(Box::new(Wrap(
                format!("tcp connect error: {os_text}"),
                Some(Box::new(os)),
            ))),
        );
        assert_eq!(plain_cause(&e), "connection refused");
        let text = chain_text(&e);
        assert_eq!(text.matches("tcp connect error").count(), 1, "{text}");
        let refused = DockerError::Unreachable {
            host: "tcp://127.0.0.1:9".into(),
            method: "GET".into(),
            path: "/version".into(),
            detail: plain_cause(&e),
        }
        .to_string();
        assert_eq!(refused.matches("onnection refused").count(), 1, "{refused}");
    }

    #[test]
    fn refusals_are_setup_problems() {
        let refused = DockerError::Refused {
            host: "h".into(),
            method: "PUT".into(),
            path: "/containers/db/archive".into(),
            hint: proxy_hint("PUT", "/containers/db/archive"),
        };
        assert!(refused.is_setup() && !refused.is_transient());
        let gone = DockerError::NotFound {
            what: "container `x`".into(),
            method: "GET".into(),
            path: "/containers/x/json".into(),
        };
        assert!(!gone.is_setup());
    }
}
