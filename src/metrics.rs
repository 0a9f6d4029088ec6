//! The Prometheus textfile (node-exporter's textfile collector): per-job figures from the
//! catalog, written atomically (a temp file in the same folder, then rename) so the
//! collector never reads half a file.

use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::RunStatus;
use std::fmt::Write as _;
use std::path::Path;

/// Render the metrics for every configured job at `now_ms`.
pub fn render(config: &Config, catalog: &Catalog, now_ms: i64) -> anyhow::Result<String> {
    let mut out = String::new();
    let metrics = [
        (
            "omk_backup_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the job's last successful backup.",
        ),
        (
            "omk_backup_last_duration_seconds",
            "gauge",
            "Duration of the job's last backup attempt.",
        ),
        (
            "omk_backup_last_bytes",
            "gauge",
            "Bytes processed by the job's last successful backup attempt.",
        ),
        (
            "omk_backup_last_status",
            "gauge",
            "Last backup attempt: 0 success, 1 failed, 2 interrupted, 3 skipped, 4 running.",
        ),
        (
            "omk_backup_rpo_seconds",
            "gauge",
            "Age of the job's newest good backup (recovery point objective).",
        ),
        (
            "omk_backup_last_verified_restore_timestamp_seconds",
            "gauge",
            "Unix time of the job's last verified restore test.",
        ),
    ];
    let mut rows: Vec<Vec<(String, f64)>> = vec![Vec::new(); metrics.len()];
    for job in config.jobs.keys() {
        let m = catalog.job_metrics(job)?;
        let label = format!("job=\"{}\"", escape(job));
        if let Some(t) = m.last_success_ms {
            rows[0].push((label.clone(), t as f64 / 1000.0));
            rows[4].push((label.clone(), ((now_ms - t).max(0) / 1000) as f64));
        }
        if let Some(d) = m.last_duration_ms {
            rows[1].push((label.clone(), d as f64 / 1000.0));
        }
        if let Some(b) = m.last_bytes {
            rows[2].push((label.clone(), b as f64));
        }
        if let Some(s) = m.last_status {
            let code = match s {
                RunStatus::Success => 0,
                RunStatus::Failed => 1,
                RunStatus::Interrupted => 2,
                RunStatus::Skipped => 3,
                RunStatus::Running => 4,
            };
            rows[3].push((label.clone(), code as f64));
        }
        if let Some(t) = m.last_verified_restore_ms {
            rows[5].push((label, t as f64 / 1000.0));
        }
    }
    let mut copies = String::new();
    copy_series(&mut copies, config, catalog, now_ms)?;
    families(&mut out, &metrics, rows, &copies);
    proof_series(&mut out, config, catalog, now_ms)?;
    engine_series(&mut out, config);
    let _ = writeln!(
        out,
        "# HELP omk_backup_metrics_written_timestamp_seconds When omk-backup wrote this file.\n# TYPE omk_backup_metrics_written_timestamp_seconds gauge\nomk_backup_metrics_written_timestamp_seconds {}",
        now_ms as f64 / 1000.0
    );
    Ok(out)
}

/// The per-job families, each followed by the copies' series of the same name, then
/// the copy-lag family.
fn families(
    out: &mut String,
    metrics: &[(&str, &str, &str)],
    rows: Vec<Vec<(String, f64)>>,
    copies: &str,
) {
    for ((name, kind, help), values) in metrics.iter().zip(rows) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (label, v) in values {
            let _ = writeln!(out, "{name}{{{label}}} {v}");
        }
        let prefix = format!("{name}{{");
        for line in copies.lines().filter(|l| l.starts_with(&prefix)) {
            let _ = writeln!(out, "{line}");
        }
    }
    let lag = "omk_backup_copy_lag_seconds";
    for line in copies
        .lines()
        .filter(|l| l.starts_with(lag) || l.contains(&format!(" {lag} ")))
    {
        let _ = writeln!(out, "{line}");
    }
}

/// Per job and `[copies.NAME]`: the same RPO and last-verified-restore series as the
/// primary's, told apart by a `repository="NAME"` label (the primary's series carry no
/// `repository` label, so existing selectors keep working), and the copy lag: how long
/// the oldest good snapshot not yet copied has waited (0 when the copy is current).
fn copy_series(
    out: &mut String,
    config: &Config,
    catalog: &Catalog,
    now_ms: i64,
) -> anyhow::Result<()> {
    if config.copies.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        out,
        "# HELP omk_backup_copy_lag_seconds How long the job's oldest good snapshot not yet in the copy has waited (0: the copy holds the newest).\n# TYPE omk_backup_copy_lag_seconds gauge"
    );
    let mut rpo = String::new();
    let mut verified = String::new();
    for job in config.jobs.keys() {
        for name in config.copies.keys() {
            let st = catalog.copy_state(job, name, now_ms)?;
            let label = format!("job=\"{}\",repository=\"{}\"", escape(job), escape(name));
            let _ = writeln!(
                out,
                "omk_backup_copy_lag_seconds{{{label}}} {}",
                st.lag_ms / 1000
            );
            if let Some((t, _)) = st.newest {
                let age = (now_ms - t).max(0) / 1000;
                let _ = writeln!(rpo, "omk_backup_rpo_seconds{{{label}}} {age}");
            }
            if let Some(t) = st.last_verified {
                let _ = writeln!(
                    verified,
                    "omk_backup_last_verified_restore_timestamp_seconds{{{label}}} {}",
                    t as f64 / 1000.0
                );
            }
        }
    }
    out.push_str(&rpo);
    out.push_str(&verified);
    Ok(())
}

/// Which Docker engine runs each job: an info series (join on `job` in queries), so the
/// other series keep their labels.
fn engine_series(out: &mut String, config: &Config) {
    let _ = writeln!(
        out,
        "# HELP omk_backup_job_info The job's kind and the Docker engine its container runs on.\n# TYPE omk_backup_job_info gauge"
    );
    for job in config.jobs.values() {
        let _ = writeln!(
            out,
            "omk_backup_job_info{{job=\"{}\",kind=\"{}\",engine=\"{}\"}} 1",
            escape(&job.name),
            job.kind.as_str(),
            escape(&job.engine)
        );
    }
}

/// The proof, not only the backup: each job's last verified RTO, and the repository's
/// encryption-proof age, check coverage and failed-check flag, so alert rules can cover
/// them.
fn proof_series(
    out: &mut String,
    config: &Config,
    catalog: &Catalog,
    now_ms: i64,
) -> anyhow::Result<()> {
    let _ = writeln!(
        out,
        "# HELP omk_backup_last_rto_seconds Recovery time of the job's last verified restore test.\n# TYPE omk_backup_last_rto_seconds gauge"
    );
    for job in config.jobs.keys() {
        if let Some(rto) = catalog.last_rto(job)? {
            let _ = writeln!(
                out,
                "omk_backup_last_rto_seconds{{job=\"{}\"}} {}",
                escape(job),
                rto as f64 / 1000.0
            );
        }
    }
    let repo = config.repository.url.shown();
    let _ = writeln!(
        out,
        "# HELP omk_backup_encryption_proof_age_seconds Age of the repository's newest encryption proof (absent: never proven).\n# TYPE omk_backup_encryption_proof_age_seconds gauge"
    );
    if let Some(e) = catalog.last_encryption_check(repo)? {
        let _ = writeln!(
            out,
            "omk_backup_encryption_proof_age_seconds {}",
            ((now_ms - e.at).max(0) / 1000) as f64
        );
    }
    let _ = writeln!(
        out,
        "# HELP omk_backup_encryption_proof_passed Whether the newest encryption proof passed (1) or failed (0).\n# TYPE omk_backup_encryption_proof_passed gauge"
    );
    if let Some(e) = catalog.last_encryption_check(repo)? {
        let _ = writeln!(
            out,
            "omk_backup_encryption_proof_passed {}",
            u8::from(e.passed)
        );
    }
    let cov = crate::app::health::coverage(catalog, repo, config.check, now_ms)?;
    let _ = writeln!(
        out,
        "# HELP omk_backup_check_coverage_ratio Share of the repository's data passing checks read within [check] period_days.\n# TYPE omk_backup_check_coverage_ratio gauge\nomk_backup_check_coverage_ratio {}",
        f64::from(cov.subsets_read.min(cov.subsets)) / f64::from(cov.subsets.max(1))
    );
    let _ = writeln!(
        out,
        "# HELP omk_backup_repository_check_failed 1 while the repository's most recent check failed.\n# TYPE omk_backup_repository_check_failed gauge\nomk_backup_repository_check_failed {}",
        u8::from(catalog.repository_flag(repo)?.is_some())
    );
    Ok(())
}

/// Write `text` to `path` atomically: temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(crate::private::GROUP_READ)
                .open(&tmp)?
        };
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Render and write the textfile the config names, if any. Errors are the caller's to
/// log: metrics never fail a task.
pub fn update(config: &Config, catalog: &Catalog, now_ms: i64) -> anyhow::Result<()> {
    let Some(path) = &config.metrics_textfile else {
        return Ok(());
    };
    let text = render(config, catalog, now_ms)?;
    write_atomic(path, &text).map_err(|e| {
        anyhow::anyhow!(
            "cannot write the metrics textfile {}: {e}; check [metrics] textfile and that its folder exists and is writable",
            path.display()
        )
    })
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("omk.prom");
        write_atomic(&p, "a 1\n").unwrap();
        write_atomic(&p, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(write_atomic(&d.path().join("missing/x.prom"), "x").is_err());
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
