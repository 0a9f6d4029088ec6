//! Typed JSON detail columns: `steps.detail` is written from [`StepDetail`], and the
//! check lists of restore tests and encryption proofs are [`Check`]s, never hand-built
//! JSON, so every detail has one shape and a bad one reads as an error naming its row.

use serde::{Deserialize, Serialize};

/// One verification: the stable `{name, passed, detail}`, plus `skipped` when it could
/// not run here (then `passed` is true and `detail` says what was not checked and why).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

impl Check {
    pub fn new(name: &str, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed,
            detail: detail.into(),
            skipped: false,
        }
    }

    pub fn skipped(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: true,
            detail: detail.into(),
            skipped: true,
        }
    }
}

/// What a finished step records in `steps.detail` (JSON, untagged: the fields say the
/// kind).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StepDetail {
    /// A job's backup: its snapshot and figures (database jobs: the dump's digest/size).
    Backup {
        snapshot_id: String,
        bytes: u64,
        files: u64,
        data_added: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dump_bytes: Option<i64>,
        /// Why the snapshot was recorded `suspect` (the source shrank), or that a
        /// shrink was accepted (`--accept-shrink`).
        #[serde(skip_serializing_if = "Option::is_none")]
        shrink: Option<String>,
    },
    /// Retention for one job: the snapshots it removed.
    Retention { removed: Vec<String> },
    /// A repository check: which data subset was read.
    Check {
        read_data_subset: String,
        rotating: bool,
    },
    /// A restore test of one job.
    RestoreTest {
        snapshot_id: Option<String>,
        rto_seconds: Option<f64>,
        rpo_seconds: Option<i64>,
    },
    /// A list of checks (the encryption proof).
    Checks(Vec<Check>),
}

impl StepDetail {
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// A detail value as the JSON text its column holds.
pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl super::Catalog {
    /// Parse a JSON detail column; a bad value is an error naming table, row and column.
    pub(super) fn parse_detail<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        row: &str,
        column: &'static str,
        text: &str,
    ) -> super::Result<T> {
        serde_json::from_str(text).map_err(|e| super::CatalogError::BadDetail {
            path: self.path.clone(),
            table,
            row: row.to_string(),
            column,
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_details_keep_their_json_shape() {
        let d = StepDetail::Backup {
            snapshot_id: "ab".into(),
            bytes: 1,
            files: 2,
            data_added: 3,
            sha256: None,
            dump_bytes: None,
            shrink: None,
        };
        assert_eq!(
            d.to_json(),
            r#"{"snapshot_id":"ab","bytes":1,"files":2,"data_added":3}"#
        );
        let r = StepDetail::Retention {
            removed: vec!["x".into()],
        };
        assert_eq!(r.to_json(), r#"{"removed":["x"]}"#);
    }
}
