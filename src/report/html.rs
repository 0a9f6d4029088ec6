//! The HTML rendering: one self-contained file (inline CSS, inline SVG charts, no
//! scripts, no external resources), readable on screen and in print.

use super::{JobMonth, MonthReport, bytes, duration};
use std::fmt::Write;

/// Escape text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
:root { --ok: #1a7f37; --bad: #b42318; --muted: #5b6270; --line: #d8dde6; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 28px; }
.meta { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
th { background: #f0f3f6; font-weight: 600; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.problems { border: 2px solid var(--bad); border-radius: 6px; padding: 8px 16px; background: #fff5f4; }
.noproblems { border: 2px solid var(--ok); border-radius: 6px; padding: 8px 16px; background: #f2fbf4; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { flex: 1 1 300px; }
.chart svg { width: 100%; height: auto; }
footer.integrity { margin-top: 32px; color: var(--muted); font-size: 0.85em; word-break: break-all; }
@media print {
  body { background: #fff; font-size: 11pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  table, .chart, section.job { break-inside: avoid; }
  .problems, .noproblems { background: none; }
}
"#;

pub fn render(r: &MonthReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
    <title>Backup report {m}</title><style>{CSS}</style></head><body><main>\n\
    <h1>Backup and restore report — {m}</h1>\n<p class=\"meta\">Repository <code>{repo}</code> · generated {gen}</p>\n",
        m = esc(&r.month),
        repo = esc(&r.repository),
        gen = esc(&r.generated_at)
    );
    if r.problems.is_empty() {
        s.push_str("<div class=\"noproblems\"><h2>Open problems</h2><p>None.</p></div>\n");
    } else {
        s.push_str("<div class=\"problems\"><h2>Open problems</h2><ul>\n");
        for p in &r.problems {
            let _ = writeln!(s, "<li>{}</li>", esc(p));
        }
        s.push_str("</ul></div>\n");
    }
    jobs(&mut s, r);
    trend(&mut s, r);
    encryption(&mut s, r);
    copies(&mut s, r);
    integrity(&mut s, r);
    s
}

/// The per-job table: backups, snapshots, sizes, restore tests, last RTO/RPO.
fn jobs(s: &mut String, r: &MonthReport) {
    s.push_str("<h2>Jobs</h2>\n<table><thead><tr><th>job</th><th>kind</th><th>backups (failed)</th><th>snapshots</th><th>data added</th><th>latest size</th><th>restore tests</th><th>last RTO</th><th>last RPO</th></tr></thead><tbody>\n");
    for j in &r.jobs {
        let t = j.last_test.as_ref();
        let tests_class = if j.restore_tests > 0 && j.restore_tests == j.restore_tests_passed {
            "ok"
        } else {
            "bad"
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{} (<span class=\"{}\">{}</span>)</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{tests_class}\">{}/{}</td><td>{}</td><td>{}</td></tr>",
            esc(&j.job),
            esc(&j.kind_cell()),
            j.backups_run,
            if j.backups_failed > 0 { "bad" } else { "ok" },
            j.backups_failed,
            j.snapshots,
            bytes(j.bytes_added),
            j.latest_snapshot_bytes
                .map(bytes)
                .unwrap_or_else(|| "-".into()),
            j.restore_tests_passed,
            j.restore_tests,
            t.and_then(|t| t.rto_seconds)
                .map(duration)
                .unwrap_or_else(|| "-".into()),
            t.and_then(|t| t.rpo_seconds)
                .map(|x| duration(x as f64))
                .unwrap_or_else(|| "-".into()),
        );
    }
    s.push_str("</tbody></table>\n");
}

/// Each job's RTO and RPO charts.
fn trend(s: &mut String, r: &MonthReport) {
    s.push_str("<h2>RTO and RPO trend</h2>\n");
    for j in &r.jobs {
        let _ = writeln!(
            s,
            "<section class=\"job\"><h3>{}</h3><div class=\"charts\"><div class=\"chart\">{}</div><div class=\"chart\">{}</div></div></section>",
            esc(&j.job),
            chart(
                j,
                "RTO (mean of passing tests)",
                |p| p.rto_seconds,
                "#2f6feb"
            ),
            chart(j, "RPO (mean at test time)", |p| p.rpo_seconds, "#8250df"),
        );
    }
}

/// The month's encryption proofs and their checks.
/// Each job in each copy repository: newest snapshot, last verified restore, lag.
fn copies(s: &mut String, r: &MonthReport) {
    if r.copies.is_empty() {
        return;
    }
    s.push_str("<h2>Copies (3-2-1)</h2>\n<table><thead><tr><th>job</th><th>copy</th><th>newest snapshot</th><th>last verified restore</th><th>copy lag</th></tr></thead><tbody>\n");
    for c in &r.copies {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{} <code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.job),
            esc(&c.repository),
            esc(&c.url),
            esc(c.newest_snapshot.as_deref().unwrap_or("none")),
            esc(c.last_verified_restore.as_deref().unwrap_or("never")),
            esc(&super::duration(c.copy_lag_seconds as f64))
        );
    }
    s.push_str("</tbody></table>\n");
}

fn encryption(s: &mut String, r: &MonthReport) {
    s.push_str("<h2>Encryption evidence</h2>\n");
    if r.encryption.is_empty() {
        s.push_str("<p class=\"bad\">No encryption proof ran this month.</p>\n");
    }
    for e in &r.encryption {
        let _ = writeln!(
            s,
            "<p>{} — <span class=\"{}\">{}</span></p><table><tbody>",
            esc(&e.at),
            if e.passed { "ok" } else { "bad" },
            if e.passed { "proven" } else { "NOT PROVEN" }
        );
        for c in &e.checks {
            let (class, mark) = if c.skipped {
                ("", "not checked")
            } else if c.passed {
                ("ok", "ok")
            } else {
                ("bad", "FAILED")
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"{class}\">{mark}</td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.detail)
            );
        }
        s.push_str("</tbody></table>\n");
    }
}

/// `restic check` runs and data-subset coverage.
fn integrity(s: &mut String, r: &MonthReport) {
    let c = &r.check;
    let _ = writeln!(
        s,
        "<h2>Integrity checks</h2>\n<p>{} check(s) this month, <span class=\"{}\">{} failed</span>. Coverage: <strong>{}/{}</strong> data subsets read by passing checks in the last {} days{}.</p>",
        c.checks_run,
        if c.checks_failed > 0 { "bad" } else { "ok" },
        c.checks_failed,
        c.subsets_read,
        c.subsets,
        c.period_days,
        if c.complete {
            " — every pack read"
        } else {
            ""
        }
    );
    if let Some(f) = &c.flag {
        let _ = writeln!(s, "<p class=\"bad\">Repository flagged: {}</p>", esc(f));
    }
}

/// A small bar chart of one value per month, as inline SVG.
fn chart(
    j: &JobMonth,
    title: &str,
    value: impl Fn(&super::MonthPoint) -> Option<f64>,
    color: &str,
) -> String {
    let (w, h, left, bottom, top) = (360.0, 180.0, 56.0, 28.0, 26.0);
    let max = j
        .trend
        .iter()
        .filter_map(&value)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let n = j.trend.len().max(1) as f64;
    let slot = (w - left - 8.0) / n;
    let plot_h = h - bottom - top;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\">\
<text x=\"{left}\" y=\"16\" font-size=\"13\" font-weight=\"600\" fill=\"#1f2328\">{t}</text>\
<line x1=\"{left}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#8c959f\"/>\
<text x=\"{lx}\" y=\"{ty}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6270\">{maxl}</text>\
<text x=\"{lx}\" y=\"{y0}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6270\">0</text>",
        t = esc(title),
        y0 = h - bottom,
        x1 = w - 8.0,
        lx = left - 4.0,
        ty = top + 4.0,
        maxl = esc(&duration(max)),
    );
    for (i, p) in j.trend.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let bw = slot * 0.7;
        let label_x = left + slot * i as f64 + slot / 2.0;
        match value(p) {
            Some(v) => {
                let bh = (v / max * plot_h).max(1.0);
                let _ = write!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>",
                    h - bottom - bh,
                    esc(&p.month),
                    esc(&duration(v))
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<text x=\"{label_x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#8c959f\">no test</text>",
                    h - bottom - 4.0
                );
            }
        }
        let _ = write!(
            s,
            "<text x=\"{label_x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6270\">{}</text>",
            h - bottom + 14.0,
            esc(&p.month)
        );
    }
    s.push_str("</svg>");
    s
}
