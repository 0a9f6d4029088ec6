//! The HTML pages (maud, checked at compile time): overview, job, live, reports, and the
//! embedded assets. Everything readable without JS; `live.js` only refreshes the live
//! page from server-sent events.

use super::auth::Identity;
use super::data::{self, Health, JobPage, Overview};
use super::{State, chart};
use crate::report::{bytes, duration};
use axum::extract::{Extension, Path};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use std::sync::Arc;

type St = axum::extract::State<Arc<State>>;

const CSS: &str = include_str!("assets/style.css");
const LIVE_JS: &str = include_str!("assets/live.js");

pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, ty) = match name.as_str() {
        "style.css" => (CSS, "text/css; charset=utf-8"),
        "live.js" => (LIVE_JS, "text/javascript; charset=utf-8"),
        _ => return super::api::not_found().await,
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

fn layout(st: &State, id: &Identity, title: &str, script: bool, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · omk-backup" }
                link rel="stylesheet" href="/assets/style.css";
                @if script { script src="/assets/live.js" defer {} }
            }
            body {
                header.top {
                    a.brand href="/" { "omk-backup" }
                    nav {
                        a href="/" { "Overview" }
                        a href="/live" { "Live" }
                        a href="/reports" { "Reports" }
                        a href="/api/status" { "API" }
                    }
                    span.who {
                        @if let Some(u) = id.user() { "signed in as " strong { (u) } }
                        @if st.daemon.is_none() { " · read-only view" }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(page.into_string())
}

pub fn error_page(e: &anyhow::Error) -> Response {
    let body = html! { (DOCTYPE) html { body { h1 { "Error" } pre { (format!("{e:#}")) } } } };
    (StatusCode::INTERNAL_SERVER_ERROR, Html(body.into_string())).into_response()
}

fn when(t: &Option<String>) -> Markup {
    match t {
        Some(t) => html! { time datetime=(t) { (t.replace('T', " ")) } },
        None => html! { span.muted { "never" } },
    }
}

fn ms(v: Option<i64>) -> Markup {
    match v {
        Some(v) => html! { (duration(v as f64 / 1000.0)) },
        None => html! { span.muted { "–" } },
    }
}

fn pill(h: Health) -> Markup {
    let label = match h {
        Health::Good => "ok",
        Health::Warn => "attention",
        Health::Bad => "problem",
    };
    html! { span class=(format!("pill {}", h.as_str())) { (label) } }
}

fn action_forms(st: &State, id: &Identity, job: &str) -> Markup {
    if !id.may_act(st) {
        return html! {};
    }
    html! {
        div.actions {
            form method="post" action=(format!("/api/backup/{job}")) {
                input type="hidden" name="csrf" value=(st.csrf);
                button type="submit" id="backup-now" { "Back up now" }
            }
            form method="post" action=(format!("/api/restore-test/{job}")) {
                input type="hidden" name="csrf" value=(st.csrf);
                button type="submit" id="restore-test-now" { "Restore-test now" }
            }
        }
    }
}

fn overview_body(st: &State, id: &Identity, o: &Overview) -> Markup {
    let cov = &o.check_coverage;
    html! {
        h1 { "Backups" }
        section.repo {
            h2 { "Repository" }
            @if let Some(f) = &o.repository_flag { p.flag.bad { (f) } }
            dl {
                dt { "Check coverage" }
                dd class=(if cov.complete { "good" } else { "warn" }) {
                    (cov.subsets_read) " of " (cov.subsets) " subsets read in " (cov.period_days) " days"
                }
                dt { "Encryption proof" }
                dd {
                    @match &o.encryption_proof {
                        Some((at, passed)) => {
                            span class=(if *passed { "good" } else { "bad" }) { (if *passed { "passed " } else { "FAILED " }) }
                            (when(&Some(at.clone())))
                            @if let Some(a) = o.encryption_proof_age_seconds { " (" (duration(a as f64)) " ago)" }
                        }
                        None => span.warn { "never proven" },
                    }
                }
                dt { "RPO target" }
                dd { (duration(o.rpo_target_seconds as f64)) }
            }
        }
        table.jobs {
            thead { tr {
                th { "State" } th { "Job" } th { "Kind" } th { "Last backup" } th { "Last verified restore" }
                th { "RPO" } th { "RTO" } th { "Next run" } th { "Problems" }
            } }
            tbody {
                @for j in &o.jobs {
                    tr class=(format!("row-{}", j.health.as_str())) {
                        td { (pill(j.health)) }
                        td { a.job href=(format!("/jobs/{}", j.status.job)) { (j.status.job) } }
                        td { (j.status.kind.as_str()) }
                        td { (when(&j.status.last_backup)) }
                        td { (when(&j.status.last_verified_restore)) }
                        td { @match j.status.rpo_seconds { Some(r) => (duration(r as f64)), None => span.muted { "–" } } }
                        td { (ms(j.last_rto_ms)) }
                        td { (when(&j.status.next_run)) }
                        td.problems { @for p in &j.problems { div { (p) } } }
                    }
                }
            }
        }
        @if o.jobs.is_empty() { p.muted { "No jobs are configured or discovered." } }
        @if id.may_act(st) { p.muted { "Actions are on: open a job to back it up or restore-test it now." } }
    }
}

pub async fn overview(
    axum::extract::State(st): St,
    Extension(id): Extension<Identity>,
) -> Response {
    match data::off_thread(&st, data::overview).await {
        Ok(o) => layout(&st, &id, "Overview", false, overview_body(&st, &id, &o)).into_response(),
        Err(e) => error_page(&e),
    }
}

fn job_body(st: &State, id: &Identity, p: &JobPage) -> Markup {
    let s = &p.row.status;
    let bytes_pts: Vec<(i64, f64)> = p
        .history
        .iter()
        .filter_map(|(t, b, _)| b.map(|b| (*t, b as f64)))
        .collect();
    let dur_pts: Vec<(i64, f64)> = p
        .history
        .iter()
        .filter_map(|(t, _, d)| d.map(|d| (*t, d as f64 / 1000.0)))
        .collect();
    let rto_pts: Vec<(i64, f64)> = p
        .rto_history
        .iter()
        .map(|(t, r)| (*t, *r as f64 / 1000.0))
        .collect();
    html! {
        h1 { (pill(p.row.health)) " " (s.job) " " span.muted { (s.kind.as_str()) } }
        (action_forms(st, id, &s.job))
        @if !p.row.problems.is_empty() { ul.problems { @for x in &p.row.problems { li { (x) } } } }
        dl.summary {
            dt { "Last backup" } dd { (when(&s.last_backup)) }
            dt { "Last verified restore" } dd { (when(&s.last_verified_restore)) }
            dt { "RPO" } dd { @match s.rpo_seconds { Some(r) => (duration(r as f64)), None => "–" } " (target " (duration(p.rpo_target_seconds as f64)) ")" }
            dt { "Last RTO" } dd { (ms(p.row.last_rto_ms)) }
            dt { "Next run" } dd { (when(&s.next_run)) }
            dt { "Snapshots" } dd { (s.snapshots) }
        }
        section.charts {
            (chart::line("Backup size", &bytes_pts, |v| bytes(v as i64)))
            (chart::line("Backup duration", &dur_pts, duration))
            (chart::line("Restore time (RTO)", &rto_pts, duration))
        }
        (tests_section(p))
        (runs_section(p))
        (snapshots_section(p))
    }
}

fn tests_section(p: &JobPage) -> Markup {
    html! {
        h2 { "Restore tests" }
        @if p.restore_tests.is_empty() { p.muted { "No restore test yet." } }
        @for t in &p.restore_tests {
            details.test open[t.passed == p.restore_tests[0].passed && t.run_id == p.restore_tests[0].run_id] {
                summary {
                    span class=(if t.passed { "good" } else { "bad" }) { (if t.passed { "passed" } else { "FAILED" }) }
                    " " (t.started.replace('T', " ")) " · RTO " (ms(t.rto_ms))
                    @if let Some(r) = t.rpo_seconds { " · RPO " (duration(r as f64)) }
                    @if let Some(b) = t.bytes_hashed { " · " (bytes(b)) " hashed" }
                }
                table.checks {
                    thead { tr { th { "Check" } th { "Result" } th { "Detail" } } }
                    tbody { @for c in &t.checks {
                        tr { td { (c.name) } td class=(if c.passed { "good" } else { "bad" }) { (if c.passed { "passed" } else { "failed" }) } td { (c.detail) } }
                    } }
                }
            }
        }
    }
}

fn runs_section(p: &JobPage) -> Markup {
    html! {
        h2 { "Runs" }
        table.runs {
            thead { tr { th { "Run" } th { "Command" } th { "Trigger" } th { "Steps" } } }
            tbody { @for r in &p.runs {
                tr {
                    td { code { (r.id) } br; span.muted { (r.started.replace('T', " ")) } }
                    td { (r.command) } td { (r.trigger) }
                    td { @for st in &r.steps {
                        div.step {
                            span class=(format!("st-{}", st.status.as_str())) { (st.kind) " " (st.status.as_str()) }
                            " " (ms(st.duration_ms))
                            @if let Some(e) = &st.error { div.err { (e) } }
                        }
                    } }
                }
            } }
        }
    }
}

fn snapshots_section(p: &JobPage) -> Markup {
    html! {
        h2 { "Snapshots" }
        table.snaps {
            thead { tr { th { "Snapshot" } th { "Time" } th { "Size" } th { "State" } th { "Restore with" } } }
            tbody { @for sn in &p.snapshots {
                tr {
                    td { code { (sn.snapshot_id.get(..8).unwrap_or(&sn.snapshot_id)) } }
                    td { (sn.time.replace('T', " ")) }
                    td { @if let Some(b) = sn.bytes { (bytes(b)) } }
                    td { (sn.state.as_str()) }
                    td { code.cmd { (sn.restore_command) } }
                }
            } }
        }
    }
}

pub async fn job(
    axum::extract::State(st): St,
    Extension(id): Extension<Identity>,
    Path(job): Path<String>,
) -> Response {
    if crate::domain::validate_job_name(&job).is_err() {
        return super::api::not_found().await;
    }
    let j = job.clone();
    match data::off_thread(&st, move |s| data::job_page(s, &j)).await {
        Ok(Some(p)) => layout(&st, &id, &job, false, job_body(&st, &id, &p)).into_response(),
        Ok(None) => super::api::not_found().await,
        Err(e) => error_page(&e),
    }
}

pub async fn live(axum::extract::State(st): St, Extension(id): Extension<Identity>) -> Response {
    let Some(d) = &st.daemon else {
        let body = html! {
            h1 { "Live" }
            p.muted { "This is the standalone read-only view: the live task and the queue are shown by the dashboard the daemon serves ([web] listen)." }
        };
        return layout(&st, &id, "Live", false, body).into_response();
    };
    let l = d.live.borrow().clone();
    let body = html! {
        h1 { "Live" }
        section id="live" {
            h2 { "Running" }
            p id="running" {
                @match &l.running {
                    Some(r) => { strong { (r.task) } " (" (r.trigger.as_str()) ", since " (r.started.replace('T', " ")) ")" }
                    None => span.muted { "nothing is running" },
                }
            }
            p id="progress" {
                @if let Some(p) = &l.progress {
                    (p.job) ": " (p.percent) "% · " (bytes(p.bytes_done as i64)) " of " (bytes(p.total_bytes as i64))
                    " · " (p.files_done) " of " (p.total_files) " files"
                }
            }
            h2 { "Queue" }
            ol id="queue" { @for q in &l.queue { li { (q) } } }
            @if l.queue.is_empty() { p.muted { "empty" } }
            h2 { "Next runs" }
            table id="next" {
                thead { tr { th { "Line" } th { "When" } th { "Task" } th { "Next" } } }
                tbody { @for n in &l.next {
                    tr { td { code { (n.line) } } td { code { (n.when) } } td { (n.task) } td { (when(&n.next)) } }
                } }
            }
        }
    };
    layout(&st, &id, "Live", true, body).into_response()
}

pub async fn reports(axum::extract::State(st): St, Extension(id): Extension<Identity>) -> Response {
    let rows = data::off_thread(&st, |s| Ok(data::open(s)?.catalog.reports(240)?));
    let rows = match rows.await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let body = html! {
        h1 { "Monthly reports" }
        p.muted { "Each month's restore-test report, rendered from the catalog as the same self-contained HTML `omk-backup report --format html` writes. Issued digests:" }
        table {
            thead { tr { th { "Month" } th { "Format" } th { "Issued" } th { "SHA-256" } } }
            tbody { @for r in &rows {
                tr {
                    td { a href=(format!("/reports/{}", r.month)) { (r.month) } }
                    td { (r.format) }
                    td { (crate::domain::rfc3339(crate::domain::from_millis(r.issued_at)).replace('T', " ")) }
                    td { code { (r.sha256.get(..16).unwrap_or(&r.sha256)) "…" } }
                }
            } }
        }
        @if rows.is_empty() { p.muted { "No report issued yet; " a href=(format!("/reports/{}", chrono::Utc::now().format("%Y-%m"))) { "view this month's" } "." } }
    };
    layout(&st, &id, "Reports", false, body).into_response()
}

pub async fn report(axum::extract::State(st): St, Path(month): Path<String>) -> Response {
    let ok = month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month
            .chars()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit());
    if !ok {
        return super::api::not_found().await;
    }
    match data::off_thread(&st, move |s| crate::app::report::preview_html(&super::data::open(s)?, &month)).await {
        // The report is self-contained: its style is inline, and it has no script.
        Ok(text) => (
            [(
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            )],
            Html(text),
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}
