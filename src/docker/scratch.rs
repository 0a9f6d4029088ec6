//! Scratch containers for restore tests: create one from an existing image with strict
//! isolation (network `none`, `no-new-privileges`, all capabilities dropped but a named
//! few, memory/CPU/pids limits, data on tmpfs, no binds, no published ports), find and
//! remove them by label, and deliver one file into them with `PUT
//! /containers/{name}/archive` — a hand-written HTTP/1.1 request whose body is a tar
//! stream built on the fly (one ustar entry), so a dump of any size goes in with flat
//! memory and without exec stdin (which haproxy-based proxies cannot carry).
//!
//! Least-privilege proxies allow the archive PUT only for names starting with
//! `omk-restore-`: callers name scratch containers so, and pass the *name*, not the id.

use super::error::proxy_hint;
use super::{Docker, DockerError};
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use std::collections::HashMap;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

/// What a scratch container looks like. Environment values may be secrets: they travel
/// in the create body only, and `Debug` shows their names.
#[derive(Clone, Default)]
pub struct ScratchSpec {
    pub name: String,
    /// Image id (`sha256:...`) or reference.
    pub image: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Replace the image's entrypoint (e.g. a sleeper for app images).
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Paths mounted as tmpfs (the image's declared volumes: no anonymous volume is made).
    pub tmpfs: Vec<String>,
    /// Capabilities kept (everything else is dropped).
    pub cap_add: Vec<String>,
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids_limit: i64,
}

impl std::fmt::Debug for ScratchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = super::env_names(&self.env);
        f.debug_struct("ScratchSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("env", &names)
            .field("tmpfs", &self.tmpfs)
            .field("cap_add", &self.cap_add)
            .finish_non_exhaustive()
    }
}

impl Docker {
    /// The volumes an image declares (`VOLUME` lines).
    pub async fn image_volumes(&self, image: &str) -> Result<Vec<String>, DockerError> {
        let path = format!("/images/{image}/json");
        let what = format!("image `{image}`");
        let r = self
            .call("GET", &path, &what, self.api.inspect_image(image))
            .await?;
        let mut v = r.config.and_then(|c| c.volumes).unwrap_or_default();
        v.sort();
        Ok(v)
    }

    /// Create and start a scratch container; returns its id. On a failed start the
    /// created container is removed again.
    pub async fn start_scratch(&self, spec: &ScratchSpec) -> Result<String, DockerError> {
        let host = HostConfig {
            network_mode: Some("none".into()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: if spec.cap_add.is_empty() {
                None
            } else {
                Some(spec.cap_add.clone())
            },
            memory: Some(spec.memory_bytes),
            memory_swap: Some(spec.memory_bytes),
            nano_cpus: Some(spec.nano_cpus),
            pids_limit: Some(spec.pids_limit),
            tmpfs: Some(
                spec.tmpfs
                    .iter()
                    .map(|p| (p.clone(), "rw,nosuid,nodev".to_string()))
                    .collect(),
            ),
            privileged: Some(false),
            publish_all_ports: Some(false),
            readonly_rootfs: Some(false),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            network_disabled: Some(true),
            host_config: Some(host),
            ..Default::default()
        };
        let opts = bollard::query_parameters::CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let what = format!("image `{}`", spec.image);
        let created = self
            .call(
                "POST",
                "/containers/create",
                &what,
                self.api.create_container(Some(opts), body),
            )
            .await?;
        if let Err(e) = self.start(&spec.name).await {
            let _ = self.remove_force(&spec.name).await;
            return Err(e);
        }
        Ok(created.id)
    }

    /// Kill and remove a container with its anonymous volumes; a missing one is fine.
    pub async fn remove_force(&self, container: &str) -> Result<(), DockerError> {
        let path = format!("/containers/{container}");
        let opts = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let call = self.api.remove_container(container, Some(opts));
        let Ok(answer) = tokio::time::timeout(self.timeout, call).await else {
            return Err(self.timed_out("DELETE", &path));
        };
        match answer {
            Ok(()) => Ok(()),
            Err(BollardError::RequestTimeoutError) => Err(self.timed_out("DELETE", &path)),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // 409: removal already in progress.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err("DELETE", &path, &format!("container `{container}`"), e)),
        }
    }

    /// Put one file (`dir/file_name`, `size` bytes read from `data`) into a container with
    /// `PUT /containers/{name}/archive?path=dir`. Every byte read from `data` is passed to
    /// `on_chunk` (to hash it). A source shorter than `size` is an error (the request is
    /// abandoned, the daemon discards the incomplete archive).
    pub async fn put_file<R: AsyncRead + Unpin>(
        &self,
        container_name: &str,
        dir: &str,
        file_name: &str,
        size: u64,
        data: &mut R,
        mut on_chunk: impl FnMut(&[u8]),
    ) -> Result<(), DockerError> {
        let path = format!("/containers/{container_name}/archive");
        let transport = |detail: String| DockerError::Transport {
            method: "PUT".into(),
            path: path.clone(),
            detail,
        };
        let header = ustar_header(file_name, size).map_err(|e| transport(e.to_string()))?;
        let pad = (512 - (size % 512) as usize) % 512;
        let total = 512 + size + pad as u64 + 1024;
        let query = format!("path={}", url_encode(dir));
        let head = format!(
            "PUT {path}?{query} HTTP/1.1\r\nHost: docker\r\nUser-Agent: omk-backup\r\nContent-Type: application/x-tar\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
        );
        let io = self.raw_connection(&path).await?;
        let mut io = BufReader::new(io);
        let send = |e: std::io::Error| transport(format!("sending the archive: {e}"));
        // A stream: bounded by inactivity (no write progressing for the call timeout).
        let idle = self.timeout;
        // The daemon may answer and close as soon as it read the file and the first
        // end-of-archive block: a failed write after every file byte went out is fine
        // when the answer is 200.
        let mut data_written = false;
        let sent: Result<(), DockerError> = async {
            within(idle, io.get_mut().write_all(head.as_bytes()))
                .await
                .map_err(send)?;
            within(idle, io.get_mut().write_all(&header))
                .await
                .map_err(send)?;
            let mut left = size;
            let mut buf = vec![0u8; 256 * 1024];
            while left > 0 {
                let want = (left.min(buf.len() as u64)) as usize;
                let n = data
                    .read(&mut buf[..want])
                    .await
                    .map_err(|e| transport(format!("reading the file to send: {e}")))?;
                if n == 0 {
                    return Err(DockerError::ShortSource {
                        path: path.clone(),
                        expected: size,
                        got: size - left,
                    });
                }
                on_chunk(&buf[..n]);
                within(idle, io.get_mut().write_all(&buf[..n]))
                    .await
                    .map_err(send)?;
                left -= n as u64;
            }
            data_written = true;
            let zeros = vec![0u8; pad + 1024];
            within(idle, io.get_mut().write_all(&zeros))
                .await
                .map_err(send)?;
            within(idle, io.get_mut().flush()).await.map_err(send)?;
            Ok(())
        }
        .await;
        if let Err(e @ DockerError::ShortSource { .. }) = sent {
            return Err(e);
        }

        self.archive_answer(&mut io, sent, data_written, container_name, dir)
            .await
    }

    /// Read the answer to an archive PUT (also after a failed send: the daemon may have
    /// answered early with the reason): status line, headers, a short body.
    async fn archive_answer(
        &self,
        io: &mut (impl tokio::io::AsyncBufRead + Unpin),
        sent: Result<(), DockerError>,
        data_written: bool,
        container_name: &str,
        dir: &str,
    ) -> Result<(), DockerError> {
        let path = format!("/containers/{container_name}/archive");
        let mut line = String::new();
        let Ok(read) = tokio::time::timeout(self.timeout, io.read_line(&mut line)).await else {
            return Err(self.timed_out("PUT", &path));
        };
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok());
        let status = match (status, sent) {
            (Some(200), Err(e)) if !data_written => return Err(e),
            (Some(s), _) => s,
            (None, Err(e)) => return Err(e),
            (None, Ok(())) => {
                return Err(DockerError::Transport {
                    method: "PUT".into(),
                    path,
                    detail: match read {
                        Err(e) => format!("reading the response: {e}"),
                        Ok(_) => format!("not an HTTP response: {:?}", line.trim()),
                    },
                });
            }
        };
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(self.timeout, io.take(16 * 1024).read_to_end(&mut rest)).await;
        if status == 200 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&rest);
        let message = text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string();
        Err(match status {
            403 => DockerError::Refused {
                host: self.host.clone(),
                method: "PUT".into(),
                hint: proxy_hint("PUT", &path),
                path,
            },
            404 => DockerError::NotFound {
                what: format!("container `{container_name}` (or its folder {dir})"),
                method: "PUT".into(),
                path,
            },
            _ => DockerError::Api {
                method: "PUT".into(),
                path,
                status,
                message,
            },
        })
    }
}

/// One write of a stream, failed when it makes no progress within `idle`.
pub(super) async fn within(
    idle: std::time::Duration,
    w: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    match tokio::time::timeout(idle, w).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no progress for {} s (the [docker] timeout)",
                idle.as_secs()
            ),
        )),
    }
}

/// A ustar header for one regular file (mode 0644, owner root).
fn ustar_header(name: &str, size: u64) -> Result<[u8; 512], &'static str> {
    if name.is_empty() || name.len() > 100 || name.contains('/') {
        return Err("the file name must be 1-100 bytes without '/'");
    }
    if size >= 8u64.pow(11) {
        return Err("the file is too large for a ustar entry (8 GiB)");
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}", w = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
        h[at + len - 1] = 0;
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    octal(&mut h, 136, 12, mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // Checksum: computed with the checksum field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_header_is_valid() {
        let h = ustar_header("pg.sql", 1234).unwrap();
        assert_eq!(&h[..6], b"pg.sql");
        assert_eq!(&h[124..136], b"00000002322\0");
        assert_eq!(&h[257..262], b"ustar");
        let mut copy = h;
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|&b| b as u32).sum();
        let field = std::str::from_utf8(&h[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(field, 8).unwrap(), sum);
        assert!(ustar_header("a/b", 1).is_err());
        assert!(ustar_header("", 1).is_err());
    }

    #[test]
    fn query_encoding() {
        assert_eq!(url_encode("/tmp"), "/tmp");
        assert_eq!(url_encode("/a b&c"), "/a%20b%26c");
    }
}
