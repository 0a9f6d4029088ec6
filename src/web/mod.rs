//! The dashboard: the only module that serves HTTP (routes, extractors, headers, auth,
//! CSRF). Server-rendered pages (maud, checked at compile time), a JSON API, `/metrics`
//! and a live page fed by server-sent events; assets are compiled in.
//!
//! It reads through the catalog and the app's query functions, never runs SQL and never
//! starts restic: actions only ask the daemon to queue a task ([`crate::app::control`]).
//! Served by the daemon when `[web] listen` is set, or read-only by `omk-backup web`.

mod api;
mod auth;
mod chart;
mod data;
mod pages;

use crate::app::Globals;
use crate::app::control::{self, Handle, LiveReporter};
use crate::app::reporter::Reporter;
use crate::app::session::load_config;
use crate::config::WebConfig;
use crate::exit::Outcome;
use crate::secret::Secret;
use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the dashboard listens when nothing says otherwise (localhost only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8427";

/// What every request handler shares.
pub struct State {
    pub g: Globals,
    pub web: WebConfig,
    /// The token every POST must carry (random per server start).
    pub csrf: String,
    /// HTTP basic auth's password (`[web] password_file`), when set.
    pub password: Option<Secret>,
    /// The daemon's queue and live state; `None` for the standalone read-only view.
    pub daemon: Option<Handle>,
}

impl State {
    /// Whether this server may act at all (the caller's rights are checked apart).
    pub fn actions_on(&self) -> bool {
        self.web.actions && self.daemon.is_some()
    }
}

/// Refuse an exposed dashboard that nobody authenticates.
pub fn check_exposure(listen: SocketAddr, web: &WebConfig) -> anyhow::Result<()> {
    if listen.ip().is_loopback() || !web.trusted_proxies.is_empty() || web.password_file.is_some() {
        return Ok(());
    }
    Err(crate::exit::usage(format!(
        "refusing to serve the dashboard on {listen}: a non-loopback address needs [web] trusted_proxies (the reverse proxy, e.g. Traefik with Authelia, that sends Remote-User) or [web] password_file (HTTP basic auth); or listen on 127.0.0.1"
    )))
}

async fn prepare(
    g: &Globals,
    listen_override: Option<&str>,
) -> anyhow::Result<(
    WebConfig,
    SocketAddr,
    Option<Secret>,
    tokio::net::TcpListener,
)> {
    let config = load_config(g)?;
    let web = config.web.clone();
    let listen = match listen_override {
        Some(s) => crate::config::parse_listen(s).ok_or_else(|| {
            crate::exit::usage(format!(
                "--listen {s}: expected address:port, e.g. 127.0.0.1:8427"
            ))
        })?,
        None => web
            .listen
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
    };
    check_exposure(listen, &web)?;
    let password = match &web.password_file {
        Some(p) => Some(crate::secret::read_password_file(p).with_context(|| {
            format!(
                "[web] password_file {} in {}",
                p.display(),
                config.file.display()
            )
        })?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ([web] listen in {}); is another program using the port?", config.file.display()))?;
    Ok((web, listen, password, listener))
}

fn state(
    g: &Globals,
    web: WebConfig,
    password: Option<Secret>,
    daemon: Option<Handle>,
) -> anyhow::Result<Arc<State>> {
    let csrf = crate::random::hex(32).context("cannot make the dashboard's CSRF token")?;
    Ok(Arc::new(State {
        g: g.clone(),
        web,
        csrf,
        password,
        daemon,
    }))
}

/// `omk-backup web`: a read-only dashboard of the catalog until SIGTERM/SIGINT.
pub async fn standalone(g: &Globals, listen: Option<&str>) -> anyhow::Result<Outcome> {
    let (web, addr, password, listener) = prepare(g, listen).await?;
    let st = state(g, web, password, None)?;
    tracing::info!("dashboard (read-only) on http://{addr}/");
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    axum::serve(
        listener,
        router(st).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
    .context("the dashboard server failed")?;
    Ok(Outcome::Ok)
}

/// `omk-backup daemon`: with `[web] listen`, serve the dashboard beside the scheduler,
/// steering it through its one queue; without, just the scheduler.
pub async fn daemon(g: &Globals, reporter: &dyn Reporter) -> anyhow::Result<Outcome> {
    if load_config(g)?.web.listen.is_none() {
        return crate::app::daemon::daemon(g, reporter).await;
    }
    let (web, addr, password, listener) = prepare(g, None).await?;
    let (ctl, handle) = control::channel();
    let live = LiveReporter {
        inner: reporter,
        live: ctl.live.clone(),
    };
    let st = state(g, web, password, Some(handle))?;
    tracing::info!(
        "dashboard on http://{addr}/ (actions {})",
        if st.web.actions { "on" } else { "off" }
    );
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router(st).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let out = crate::app::daemon::daemon_with(g, &live, Some(ctl)).await;
    server.abort();
    out
}

/// Every route. The auth gate and the security headers wrap them all.
pub fn router(st: Arc<State>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/jobs/{job}", get(pages::job))
        .route("/live", get(pages::live))
        .route("/reports", get(pages::reports))
        .route("/reports/{month}", get(pages::report))
        .route("/assets/{name}", get(pages::asset))
        .route("/api/status", get(api::status))
        .route("/api/jobs/{job}", get(api::job))
        .route("/api/runs", get(api::runs))
        .route("/api/live/events", get(api::events))
        .route("/api/backup/{job}", post(api::backup_now))
        .route("/api/restore-test/{job}", post(api::restore_test_now))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(api::healthz))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(st.clone(), auth::gate))
        .layer(axum::middleware::from_fn(auth::headers))
        .with_state(st)
}
