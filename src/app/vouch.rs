//! What `catalog rebuild` can vouch for: a database job's dump snapshot, streamed once
//! from the repository (`restic dump`), is good when it is not empty and ends with its
//! engine's end marker; its size and SHA-256 become the catalog's `dumps` row. Anything
//! else (files snapshots, jobs this config does not define, cut or unreadable dumps)
//! stays `unverified`, so `restore latest` does not hand it out.

use super::dump::filename;
use crate::catalog::DumpRow;
use crate::config::Job;
use crate::engine::{self, keep_tail};
use crate::restic::{Restic, Snapshot};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The verdict on one snapshot found in the repository.
pub enum Verdict {
    /// Streamed and complete: record it good, with this digest.
    Good(DumpRow),
    /// Cannot be vouched for; the reason goes into the snapshot's note.
    Unverified(String),
}

/// Judge snapshot `s` of `job` (`None`: a job the config does not define).
pub async fn judge(restic: &Restic, s: &Snapshot, job_name: &str, job: Option<&Job>) -> Verdict {
    let Some(job) = job else {
        return Verdict::Unverified(format!(
            "rebuilt from the repository; job `{job_name}` is not in the config, so its snapshot cannot be checked"
        ));
    };
    let Some(engine) = engine::for_kind(job.kind) else {
        return Verdict::Unverified(
            "rebuilt from the repository; a files snapshot cannot be vouched for without a restore test"
                .to_string(),
        );
    };
    let file = filename(job);
    match stream(restic, &s.id, &file).await {
        Err(e) => Verdict::Unverified(format!(
            "rebuilt from the repository; cannot read {file} from it: {e:#}"
        )),
        Ok((0, _, _)) => {
            Verdict::Unverified(format!("rebuilt from the repository; {file} is empty"))
        }
        Ok((_, _, tail)) if !engine.ends_complete(job, &tail) => Verdict::Unverified(format!(
            "rebuilt from the repository; {file} does not end with `{}`: the dump is cut",
            engine.end_marker(job)
        )),
        Ok((bytes, sha256, _)) => Verdict::Good(DumpRow {
            snapshot_id: s.id.clone(),
            job: job.name.clone(),
            engine: job.kind.as_str().to_string(),
            filename: file,
            sha256,
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            fingerprint: None,
        }),
    }
}

/// Stream `/<file>` of snapshot `id` once: (bytes, SHA-256 hex, last bytes).
async fn stream(restic: &Restic, id: &str, file: &str) -> anyhow::Result<(u64, String, Vec<u8>)> {
    let mut child = restic.dump(id, &format!("/{file}"))?;
    let Some(mut out) = child.stdout.take() else {
        anyhow::bail!("restic dump has no stdout");
    };
    let mut hasher = Sha256::new();
    let mut tail = Vec::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let read = loop {
        match out.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => {
                hasher.update(&buf[..n]);
                keep_tail(&mut tail, &buf[..n]);
                bytes += n as u64;
            }
            Err(e) => break Err(e),
        }
    };
    drop(out);
    restic.finish_dump(child).await?;
    read?;
    Ok((bytes, hex::encode(hasher.finalize()), tail))
}
