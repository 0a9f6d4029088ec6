//! restic's JSON, parsed leniently: unknown message types and fields are ignored, so a
//! newer restic that adds fields does not break us.

use serde::Deserialize;

/// One line of `restic backup --json` output.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupMessage {
    Status(BackupStatus),
    Summary(BackupSummary),
    Error(String),
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BackupStatus {
    pub percent_done: f64,
    pub total_files: u64,
    pub files_done: u64,
    pub total_bytes: u64,
    pub bytes_done: u64,
    pub seconds_elapsed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BackupSummary {
    pub snapshot_id: Option<String>,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub data_added: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
    pub total_duration: f64,
}

#[derive(Deserialize)]
struct Envelope {
    message_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorMessage {
    #[serde(default)]
    error: serde_json::Value,
    #[serde(default)]
    item: String,
    #[serde(default)]
    during: String,
}

/// Parse one stdout line; lines that are not JSON (restic prints a few) become `Other`.
pub fn parse_backup_line(line: &str) -> BackupMessage {
    let line = line.trim();
    if !line.starts_with('{') {
        return BackupMessage::Other;
    }
    let Ok(env) = serde_json::from_str::<Envelope>(line) else {
        return BackupMessage::Other;
    };
    match env.message_type.as_deref() {
        Some("status") => serde_json::from_str(line)
            .map(BackupMessage::Status)
            .unwrap_or(BackupMessage::Other),
        Some("summary") => serde_json::from_str(line)
            .map(BackupMessage::Summary)
            .unwrap_or(BackupMessage::Other),
        Some("error") => {
            let e: ErrorMessage = serde_json::from_str(line).unwrap_or(ErrorMessage {
                error: serde_json::Value::Null,
                item: String::new(),
                during: String::new(),
            });
            let what = match &e.error {
                serde_json::Value::Object(m) => m
                    .get("message")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => String::new(),
            };
            BackupMessage::Error(
                format!("{} ({}): {}", e.item, e.during, what)
                    .trim()
                    .to_string(),
            )
        }
        _ => BackupMessage::Other,
    }
}

/// A snapshot as `restic snapshots --json` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Snapshot {
    pub id: String,
    pub time: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    /// A copied snapshot: the id of the snapshot it was copied from (`restic copy`).
    #[serde(default)]
    pub original: Option<String>,
    /// 0.17+ only.
    #[serde(default)]
    pub summary: Option<SnapshotSummary>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct SnapshotSummary {
    pub total_bytes_processed: u64,
    pub total_files_processed: u64,
    pub data_added: u64,
    pub backup_start: Option<String>,
    pub backup_end: Option<String>,
}

/// One group of `restic forget --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ForgetGroup {
    #[serde(default)]
    pub keep: Option<Vec<Snapshot>>,
    #[serde(default)]
    pub remove: Option<Vec<Snapshot>>,
}

/// A node of `restic ls --json` (the first line describes the snapshot; skip it).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LsNode {
    pub path: String,
    #[serde(rename = "type")]
    pub node_type: String,
    #[serde(default)]
    pub size: Option<u64>,
    pub struct_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_lines() {
        let s = parse_backup_line(
            r#"{"message_type":"status","percent_done":0.5,"total_files":4,"files_done":2,"total_bytes":100,"bytes_done":50,"new_field":1}"#,
        );
        assert!(matches!(
            s,
            BackupMessage::Status(BackupStatus {
                files_done: 2,
                bytes_done: 50,
                ..
            })
        ));
        let s = parse_backup_line(
            r#"{"message_type":"summary","files_new":3,"data_added":10,"total_files_processed":3,"total_bytes_processed":42,"total_duration":0.1,"snapshot_id":"abcd"}"#,
        );
        match s {
            BackupMessage::Summary(sum) => {
                assert_eq!(sum.snapshot_id.as_deref(), Some("abcd"));
                assert_eq!(sum.total_bytes_processed, 42);
            }
            other => panic!("{other:?}"),
        }
        let e = parse_backup_line(
            r#"{"message_type":"error","error":{"message":"permission denied"},"during":"archival","item":"/x"}"#,
        );
        assert_eq!(
            e,
            BackupMessage::Error("/x (archival): permission denied".into())
        );
        assert_eq!(parse_backup_line("open repository"), BackupMessage::Other);
        assert_eq!(
            parse_backup_line(r#"{"message_type":"verbose_status"}"#),
            BackupMessage::Other
        );
    }

    #[test]
    fn snapshot_without_summary_is_014() {
        let s: Vec<Snapshot> = serde_json::from_str(r#"[{"time":"2026-01-01T00:00:00.1+01:00","tree":"t","paths":["/a"],"hostname":"h","tags":["omk:job=a"],"id":"abc","short_id":"ab"}]"#).unwrap();
        assert_eq!(s[0].summary, None);
        assert_eq!(s[0].tags, vec!["omk:job=a".to_string()]);
    }
}
