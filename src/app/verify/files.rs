//! The comparison of a files job's scratch restore: the restored tree against the
//! snapshot's listing (names and sizes), and restored content against the live source
//! (SHA-256) for every file that provably did not change since the snapshot started.

use super::hash::{hash_all, walk_files};
use crate::catalog::Check;
use crate::restic::LsNode;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Compared {
    pub checks: Vec<Check>,
    pub files_listed: i64,
    pub files_hashed: i64,
    pub bytes_hashed: i64,
    pub not_compared: i64,
}

/// Where a snapshot path lands in the scratch folder.
pub fn scratch_path(scratch: &Path, snapshot_path: &str) -> PathBuf {
    scratch.join(snapshot_path.trim_start_matches('/'))
}

fn sample(items: &[String]) -> String {
    let mut s = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        s.push_str(&format!(" and {} more", items.len() - 5));
    }
    s
}

/// "N thing(s) what: a, b, c" for each non-empty list, joined with "; ".
fn problems(lists: &[(&[String], &str)]) -> String {
    lists
        .iter()
        .filter(|(items, _)| !items.is_empty())
        .map(|(items, what)| format!("{} {what}: {}", items.len(), sample(items)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Compare `scratch` (a restore of the job's paths) with the snapshot listing and the
/// source. `snapshot_start` is the time restic started the snapshot: a source file
/// whose mtime is later may have changed and is not hashed.
pub fn compare(
    nodes: &[LsNode],
    job_paths: &[PathBuf],
    scratch: &Path,
    snapshot_start: Option<SystemTime>,
) -> Compared {
    let mut out = Compared::default();
    let under_job = |p: &str| job_paths.iter().any(|j| Path::new(p).starts_with(j));
    let files: Vec<&LsNode> = nodes
        .iter()
        .filter(|n| n.node_type == "file" && under_job(&n.path))
        .collect();
    let specials = nodes
        .iter()
        .filter(|n| !matches!(n.node_type.as_str(), "file" | "dir") && under_job(&n.path))
        .count();
    out.files_listed = files.len() as i64;
    out.checks.extend(list_checks(&files, scratch));
    let (deleted, changed) = content_check(&files, scratch, snapshot_start, &mut out);
    out.not_compared = (deleted + changed + specials) as i64;
    out.checks
        .push(not_compared_check(deleted, changed, specials));
    out
}

/// The file list (1.): every listed file restored, nothing else, each with its size.
fn list_checks(files: &[&LsNode], scratch: &Path) -> [Check; 2] {
    let mut missing = Vec::new();
    let mut wrong_size = Vec::new();
    for n in files {
        let r = scratch_path(scratch, &n.path);
        match std::fs::symlink_metadata(&r) {
            Ok(m) if m.is_file() => {
                if let Some(want) = n.size
                    && m.len() != want
                {
                    wrong_size.push(format!("{} ({} B, snapshot {} B)", n.path, m.len(), want));
                }
            }
            _ => missing.push(n.path.clone()),
        }
    }
    let listed: BTreeSet<PathBuf> = files
        .iter()
        .map(|n| scratch_path(scratch, &n.path))
        .collect();
    let extra: Vec<String> = match walk_files(scratch) {
        Ok(all) => all
            .into_iter()
            .filter(|p| !listed.contains(p))
            .map(|p| format!("/{}", p.strip_prefix(scratch).unwrap_or(&p).display()))
            .collect(),
        Err(e) => vec![format!("(cannot read the scratch folder: {e})")],
    };
    let list_ok = missing.is_empty() && extra.is_empty();
    let list = Check::new(
        "file-list",
        list_ok,
        if list_ok {
            format!(
                "all {} files of the snapshot were restored, and nothing else",
                files.len()
            )
        } else {
            problems(&[
                (&missing, "file(s) of the snapshot not restored"),
                (&extra, "file(s) restored that the snapshot does not list"),
            ])
        },
    );
    let sizes = Check::new(
        "sizes",
        wrong_size.is_empty(),
        if wrong_size.is_empty() {
            "every restored file has the size the snapshot records".to_string()
        } else {
            problems(&[(&wrong_size, "file(s) restored with the wrong size")])
        },
    );
    [list, sizes]
}

/// Content (2.): hash restored and source copies of files unchanged since the snapshot.
/// Returns how many were (deleted, changed) in the source meanwhile.
fn content_check(
    files: &[&LsNode],
    scratch: &Path,
    snapshot_start: Option<SystemTime>,
    out: &mut Compared,
) -> (usize, usize) {
    let mut deleted = 0usize;
    let mut changed = 0usize;
    let mut pairs: Vec<(String, PathBuf, PathBuf, u64)> = Vec::new();
    for n in files {
        let r = scratch_path(scratch, &n.path);
        if !r.is_file() {
            continue;
        }
        let src = PathBuf::from(&n.path);
        match std::fs::symlink_metadata(&src) {
            Ok(m) if m.is_file() => {
                let newer = match (m.modified().ok(), snapshot_start) {
                    (Some(mt), Some(start)) => mt > start,
                    _ => true,
                };
                if newer || Some(m.len()) != n.size {
                    changed += 1;
                } else {
                    pairs.push((n.path.clone(), r, src, m.len()));
                }
            }
            _ => deleted += 1,
        }
    }
    let to_hash: Vec<PathBuf> = pairs
        .iter()
        .flat_map(|(_, r, s, _)| [r.clone(), s.clone()])
        .collect();
    let digests = hash_all(&to_hash);
    let mut differ = Vec::new();
    let mut unreadable = Vec::new();
    for (i, (name, _, _, len)) in pairs.iter().enumerate() {
        match (&digests[2 * i], &digests[2 * i + 1]) {
            (Ok(a), Ok(b)) if a == b => {
                out.files_hashed += 1;
                out.bytes_hashed += *len as i64;
            }
            (Ok(_), Ok(_)) => differ.push(name.clone()),
            (Err(e), _) | (_, Err(e)) => unreadable.push(format!("{name} ({e})")),
        }
    }
    let ok = differ.is_empty() && unreadable.is_empty();
    out.checks.push(Check::new(
        "content",
        ok,
        if ok {
            format!(
                "SHA-256 of {} restored file(s) ({} bytes) equals the source",
                out.files_hashed, out.bytes_hashed
            )
        } else {
            problems(&[
                (&differ, "restored file(s) differ from the unchanged source"),
                (&unreadable, "file(s) could not be read for hashing"),
            ])
        },
    ));
    (deleted, changed)
}

/// What could not be compared (3.), and why (informational: passes).
fn not_compared_check(deleted: usize, changed: usize, specials: usize) -> Check {
    let mut d = Vec::new();
    if changed > 0 {
        d.push(format!(
            "{changed} file(s) changed in the source since the snapshot started (newer mtime or other size): size checked, content not comparable"
        ));
    }
    if deleted > 0 {
        d.push(format!(
            "{deleted} file(s) no longer in the source: size checked, content not comparable"
        ));
    }
    if specials > 0 {
        d.push(format!(
            "{specials} symlink(s) or special file(s): not hashed"
        ));
    }
    let detail = if d.is_empty() {
        "every listed file was compared with its source".to_string()
    } else {
        d.join("; ")
    };
    Check::new("not-compared", true, detail)
}
