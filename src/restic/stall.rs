//! Stall detection for a running `restic backup`: when its progress last moved, and
//! how a stalled child is stopped so restic can still remove its lock.

use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// When a backup last made progress, and when it counts as stalled.
pub(super) struct StallWatch {
    limit: Option<Duration>,
    last: tokio::time::Instant,
    key: Option<(u64, u64, u64, u64)>,
}

impl StallWatch {
    pub(super) fn new(limit: Option<Duration>) -> StallWatch {
        StallWatch {
            limit,
            last: tokio::time::Instant::now(),
            key: None,
        }
    }

    pub(super) fn deadline(&self) -> Option<tokio::time::Instant> {
        self.limit.map(|d| self.last + d)
    }

    /// A status line: progress only when its counters changed.
    pub(super) fn saw(&mut self, key: (u64, u64, u64, u64)) {
        if self.key != Some(key) {
            self.key = Some(key);
            self.moved();
        }
    }

    pub(super) fn moved(&mut self) {
        self.last = tokio::time::Instant::now();
    }
}

/// Stop a restic child: SIGTERM (restic removes its lock), SIGKILL after 10 s.
pub(super) async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}
