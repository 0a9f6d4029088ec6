//! sftp: repositories, read with OpenSSH's `sftp -b` in batch mode: the same `ssh`
//! configuration (Host entries, keys, known hosts) restic's sftp backend uses, one
//! connection for the listing and one for the reads.

use super::{RemoteError, TYPES, stderr_tail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sftp {
    /// `host` or `user@host`, as ssh takes it.
    dest: String,
    port: Option<u16>,
    /// The repository folder on the server (absolute, or relative to the login's home).
    path: String,
}

impl Sftp {
    /// `sftp:[user@]host:/path` or `sftp://[user@]host[:port]//abs` (`/rel`: home-relative).
    pub fn parse(url: &str) -> Result<Sftp, RemoteError> {
        let bad = |why: &str| RemoteError::new("sftp URL", why);
        let (dest, port, path) = if let Some(rest) = url.strip_prefix("sftp://") {
            let (auth, path) = rest
                .split_once('/')
                .ok_or_else(|| bad("no path after the host"))?;
            let (host, port) = match auth.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| bad("the port is not a number"))?,
                    ),
                ),
                None => (auth, None),
            };
            (host.to_string(), port, path.to_string())
        } else {
            let rest = url.strip_prefix("sftp:").ok_or_else(|| bad("not sftp:"))?;
            let (host, path) = rest
                .split_once(':')
                .ok_or_else(|| bad("expected sftp:HOST:/PATH"))?;
            (host.to_string(), None, path.to_string())
        };
        if dest.is_empty() || dest.starts_with('-') || path.is_empty() {
            return Err(bad("expected sftp:HOST:/PATH or sftp://HOST:PORT//PATH"));
        }
        let path = path.trim_end_matches('/').to_string();
        Ok(Sftp { dest, port, path })
    }

    pub fn describe(&self) -> String {
        match self.port {
            Some(p) => format!("sftp -b to {} port {p}, {}", self.dest, self.path),
            None => format!("sftp -b to {}, {}", self.dest, self.path),
        }
    }

    /// Run one batch (commands prefixed `-` so a missing folder is not fatal).
    async fn batch(&self, script: &str) -> Result<Vec<u8>, RemoteError> {
        let mut c = Command::new("sftp");
        c.args(["-q", "-b", "-"]);
        if let Some(p) = self.port {
            c.args(["-P", &p.to_string()]);
        }
        c.arg("--").arg(&self.dest);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c
            .spawn()
            .map_err(|e| RemoteError::new("cannot run sftp (OpenSSH's sftp client)", e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let script = script.to_string();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(script.as_bytes()).await;
        });
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| RemoteError::new("sftp", e))?;
        let _ = writer.await;
        if !out.status.success() {
            return Err(RemoteError::new(
                format!("sftp to {} failed", self.dest),
                stderr_tail(&out.stderr),
            ));
        }
        Ok(out.stdout)
    }

    pub async fn list(&self) -> Result<Vec<String>, RemoteError> {
        let p = &self.path;
        let mut script = format!("-ls -1 {}\n", quote(&format!("{p}/config")));
        // The glob stays outside the quotes (sftp does not expand a quoted `*`).
        for t in TYPES {
            let glob = if *t == "data" { "*/*" } else { "*" };
            script.push_str(&format!("-ls -1 {}{glob}\n", quote(&format!("{p}/{t}/"))));
        }
        let out = self.batch(&script).await?;
        let prefix = format!("{p}/");
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.starts_with("sftp>"))
            .filter_map(|l| l.trim_end().strip_prefix(&prefix))
            .filter(|n| *n == "config" || n.contains('/'))
            .map(str::to_string)
            .collect())
    }

    pub async fn read(
        &self,
        names: &[String],
        work: &Path,
    ) -> Result<Vec<(String, Vec<u8>)>, RemoteError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let dir = private_dir(work)?;
        let res = self.read_into(names, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        res
    }

    async fn read_into(
        &self,
        names: &[String],
        dir: &Path,
    ) -> Result<Vec<(String, Vec<u8>)>, RemoteError> {
        let mut script = String::new();
        for (i, n) in names.iter().enumerate() {
            let local = dir.join(i.to_string());
            let remote = format!("{}/{n}", self.path);
            script.push_str(&format!(
                "get {} {}\n",
                quote(&remote),
                quote(&local.display().to_string())
            ));
        }
        self.batch(&script).await?;
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                std::fs::read(dir.join(i.to_string()))
                    .map(|b| (n.clone(), b))
                    .map_err(|e| RemoteError::new(format!("the copy of {n} fetched by sftp"), e))
            })
            .collect()
    }
}

/// Where ssh connects for an sftp: URL, as `host H port P` (`ssh -G`: the Host entries
/// applied, no connection made); `None` when it is not an sftp URL or ssh cannot say.
pub async fn endpoint(url: &str) -> Option<String> {
    let s = Sftp::parse(url).ok()?;
    let mut c = Command::new("ssh");
    c.arg("-G");
    if let Some(p) = s.port {
        c.args(["-p", &p.to_string()]);
    }
    let out = c
        .arg("--")
        .arg(&s.dest)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    Some(format!("host {} port {}", get("hostname ")?, get("port ")?))
}

/// A folder only we can read, for the fetched copies.
fn private_dir(work: &Path) -> Result<PathBuf, RemoteError> {
    use std::os::unix::fs::DirBuilderExt;
    let name = crate::random::hex(6).map_err(|e| RemoteError::new("random name", e))?;
    let dir = work.join(format!("omk-raw-{name}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| RemoteError::new(format!("cannot create {}", dir.display()), e))?;
    Ok(dir)
}

/// One sftp batch argument, double-quoted (sftp's own quoting).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_url_forms_parse() {
        assert_eq!(
            Sftp::parse("sftp:omk-sftp:/srv/repo/").unwrap(),
            Sftp {
                dest: "omk-sftp".into(),
                port: None,
                path: "/srv/repo".into()
            }
        );
        assert_eq!(
            Sftp::parse("sftp://me@nas:2222//srv/repo").unwrap(),
            Sftp {
                dest: "me@nas".into(),
                port: Some(2222),
                path: "/srv/repo".into()
            }
        );
        assert_eq!(Sftp::parse("sftp://nas/repo").unwrap().path, "repo");
        assert!(Sftp::parse("sftp:nas").is_err());
        assert!(Sftp::parse("sftp://nas:x//r").is_err());
        assert!(Sftp::parse("sftp:-oProxyCommand=x:/r").is_err());
    }
}
