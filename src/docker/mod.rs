//! Docker, through the socket proxy: the only module that imports bollard and knows the
//! Engine API. It connects (`[docker] host`, else `$DOCKER_HOST`, else the unix socket),
//! negotiates the API version, inspects/pauses/stops/starts containers, lists labelled
//! ones, and runs execs whose output is streamed without a protocol upgrade (see
//! [`exec`]). Errors name the call (method and path) and, on a 403, the proxy setting
//! that allows it. Callers get typed answers, never the API's strings: a container's
//! state is a [`ContainerState`], a proxy's refusal is [`DockerError::Refused`] (a
//! set-up problem: `exit::classify` maps it to exit code 2), and a connection failure
//! says its cause once, in plain words ([`DockerError::Unreachable`]).

mod error;
pub mod exec;
pub mod image;
pub mod scratch;

pub use error::DockerError;
pub use exec::{ExecStream, PID_MARKER};
pub use scratch::ScratchSpec;

use bollard::errors::Error as BollardError;
use bollard::models::ExecConfig;
use error::proxy_hint;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The unix socket used when nothing else is configured.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long one ordinary API call may take (connect, request, answer) when `[docker]
/// timeout` is not set. A streaming call (exec output, archive PUT) is bounded by
/// inactivity instead: no byte moving for this long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the Engine API is.
#[derive(Debug, Clone)]
enum Endpoint {
    Tcp(String),
    Unix(PathBuf),
}

/// A connected, version-negotiated Docker client.
#[derive(Debug, Clone)]
pub struct Docker {
    api: bollard::Docker,
    host: String,
    endpoint: Endpoint,
    /// The bound of one call (see [`DEFAULT_TIMEOUT`]).
    timeout: Duration,
}

/// A container's state as the Engine API reports it (`State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Stopping,
    Exited,
    Dead,
    /// Missing, or a state this version does not know.
    Unknown,
}

impl ContainerState {
    const ALL: [ContainerState; 9] = [
        ContainerState::Created,
        ContainerState::Running,
        ContainerState::Paused,
        ContainerState::Restarting,
        ContainerState::Removing,
        ContainerState::Stopping,
        ContainerState::Exited,
        ContainerState::Dead,
        ContainerState::Unknown,
    ];

    /// The API's word for it (what the journal stores).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Stopping => "stopping",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Unknown => "unknown",
        }
    }

    /// The state named by the API's word (a journal row); anything else is `Unknown`.
    pub fn parse(s: &str) -> ContainerState {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ContainerState::Unknown)
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What we need to know about a container.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    /// The exit code of a container that has stopped.
    pub exit_code: Option<i64>,
    /// The image as configured (a name), and the image id (`sha256:...`) it runs.
    pub image: String,
    pub image_id: String,
    pub labels: HashMap<String, String>,
}

/// A command to run in a container. `env` values may be secrets: they travel in the
/// request body, never in argv, and `Debug` shows only their names.
#[derive(Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
}

/// The names of `NAME=value` environment entries: what a `Debug` may show of them
/// (values can be passwords).
pub(crate) fn env_names(env: &[String]) -> Vec<&str> {
    env.iter()
        .map(|e| e.split_once('=').map(|x| x.0).unwrap_or(e))
        .collect()
}

impl std::fmt::Debug for ExecSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = env_names(&self.env);
        f.debug_struct("ExecSpec")
            .field("cmd", &self.cmd)
            .field("env", &names)
            .field("user", &self.user)
            .finish()
    }
}

/// An exec's state from `GET /exec/{id}/json`.
#[derive(Debug, Clone, Copy)]
pub struct ExecState {
    pub running: bool,
    pub exit_code: Option<i64>,
}

/// The docker host to use: the config's, else `$DOCKER_HOST`, else the unix socket.
pub fn resolve_host(configured: Option<&str>) -> String {
    if let Some(h) = configured.filter(|h| !h.trim().is_empty()) {
        return h.trim().to_string();
    }
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.trim().is_empty() => h.trim().to_string(),
        _ => DEFAULT_HOST.to_string(),
    }
}

impl Docker {
    /// Connect and negotiate the API version (needs `GET /version` through the proxy),
    /// every call bounded by [`DEFAULT_TIMEOUT`].
    pub async fn connect(configured: Option<&str>) -> Result<Docker, DockerError> {
        Docker::connect_timed(configured, DEFAULT_TIMEOUT).await
    }

    /// [`Docker::connect`] with every call bounded by `timeout` (`[docker] timeout`).
    pub async fn connect_timed(
        configured: Option<&str>,
        timeout: Duration,
    ) -> Result<Docker, DockerError> {
        let host = resolve_host(configured);
        // bollard's own bound covers the answer's head; `call` bounds the whole call.
        let secs = timeout.as_secs().max(1);
        let bad = |detail: &str| DockerError::BadHost {
            host: host.clone(),
            detail: detail.to_string(),
        };
        let (endpoint, api) = if let Some(rest) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let addr = rest.trim_end_matches('/').to_string();
            if addr.is_empty() || !addr.contains(':') {
                return Err(bad("expected tcp://HOST:PORT"));
            }
            let url = format!("tcp://{addr}");
            let api = bollard::Docker::connect_with_http(&url, secs, bollard::API_DEFAULT_VERSION)
                .map_err(|e| bad(&e.to_string()))?;
            (Endpoint::Tcp(addr), api)
        } else if let Some(path) = host.strip_prefix("unix://") {
            let api = bollard::Docker::connect_with_unix(&host, secs, bollard::API_DEFAULT_VERSION)
                .map_err(|e| bad(&e.to_string()))?;
            (Endpoint::Unix(PathBuf::from(path)), api)
        } else {
            return Err(bad(
                "only tcp://HOST:PORT (a socket proxy) and unix:///path/docker.sock are supported",
            ));
        };
        let mut d = Docker {
            api,
            host: host.clone(),
            endpoint,
            timeout,
        };
        let negotiate = d.api.clone().negotiate_version();
        d.api = d
            .call("GET", "/version", "the Docker API version", negotiate)
            .await?;
        Ok(d)
    }

    /// One API call, bounded by the call timeout, its error typed and naming the call.
    async fn call<T>(
        &self,
        method: &str,
        path: &str,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, BollardError>>,
    ) -> Result<T, DockerError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(BollardError::RequestTimeoutError)) | Err(_) => {
                Err(self.timed_out(method, path))
            }
            Ok(Err(e)) => Err(self.map_err(method, path, what, e)),
        }
    }

    /// The error of a call that got no (complete) answer within the call timeout.
    pub(crate) fn timed_out(&self, method: &str, path: &str) -> DockerError {
        DockerError::TimedOut {
            host: self.host.clone(),
            method: method.into(),
            path: path.into(),
            secs: self.timeout.as_secs(),
        }
    }

    /// The bound of one call, and of each silence in a streaming call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The error of an answer with an error status: a proxy's refusal (403, with the
    /// setting that allows the call), a missing object (404), anything else as the API
    /// said it.
    fn status_error(
        &self,
        method: &str,
        path: &str,
        what: &str,
        status: u16,
        message: String,
    ) -> DockerError {
        match status {
            403 => DockerError::Refused {
                host: self.host.clone(),
                method: method.into(),
                path: path.into(),
                hint: proxy_hint(method, path),
            },
            404 => DockerError::NotFound {
                what: what.into(),
                method: method.into(),
                path: path.into(),
            },
            status => DockerError::Api {
                method: method.into(),
                path: path.into(),
                status,
                message,
            },
        }
    }

    fn map_err(&self, method: &str, path: &str, what: &str, e: BollardError) -> DockerError {
        match e {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => self.status_error(method, path, what, status_code, message.trim().to_string()),
            other => {
                let full = error::chain_text(&other);
                if full.contains("onnection refused")
                    || full.contains("No such file or directory")
                    || full.contains("client error (Connect)")
                {
                    DockerError::Unreachable {
                        host: self.host.clone(),
                        method: method.into(),
                        path: path.into(),
                        detail: error::plain_cause(&other),
                    }
                } else {
                    DockerError::Transport {
                        method: method.into(),
                        path: path.into(),
                        detail: full,
                    }
                }
            }
        }
    }

    /// Inspect a container by name or id.
    pub async fn inspect(&self, container: &str) -> Result<ContainerInfo, DockerError> {
        let path = format!("/containers/{container}/json");
        let what = format!("container `{container}`");
        let r = self
            .call(
                "GET",
                &path,
                &what,
                self.api.inspect_container(container, None),
            )
            .await?;
        let state = r.state.as_ref();
        let status = state
            .and_then(|s| s.status)
            .map(|s| ContainerState::parse(s.as_ref()))
            .unwrap_or(ContainerState::Unknown);
        let config = r.config.as_ref();
        Ok(ContainerInfo {
            id: r.id.clone().unwrap_or_default(),
            name: r
                .name
                .clone()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            state: status,
            exit_code: state.and_then(|s| s.exit_code),
            image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
            image_id: r.image.clone().unwrap_or_default(),
            labels: config.and_then(|c| c.labels.clone()).unwrap_or_default(),
        })
    }

    /// Containers (running or not) carrying `label=value`.
    pub async fn list_labelled(&self, label: &str) -> Result<Vec<ContainerInfo>, DockerError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![label.to_string()]);
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .call(
                "GET",
                "/containers/json",
                "containers",
                self.api.list_containers(Some(opts)),
            )
            .await?;
        let mut out = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            // Removed between the list and the inspect (another run's clean-up): skip.
            match self.inspect(&id).await {
                Ok(info) => out.push(info),
                Err(DockerError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub async fn pause(&self, container: &str) -> Result<(), DockerError> {
        let path = format!("/containers/{container}/pause");
        let what = format!("container `{container}`");
        self.call("POST", &path, &what, self.api.pause_container(container))
            .await
    }

    pub async fn unpause(&self, container: &str) -> Result<(), DockerError> {
        let path = format!("/containers/{container}/unpause");
        let what = format!("container `{container}`");
        self.call("POST", &path, &what, self.api.unpause_container(container))
            .await
    }

    /// Stop gracefully, waiting up to `grace` seconds before the daemon kills it.
    pub async fn stop(&self, container: &str, grace: i32) -> Result<(), DockerError> {
        let path = format!("/containers/{container}/stop");
        let opts = bollard::query_parameters::StopContainerOptions {
            t: Some(grace),
            ..Default::default()
        };
        // The daemon waits up to `grace` before it answers: the bound covers that too.
        let bound = self.timeout + Duration::from_secs(grace.max(0) as u64);
        let call = self.api.stop_container(container, Some(opts));
        let Ok(answer) = tokio::time::timeout(bound, call).await else {
            return Err(self.timed_out("POST", &path));
        };
        match answer {
            Ok(()) => Ok(()),
            Err(BollardError::RequestTimeoutError) => Err(self.timed_out("POST", &path)),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err("POST", &path, &format!("container `{container}`"), e)),
        }
    }

    pub async fn start(&self, container: &str) -> Result<(), DockerError> {
        let path = format!("/containers/{container}/start");
        let Ok(answer) =
            tokio::time::timeout(self.timeout, self.api.start_container(container, None)).await
        else {
            return Err(self.timed_out("POST", &path));
        };
        match answer {
            Ok(()) => Ok(()),
            Err(BollardError::RequestTimeoutError) => Err(self.timed_out("POST", &path)),
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err("POST", &path, &format!("container `{container}`"), e)),
        }
    }

    /// Create an exec and start it; its stdout streams from the returned value.
    pub async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecStream, DockerError> {
        let path = format!("/containers/{container}/exec");
        let config = ExecConfig {
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            cmd: Some(spec.cmd.clone()),
            env: if spec.env.is_empty() {
                None
            } else {
                Some(spec.env.clone())
            },
            user: spec.user.clone(),
            ..Default::default()
        };
        let what = format!("container `{container}`");
        let created = self
            .call(
                "POST",
                &path,
                &what,
                self.api.create_exec(container, config),
            )
            .await?;
        let start_path = format!("/exec/{}/start", created.id);
        let io = self.raw_connection(&start_path).await?;
        match tokio::time::timeout(self.timeout, ExecStream::start(&self.host, io, &created.id))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(self.timed_out("POST", &start_path)),
        }
    }

    async fn raw_connection(&self, path: &str) -> Result<Box<dyn exec::Io>, DockerError> {
        let unreachable = |e: std::io::Error| DockerError::Unreachable {
            host: self.host.clone(),
            method: "POST".into(),
            path: path.to_string(),
            detail: error::plain_cause(&e),
        };
        let connect = async {
            match &self.endpoint {
                Endpoint::Tcp(addr) => tokio::net::TcpStream::connect(addr)
                    .await
                    .map(|s| Box::new(s) as Box<dyn exec::Io>),
                Endpoint::Unix(p) => tokio::net::UnixStream::connect(p)
                    .await
                    .map(|s| Box::new(s) as Box<dyn exec::Io>),
            }
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(r) => r.map_err(unreachable),
            Err(_) => Err(self.timed_out("POST", path)),
        }
    }

    /// An exec's state (short call: safe through proxies that cut silent connections).
    pub async fn exec_state(&self, exec_id: &str) -> Result<ExecState, DockerError> {
        let path = format!("/exec/{exec_id}/json");
        let what = format!("exec {exec_id}");
        let r = self
            .call("GET", &path, &what, self.api.inspect_exec(exec_id))
            .await?;
        Ok(ExecState {
            running: r.running.unwrap_or(false),
            exit_code: r.exit_code,
        })
    }

    /// Poll until the exec has ended and return its exit code.
    pub async fn exec_wait(&self, exec_id: &str, within: Duration) -> Result<i64, DockerError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let st = self.exec_state(exec_id).await?;
            if !st.running
                && let Some(code) = st.exit_code
            {
                return Ok(code);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerError::ExecTimeout {
                    exec: exec_id.to_string(),
                    secs: within.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Run a short command to completion: exit code and (bounded) stdout.
    pub async fn exec_output(
        &self,
        container: &str,
        spec: &ExecSpec,
        within: Duration,
    ) -> Result<(i64, String, String), DockerError> {
        let mut s = self.exec(container, spec).await?;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let read = async {
            while let Some(n) = s.next_stdout(&mut buf).await? {
                if out.len() < 1 << 20 {
                    out.extend_from_slice(&buf[..n]);
                }
            }
            Ok::<(), DockerError>(())
        };
        match tokio::time::timeout(within, read).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(DockerError::ExecTimeout {
                    exec: s.exec_id().to_string(),
                    secs: within.as_secs(),
                });
            }
        }
        let code = self.exec_wait(s.exec_id(), within).await?;
        Ok((
            code,
            String::from_utf8_lossy(&out).into_owned(),
            s.stderr_tail(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quiesce journal stores the state's word and `recover` parses it back.
    #[test]
    fn container_states_round_trip_through_their_api_words() {
        for s in ContainerState::ALL {
            assert_eq!(ContainerState::parse(s.as_str()), s);
        }
        assert_eq!(ContainerState::parse("running"), ContainerState::Running);
        assert_eq!(ContainerState::parse("frozen"), ContainerState::Unknown);
        assert_eq!(
            ContainerState::parse(bollard::models::ContainerStateStatusEnum::PAUSED.as_ref()),
            ContainerState::Paused
        );
        assert_eq!(ContainerState::Exited.to_string(), "exited");
    }
}
