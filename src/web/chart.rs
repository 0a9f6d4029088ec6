//! Small inline SVG line charts for a job's history (bytes, duration, RTO). No script,
//! no style attributes (the CSP forbids inline style): classes and presentation
//! attributes only.

use maud::{Markup, html};

const W: f64 = 560.0;
const H: f64 = 140.0;
const PAD_L: f64 = 64.0;
const PAD_B: f64 = 22.0;
const PAD_T: f64 = 10.0;

/// A line chart of `(time ms, value)` points, the y axis labelled by `fmt`.
pub fn line(title: &str, points: &[(i64, f64)], fmt: fn(f64) -> String) -> Markup {
    if points.is_empty() {
        return html! {
            figure.chart { figcaption { (title) } p.muted { "no data yet" } }
        };
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let vmax = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9);
    let x = |t: i64| {
        if t1 == t0 {
            PAD_L + (W - PAD_L) / 2.0
        } else {
            PAD_L + (t - t0) as f64 / (t1 - t0) as f64 * (W - PAD_L - 8.0)
        }
    };
    let y = |v: f64| PAD_T + (1.0 - v / vmax) * (H - PAD_T - PAD_B);
    let path: Vec<String> = points
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect();
    let day = |t: i64| crate::domain::from_millis(t).format("%Y-%m-%d").to_string();
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
                line.axis x1=(PAD_L) y1=(H - PAD_B) x2=(W) y2=(H - PAD_B) {}
                line.axis x1=(PAD_L) y1=(PAD_T) x2=(PAD_L) y2=(H - PAD_B) {}
                text.tick x=(PAD_L - 6.0) y=(PAD_T + 4.0) text-anchor="end" { (fmt(vmax)) }
                text.tick x=(PAD_L - 6.0) y=(H - PAD_B) text-anchor="end" { (fmt(0.0)) }
                text.tick x=(PAD_L) y=(H - 4.0) { (day(t0)) }
                text.tick x=(W - 4.0) y=(H - 4.0) text-anchor="end" { (day(t1)) }
                polyline.series points=(path.join(" ")) {}
                @for (t, v) in points {
                    circle.dot cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(*v))) r="2.5" {
                        title { (day(*t)) ": " (fmt(*v)) }
                    }
                }
            }
        }
    }
}
