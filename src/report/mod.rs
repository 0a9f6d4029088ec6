//! The monthly report: its data model and its renderings (Markdown, self-contained
//! HTML with inline SVG charts, JSON). Pure: the app fills a [`MonthReport`] from the
//! catalog; this module only turns it into text.
//!
//! Every report carries the SHA-256 of its content and the digest of the previous
//! month's report (a tamper-evident chain; `app::report` keeps issued digests in the
//! catalog). The content is everything before the integrity trailer: for Markdown the
//! text before the line `<!-- omk-integrity -->`, for HTML the document before
//! `<footer class="integrity">`, for JSON the `report` member serialized compactly.

mod html;
mod markdown;

use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize)]
pub struct MonthReport {
    pub month: String,
    pub generated_at: String,
    pub repository: String,
    /// Open problems, most urgent first: they lead every rendering.
    pub problems: Vec<String>,
    pub jobs: Vec<JobMonth>,
    pub encryption: Vec<EncryptionEvidence>,
    pub check: CheckSummary,
    /// Per job and `[copies.NAME]` (3-2-1): none when no copies are configured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyMonth>,
}

/// A job in one copy repository at the end of the month.
#[derive(Debug, Clone, Serialize)]
pub struct CopyMonth {
    pub job: String,
    pub repository: String,
    /// The copy's URL, credentials masked.
    pub url: String,
    pub newest_snapshot: Option<String>,
    pub last_verified_restore: Option<String>,
    pub copy_lag_seconds: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobMonth {
    pub job: String,
    pub kind: String,
    /// The Docker engine running the job's container (`local` unless `[engines.*]`).
    pub engine: String,
    pub backups_run: i64,
    pub backups_failed: i64,
    pub snapshots: i64,
    pub bytes_added: i64,
    pub latest_snapshot_bytes: Option<i64>,
    pub restore_tests: i64,
    pub restore_tests_passed: i64,
    pub last_test: Option<TestSummary>,
    /// This month and the months before it, oldest first.
    pub trend: Vec<MonthPoint>,
}

impl JobMonth {
    /// The kind cell: `postgres`, or `postgres on nas` for another engine's job.
    pub fn kind_cell(&self) -> String {
        if self.engine == crate::config::LOCAL_ENGINE {
            self.kind.clone()
        } else {
            format!("{} on {}", self.kind, self.engine)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TestSummary {
    pub at: String,
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<i64>,
    pub files_hashed: Option<i64>,
    pub bytes_hashed: Option<i64>,
    pub not_compared: Option<i64>,
    pub failed_checks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthPoint {
    pub month: String,
    pub tests: i64,
    pub passed: i64,
    /// Mean RTO of passing tests.
    pub rto_seconds: Option<f64>,
    /// Mean RPO at test time.
    pub rpo_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EncryptionEvidence {
    pub at: String,
    pub passed: bool,
    pub checks: Vec<EvidenceCheck>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EvidenceCheck {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    #[serde(default)]
    pub skipped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    pub checks_run: i64,
    pub checks_failed: i64,
    pub period_days: u32,
    pub subsets: u32,
    pub subsets_read: u32,
    pub complete: bool,
    pub flag: Option<String>,
}

/// The three formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "md" | "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Json => "json",
        }
    }
}

/// A rendered report and its content digest.
pub struct Rendered {
    pub text: String,
    pub sha256: String,
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Render `r`, digest its content, and append the integrity trailer naming `previous`.
pub fn render(r: &MonthReport, f: Format, previous: Option<&str>) -> Rendered {
    match f {
        Format::Markdown => {
            let body = markdown::render(r);
            let sha = sha256_hex(body.as_bytes());
            let text = format!(
                "{body}<!-- omk-integrity -->\n---\nContent SHA-256: `{sha}`  \nPrevious month's report SHA-256: `{}`\n",
                previous.unwrap_or("none issued")
            );
            Rendered { text, sha256: sha }
        }
        Format::Html => {
            let body = html::render(r);
            let sha = sha256_hex(body.as_bytes());
            let text = format!(
                "{body}<footer class=\"integrity\"><p>Content SHA-256: <code>{sha}</code><br>Previous month's report SHA-256: <code>{}</code></p></footer>\n</main></body></html>\n",
                previous.unwrap_or("none issued")
            );
            Rendered { text, sha256: sha }
        }
        Format::Json => {
            let compact = serde_json::to_string(r).unwrap_or_default();
            let sha = sha256_hex(compact.as_bytes());
            let doc = serde_json::json!({
                "report": r,
                "integrity": { "content_sha256": sha, "previous_sha256": previous },
            });
            Rendered {
                text: serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
                sha256: sha,
            }
        }
    }
}

/// Human durations: 42 s, 3.5 min, 2.0 h, 3.1 d.
pub fn duration(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.1} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86_400.0),
    }
}

pub fn bytes(b: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> MonthReport {
        MonthReport {
            month: "2026-10".into(),
            generated_at: "2026-11-01T07:00:00Z".into(),
            repository: "/srv/restic".into(),
            copies: vec![CopyMonth {
                job: "photos".into(),
                repository: "offsite".into(),
                url: "rest:https://u:***@nas/".into(),
                newest_snapshot: Some("2026-10-31T02:30:00Z".into()),
                last_verified_restore: None,
                copy_lag_seconds: 0,
            }],
            problems: vec!["job <db>: no passing restore test".into()],
            jobs: vec![JobMonth {
                job: "photos".into(),
                kind: "files".into(),
                engine: "local".into(),
                backups_run: 31,
                backups_failed: 1,
                snapshots: 30,
                bytes_added: 1 << 30,
                latest_snapshot_bytes: Some(5 << 30),
                restore_tests: 4,
                restore_tests_passed: 4,
                last_test: None,
                trend: vec![MonthPoint {
                    month: "2026-10".into(),
                    tests: 4,
                    passed: 4,
                    rto_seconds: Some(12.5),
                    rpo_seconds: Some(3600.0),
                }],
            }],
            encryption: vec![],
            check: CheckSummary {
                checks_run: 4,
                checks_failed: 0,
                period_days: 30,
                subsets: 30,
                subsets_read: 4,
                complete: false,
                flag: None,
            },
        }
    }

    #[test]
    fn digest_covers_content_and_names_previous() {
        let r = sample();
        for f in [Format::Markdown, Format::Html, Format::Json] {
            let a = render(&r, f, Some("abc"));
            assert!(a.text.contains(&a.sha256), "{f:?}");
            assert!(a.text.contains("abc"), "{f:?}");
            let content = match f {
                Format::Markdown => a
                    .text
                    .split("<!-- omk-integrity -->")
                    .next()
                    .unwrap()
                    .to_string(),
                Format::Html => a
                    .text
                    .split("<footer class=\"integrity\">")
                    .next()
                    .unwrap()
                    .to_string(),
                Format::Json => serde_json::to_string(&r).unwrap(),
            };
            assert_eq!(sha256_hex(content.as_bytes()), a.sha256, "{f:?}");
        }
        // Markup in names is escaped in HTML.
        let h = render(&r, Format::Html, None).text;
        assert!(h.contains("&lt;db&gt;") && !h.contains("<db>"));
    }
}
