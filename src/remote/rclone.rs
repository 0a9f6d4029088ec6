//! rclone: repositories, read with `rclone lsf -R` and `rclone cat` on the same remote
//! restic's rclone backend serves (rclone finds its config the way restic's child does:
//! `$RCLONE_CONFIG` or its default file; no secret on argv).

use super::{RemoteError, stderr_tail};
use std::process::Stdio;
use tokio::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rclone {
    /// `remote:path`, as rclone takes it.
    target: String,
}

impl Rclone {
    pub fn parse(url: &str) -> Result<Rclone, RemoteError> {
        let target = url
            .strip_prefix("rclone:")
            .filter(|t| t.contains(':') && !t.starts_with('-'))
            .ok_or_else(|| RemoteError::new("rclone URL", "expected rclone:REMOTE:PATH"))?;
        Ok(Rclone {
            target: target.trim_end_matches('/').to_string(),
        })
    }

    pub fn describe(&self) -> String {
        format!("rclone lsf/cat on {}", self.target)
    }

    async fn rclone(&self, args: &[&str]) -> Result<Vec<u8>, RemoteError> {
        let out = Command::new("rclone")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| RemoteError::new("cannot run rclone", e))?;
        if !out.status.success() {
            return Err(RemoteError::new(
                format!("rclone {} failed", args.first().unwrap_or(&"")),
                stderr_tail(&out.stderr),
            ));
        }
        Ok(out.stdout)
    }

    pub async fn list(&self) -> Result<Vec<String>, RemoteError> {
        let out = self
            .rclone(&["lsf", "-R", "--files-only", "--", &self.target])
            .await?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::trim_end)
            .filter(|n| {
                *n == "config"
                    || n.split_once('/')
                        .is_some_and(|(t, _)| super::TYPES.contains(&t))
            })
            .map(str::to_string)
            .collect())
    }

    pub async fn read(&self, names: &[String]) -> Result<Vec<(String, Vec<u8>)>, RemoteError> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let path = format!("{}/{n}", self.target);
            out.push((n.clone(), self.rclone(&["cat", "--", &path]).await?));
        }
        Ok(out)
    }
}
