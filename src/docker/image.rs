//! Copying an image from one engine to another (the restore lab): `GET
//! /images/{id}/get` on the source (a read, which a lab-mode production proxy allows)
//! streamed straight into `POST /images/load` on the target, so an image of any size
//! moves with flat memory and never touches the disk of this machine.
//!
//! Both requests are written by hand on our own connections, so that no chunked body
//! passes through a proxy: haproxy before the fix for its issue #2262 (September 2023;
//! Debian 12 ships 2.6.12, and the haproxy-based socket proxies are built on such
//! releases) stops forwarding a chunked body for good when its buffer fills exactly on
//! a chunk boundary. bollard's chunked upload of the ~16 KB chunks an export arrives in
//! stalled after 7–320 MB on this machine (docs/engines.md). So:
//! - the export is asked for with HTTP/1.0, which the daemon answers close-delimited;
//! - the load is sent with a `Content-Length`, learnt by reading the export once and
//!   counting it; the second read is streamed and must be exactly as long (the export
//!   of an image is deterministic: same layers, same metadata, same times).
//!
//! Every read and write is bounded by the call timeout (no progress for that long is an
//! error naming the call); the load's answer, once the whole image is sent, by 30 min
//! (the daemon registers the layers first); the copy as a whole by its progress only.

use super::exec::{Body, Io, read_body, read_head};
use super::scratch::within;
use super::{Docker, DockerError};
use bollard::errors::Error as BollardError;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};

/// How long the lab may take to answer a load once it has the whole image.
const LOAD_ANSWER_WITHIN: Duration = Duration::from_secs(30 * 60);
/// The buffer one copy reads the export with.
const COPY_BUF: usize = 256 * 1024;
/// How much of an answer is read (a few JSON lines).
const ANSWER_CAP: u64 = 64 * 1024;

impl Docker {
    /// Whether this engine holds `image` (an id or a reference).
    pub async fn has_image(&self, image: &str) -> Result<bool, DockerError> {
        match self.api.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.map_err(
                "GET",
                &format!("/images/{image}/json"),
                &format!("image `{image}`"),
                e,
            )),
        }
    }

    /// Stream `image` from this engine into `to`; returns the bytes moved. A failure on
    /// either side names its engine's call.
    pub async fn copy_image_to(&self, image: &str, to: &Docker) -> Result<u64, DockerError> {
        let mut size = 0u64;
        let mut buf = vec![0u8; COPY_BUF];
        let mut counting = self.open_export(image).await?;
        while let Some(n) = counting.read(&mut buf).await? {
            size += n as u64;
        }
        drop(counting);
        to.load_image(image, size, self.open_export(image).await?)
            .await?;
        Ok(size)
    }

    /// `GET /images/{image}/get` as HTTP/1.0 on our own connection: the daemon then
    /// answers close-delimited, so no proxy in between has a chunked body to parse
    /// (haproxy's chunk parser is what stalls, module comment).
    async fn open_export(&self, image: &str) -> Result<Export, DockerError> {
        let path = format!("/images/{image}/get");
        let transport = |detail: String| DockerError::Transport {
            method: "GET".into(),
            path: path.clone(),
            detail,
        };
        let head = format!("GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: omk-backup\r\n\r\n");
        let io = self.raw_connection(&path).await?;
        let mut io = BufReader::new(io);
        within(self.timeout, io.get_mut().write_all(head.as_bytes()))
            .await
            .map_err(|e| transport(format!("sending the request: {e}")))?;
        let (status, body) =
            match tokio::time::timeout(self.timeout, read_head(&mut io, &transport)).await {
                Ok(r) => r?,
                Err(_) => return Err(self.timed_out("GET", &path)),
            };
        if status != 200 {
            let text = tokio::time::timeout(self.timeout, read_small_body(&mut io, body))
                .await
                .unwrap_or_default();
            let what = format!("image `{image}`");
            return Err(self.status_error("GET", &path, &what, status, answer_message(&text)));
        }
        Ok(Export {
            io,
            body,
            path,
            idle: self.timeout,
            docker: self.clone(),
        })
    }

    /// `POST /images/load` of exactly `size` bytes read from `tar`, over our own HTTP/1.1
    /// connection with a `Content-Length` (see the module comment for why not chunked).
    async fn load_image(&self, image: &str, size: u64, mut tar: Export) -> Result<(), DockerError> {
        let path = "/images/load";
        let transport = |detail: String| DockerError::Transport {
            method: "POST".into(),
            path: path.into(),
            detail,
        };
        let head = format!(
            "POST {path}?quiet=1 HTTP/1.1\r\nHost: docker\r\nUser-Agent: omk-backup\r\nContent-Type: application/x-tar\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
        );
        let io: Box<dyn Io> = self.raw_connection(path).await?;
        let mut io = BufReader::new(io);
        let idle = self.timeout;
        let send = |e: std::io::Error| transport(format!("sending the image: {e}"));
        let mut buf = vec![0u8; COPY_BUF];
        // `Err(Ok(e))`: the export failed (the error whatever the lab says of the cut
        // body); `Err(Err(e))`: writing to the lab failed (its answer may say why).
        let sent: Result<(), Result<DockerError, DockerError>> = async {
            within(idle, io.get_mut().write_all(head.as_bytes()))
                .await
                .map_err(|e| Err(send(e)))?;
            let mut moved = 0u64;
            while let Some(n) = tar.read(&mut buf).await.map_err(Ok)? {
                let chunk = &buf[..n];
                moved += n as u64;
                if moved > size {
                    return Err(Ok(changed(image, size, moved, "more")));
                }
                within(idle, io.get_mut().write_all(chunk))
                    .await
                    .map_err(|e| Err(send(e)))?;
            }
            if moved != size {
                return Err(Ok(changed(image, size, moved, "fewer")));
            }
            within(idle, io.get_mut().flush())
                .await
                .map_err(|e| Err(send(e)))
        }
        .await;
        let sent = match sent {
            Err(Ok(export_failed)) => return Err(export_failed),
            Err(Err(write_failed)) => Err(write_failed),
            Ok(()) => Ok(()),
        };
        // The answer (also after a failed send: the proxy or daemon may have refused the
        // request early and closed).
        // After the whole image went out the daemon still registers its layers before it
        // answers (minutes for a large image on a slow disk): a longer wait then.
        let wait = if sent.is_ok() {
            LOAD_ANSWER_WITHIN.max(self.timeout)
        } else {
            self.timeout
        };
        let answer = tokio::time::timeout(wait, read_head(&mut io, &transport)).await;
        let (status, body) = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Err(sent.err().unwrap_or(e)),
            Err(_) => {
                return Err(sent.err().unwrap_or_else(|| {
                    transport(format!(
                        "the whole image ({size} bytes) was sent but the engine did not answer within {} min",
                        wait.as_secs() / 60
                    ))
                }));
            }
        };
        let text = tokio::time::timeout(self.timeout, read_small_body(&mut io, body))
            .await
            .unwrap_or_default();
        match (status, load_error(&text)) {
            (200, None) => sent,
            (200, Some(message)) => Err(DockerError::Api {
                method: "POST".into(),
                path: path.into(),
                status,
                message,
            }),
            _ => Err(self.status_error(
                "POST",
                path,
                "the image load",
                status,
                answer_message(&text),
            )),
        }
    }
}

/// One image export being read (see [`Docker::open_export`]).
struct Export {
    io: BufReader<Box<dyn Io>>,
    body: Body,
    path: String,
    idle: Duration,
    docker: Docker,
}

impl Export {
    /// The next bytes of the tar, `None` at its end; a read that makes no progress for
    /// the call timeout is an error naming the call.
    async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DockerError> {
        match tokio::time::timeout(self.idle, read_body(&mut self.io, &mut self.body, buf)).await {
            Err(_) => Err(self.docker.timed_out("GET", &self.path)),
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(n)) => Ok(Some(n)),
            Ok(Err(e)) => Err(DockerError::Transport {
                method: "GET".into(),
                path: self.path.clone(),
                detail: format!("reading the export: {e}"),
            }),
        }
    }
}

/// What a Docker error answer says: its JSON `message`, else the text's start.
fn answer_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text.trim())
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .or_else(|| load_error(text))
        .unwrap_or_else(|| text.trim().chars().take(300).collect())
}

fn changed(image: &str, size: u64, moved: u64, which: &str) -> DockerError {
    DockerError::Transport {
        method: "GET".into(),
        path: format!("/images/{image}/get"),
        detail: format!(
            "the second read of the export gave {which} bytes ({moved}) than the first ({size}); the image changed during the copy, try again"
        ),
    }
}

/// Up to [`ANSWER_CAP`] bytes of a response body, de-chunked, as text.
async fn read_small_body(io: &mut BufReader<Box<dyn Io>>, mut body: Body) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while (out.len() as u64) < ANSWER_CAP {
        match read_body(io, &mut body, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out.truncate(ANSWER_CAP as usize);
    String::from_utf8_lossy(&out).into_owned()
}

/// The error a load answer reports in its JSON lines (`errorDetail.message`, or
/// `error`), if any.
fn load_error(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        v.pointer("/errorDetail/message")
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str())
            .map(|m| m.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::load_error;

    #[test]
    fn a_load_answer_error_is_found_in_its_json_lines() {
        assert_eq!(
            load_error("{\"stream\":\"Loaded image ID: sha256:ab\\n\"}\n"),
            None
        );
        let bad =
            "{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}\n";
        assert_eq!(load_error(bad).as_deref(), Some("unexpected EOF"));
        assert_eq!(
            load_error("{\"error\":\"no space\"}").as_deref(),
            Some("no space")
        );
        assert_eq!(load_error("not json\n"), None);
    }
}
