//! The JSON API, `/metrics`, `/healthz`, the live event stream and the two actions.
//! Every input is treated as hostile: job names must name a known job (else 404),
//! query values are bounded, POSTs need the CSRF token and a same-origin request.

use super::auth::{Identity, check_post, forbidden};
use super::{State, data};
use crate::app::control::Request;
use crate::domain::{from_millis, rfc3339};
use crate::schedule::TaskKind;
use axum::Json;
use axum::extract::{Extension, Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type St = axum::extract::State<Arc<State>>;

/// The most runs `/api/runs` returns.
const MAX_LIMIT: i64 = 1000;

pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn error(e: anyhow::Error) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({ "error": format!("{e:#}") })),
    )
        .into_response()
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /api/status`: the same JSON as `omk-backup status --json`.
pub async fn status(axum::extract::State(st): St) -> Response {
    match data::off_thread(&st, data::status).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => error(e),
    }
}

/// `GET /api/jobs/{job}`: what the job page shows.
pub async fn job(axum::extract::State(st): St, Path(job): Path<String>) -> Response {
    if crate::domain::validate_job_name(&job).is_err() {
        return not_found().await;
    }
    let j = job.clone();
    match data::off_thread(&st, move |s| data::job_page(s, &j)).await {
        Ok(Some(p)) => Json(p).into_response(),
        Ok(None) => not_found().await,
        Err(e) => error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    job: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
struct RunJson {
    id: String,
    command: String,
    trigger: String,
    status: crate::domain::RunStatus,
    started: String,
    finished: Option<String>,
    error: Option<String>,
}

/// `GET /api/runs?job=&limit=`: the newest runs (default 50, at most 1000).
pub async fn runs(
    axum::extract::State(st): St,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return (
            StatusCode::BAD_REQUEST,
            "bad query: use ?job=NAME&limit=N\n",
        )
            .into_response();
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    if let Some(j) = &q.job
        && crate::domain::validate_job_name(j).is_err()
    {
        return not_found().await;
    }
    let job = q.job.clone();
    let rows = data::off_thread(&st, move |s| {
        Ok(data::open(s)?.catalog.recent_runs(job.as_deref(), limit)?)
    });
    match rows.await {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|r| RunJson {
                    id: r.id,
                    command: r.command,
                    trigger: r.trigger,
                    status: r.status,
                    started: rfc3339(from_millis(r.started_at)),
                    finished: r.finished_at.map(|f| rfc3339(from_millis(f))),
                    error: r.error,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(e),
    }
}

/// `GET /metrics`: the Prometheus exposition of what the textfile holds.
pub async fn metrics(axum::extract::State(st): St) -> Response {
    let text = data::off_thread(&st, |s| {
        let ctx = data::open_discovered(s)?;
        crate::metrics::render(&ctx.config, &ctx.catalog, crate::app::now_ms())
    })
    .await;
    match text {
        Ok(t) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            t,
        )
            .into_response(),
        Err(e) => error(e),
    }
}

/// `GET /api/live/events`: the live state as server-sent events, one per change.
pub async fn events(axum::extract::State(st): St) -> Response {
    let Some(d) = &st.daemon else {
        return (
            StatusCode::NOT_FOUND,
            "no live state: this is the standalone read-only view\n",
        )
            .into_response();
    };
    Sse::new(live_stream(d.live.clone())).into_response()
}

fn live_stream(
    rx: tokio::sync::watch::Receiver<crate::app::control::Live>,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    // The first event is the state now; then one per change, no timer.
    futures_util::stream::unfold((rx, true), |(mut r, first)| async move {
        if !first && r.changed().await.is_err() {
            return None;
        }
        let json = serde_json::to_string(&*r.borrow_and_update()).unwrap_or_default();
        Some((Ok(Event::default().event("live").data(json)), (r, false)))
    })
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
}

async fn act(
    st: &Arc<State>,
    id: &Identity,
    h: &HeaderMap,
    form: Option<&str>,
    kind: TaskKind,
    job: &str,
) -> Response {
    if let Err(d) = check_post(st, h, form) {
        return d.into_response();
    }
    if !st.actions_on() {
        return forbidden(
            "actions are off ([web] actions = true in the daemon's config turns them on)",
        )
        .into_response();
    }
    if !id.may_act(st) {
        return forbidden("your groups do not include [web] actions_group").into_response();
    }
    if crate::domain::validate_job_name(job).is_err() {
        return not_found().await;
    }
    match data::off_thread(st, data::status).await {
        Ok(s) if s.jobs.iter().any(|j| j.job == job) => {}
        Ok(_) => return not_found().await,
        Err(e) => return error(e),
    }
    let Some(d) = &st.daemon else {
        return forbidden("the standalone view cannot act").into_response();
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = Request {
        kind,
        job: job.to_string(),
        reply: tx,
    };
    if d.requests.send(req).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response();
    }
    let queued = match rx.await {
        Ok(Ok(t)) => t,
        Ok(Err(why)) => return error(anyhow::anyhow!(why)),
        Err(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response();
        }
    };
    let wants_html = h
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        Redirect::to("/live").into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "queued": queued })),
        )
            .into_response()
    }
}

fn form_token(body: &axum::body::Bytes) -> Option<String> {
    serde_urlencoded::from_bytes::<ActionForm>(body)
        .ok()
        .and_then(|f| f.csrf)
}

/// `POST /api/backup/{job}`: queue a backup of the job in the daemon.
pub async fn backup_now(
    axum::extract::State(st): St,
    Extension(id): Extension<Identity>,
    Path(job): Path<String>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let t = form_token(&body);
    act(&st, &id, &h, t.as_deref(), TaskKind::Backup, &job).await
}

/// `POST /api/restore-test/{job}`: queue a restore test of the job in the daemon.
pub async fn restore_test_now(
    axum::extract::State(st): St,
    Extension(id): Extension<Identity>,
    Path(job): Path<String>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let t = form_token(&body);
    act(&st, &id, &h, t.as_deref(), TaskKind::RestoreTest, &job).await
}
