//! Dump processes a dead run left behind. Every dump exec carries the environment entry
//! `OMK_BACKUP_DUMP_RUN=<run id>` (inherited by `pg_dump`/`mariadb-dump`, which the
//! wrapper `exec`s), so after a crash the next command can find exactly that run's dump
//! processes in a job's container — by reading `/proc/*/environ` from an exec in that
//! container (the same user as the dump, so it may read it; no extra proxy endpoint) —
//! and stop them: SIGTERM, SIGKILL after 10 s. A dump blocked on a lock writes nothing,
//! so it never gets the broken pipe that ends a dump whose reader died.

use crate::docker::{Docker, DockerError, ExecSpec};
use std::time::Duration;

/// The name of the environment entry that marks our dump processes.
pub const MARKER: &str = "OMK_BACKUP_DUMP_RUN";

/// The marker entry for the dumps of run `run_id`.
pub fn marker(run_id: &str) -> String {
    format!("{MARKER}={run_id}")
}

/// Finds the processes whose environment holds `$1` exactly (not this shell), sends them
/// SIGTERM, waits up to 10 s, SIGKILLs what is left, and prints their pids. The shell's
/// builtin `kill`: database images often have no `kill` binary.
const SCRIPT: &str = r#"found=""
for p in /proc/[0-9]*; do
  q=${p#/proc/}
  [ "$q" = "$$" ] && continue
  if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qxF -e "$1"; then found="$found $q"; fi
done
[ -z "$found" ] && exit 0
kill -TERM $found 2>/dev/null
i=0
while [ $i -lt 50 ]; do
  alive=""
  for q in $found; do [ -d "/proc/$q" ] && alive="$alive $q"; done
  [ -z "$alive" ] && break
  sleep 0.2
  i=$((i + 1))
done
[ -n "$alive" ] && kill -KILL $alive 2>/dev/null
echo $found
"#;

/// Stop the dump processes of run `run_id` still running in `container`; returns their
/// pids (inside the container).
pub async fn stop(docker: &Docker, container: &str, run_id: &str) -> anyhow::Result<Vec<u32>> {
    let spec = ExecSpec {
        cmd: vec![
            "sh".into(),
            "-c".into(),
            SCRIPT.into(),
            "sh".into(),
            marker(run_id),
        ],
        env: Vec::new(),
        user: None,
    };
    let (code, out, err) = match docker
        .exec_output(container, &spec, Duration::from_secs(60))
        .await
    {
        Ok(r) => r,
        // The container is gone: so is the dump.
        Err(DockerError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if code != 0 {
        anyhow::bail!(
            "looking for dump processes of run {run_id} in container {container} failed (exit code {code}): {err}"
        );
    }
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}
