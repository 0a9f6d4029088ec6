//! Copying an image from one engine to another (the restore lab): `GET
//! /images/{id}/get` on the source (a read, which a lab-mode production proxy allows)
//! streamed straight into `POST /images/load` on the target, so an image of any size
//! moves with flat memory and never touches the disk of this machine.
//!
//! The upload carries a `Content-Length`, never `Transfer-Encoding: chunked`: haproxy
//! before the fix for its issue #2262 (September 2023; Debian 12 ships 2.6.12, and the
//! haproxy-based socket proxies are built on such releases) stops reading a chunked
//! request body for good when its buffer fills exactly on a chunk boundary. With the
//! ~16 KB chunks a streamed export arrives in, that happened after 7–320 MB on this
//! machine (docs/engines.md). The length is learnt by reading the export once and
//! counting it; the second read is streamed, and must be exactly as long (the export of
//! an image is deterministic: same layers, same metadata, same times).

use super::exec::{Body, Io, read_chunk_size, read_head};
use super::scratch::within;
use super::{Docker, DockerError, error::proxy_hint};
use bollard::errors::Error as BollardError;
use futures_util::{Stream, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

/// How long one image copy may take in all. bollard's per-call timeout (two minutes)
/// covers the whole request: a 500 MB image on a loaded machine takes longer than that.
const COPY_WITHIN: Duration = Duration::from_secs(60 * 60);
/// How much of the load's answer is read (a few JSON lines).
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
        {
            let mut counting = std::pin::pin!(self.export(image));
            while let Some(chunk) = counting.next().await {
                size += chunk?.as_ref().len() as u64;
            }
        }
        to.load_image(image, size, self.export(image)).await?;
        Ok(size)
    }

    /// The export of `image` as a stream of byte chunks, each awaited at most the call
    /// timeout (a stalled export is an error naming the call, not a hang).
    fn export(
        &self,
        image: &str,
    ) -> impl Stream<Item = Result<impl AsRef<[u8]>, DockerError>> + '_ {
        let path = format!("/images/{image}/get");
        let what = format!("image `{image}`");
        let inner = self
            .api
            .clone()
            .with_timeout(COPY_WITHIN)
            .export_image(image)
            .boxed();
        futures_util::stream::unfold(
            (inner, path, what, false),
            move |(mut inner, path, what, ended)| async move {
                if ended {
                    return None;
                }
                let item = match tokio::time::timeout(self.timeout, inner.next()).await {
                    Err(_) => Err(self.timed_out("GET", &path)),
                    Ok(None) => return None,
                    Ok(Some(Ok(b))) => Ok(b),
                    Ok(Some(Err(BollardError::RequestTimeoutError))) => {
                        Err(self.timed_out("GET", &path))
                    }
                    Ok(Some(Err(e))) => Err(self.map_err("GET", &path, &what, e)),
                };
                let ended = item.is_err();
                Some((item, (inner, path, what, ended)))
            },
        )
    }

    /// `POST /images/load` of exactly `size` bytes read from `tar`, over our own HTTP/1.1
    /// connection with a `Content-Length` (see the module comment for why not chunked).
    async fn load_image(
        &self,
        image: &str,
        size: u64,
        tar: impl Stream<Item = Result<impl AsRef<[u8]>, DockerError>>,
    ) -> Result<(), DockerError> {
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
        let mut tar = std::pin::pin!(tar);
        // `Err(Ok(e))`: the export failed (the error whatever the lab says of the cut
        // body); `Err(Err(e))`: writing to the lab failed (its answer may say why).
        let sent: Result<(), Result<DockerError, DockerError>> = async {
            within(idle, io.get_mut().write_all(head.as_bytes()))
                .await
                .map_err(|e| Err(send(e)))?;
            let mut moved = 0u64;
            while let Some(chunk) = tar.next().await {
                let chunk = chunk.map_err(Ok)?;
                let chunk = chunk.as_ref();
                moved += chunk.len() as u64;
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
        let answer = tokio::time::timeout(self.timeout, read_head(&mut io, &transport)).await;
        let (status, body) = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Err(sent.err().unwrap_or(e)),
            Err(_) => return Err(sent.err().unwrap_or_else(|| self.timed_out("POST", path))),
        };
        let text = tokio::time::timeout(self.timeout, read_small_body(&mut io, body))
            .await
            .unwrap_or_default();
        match status {
            200 => match load_error(&text) {
                None if sent.is_ok() => Ok(()),
                None => sent,
                Some(message) => Err(DockerError::Api {
                    method: "POST".into(),
                    path: path.into(),
                    status,
                    message,
                }),
            },
            403 => Err(DockerError::Refused {
                host: self.host.clone(),
                method: "POST".into(),
                path: path.into(),
                hint: proxy_hint("POST", path),
            }),
            _ => Err(DockerError::Api {
                method: "POST".into(),
                path: path.into(),
                status,
                message: load_error(&text)
                    .unwrap_or_else(|| text.trim().chars().take(300).collect()),
            }),
        }
    }
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
async fn read_small_body(io: &mut BufReader<Box<dyn Io>>, body: Body) -> String {
    let mut out = Vec::new();
    match body {
        Body::Close => {
            let _ = io.take(ANSWER_CAP).read_to_end(&mut out).await;
        }
        Body::Length(n) => {
            let _ = io.take(n.min(ANSWER_CAP)).read_to_end(&mut out).await;
        }
        Body::Chunked { .. } => {
            while (out.len() as u64) < ANSWER_CAP {
                let Ok(n) = read_chunk_size(io).await else {
                    break;
                };
                if n == 0 {
                    break;
                }
                let want = n.min(ANSWER_CAP - out.len() as u64);
                if (&mut *io).take(want).read_to_end(&mut out).await.is_err() {
                    break;
                }
                let mut crlf = [0u8; 2];
                if want < n || io.read_exact(&mut crlf).await.is_err() {
                    break;
                }
            }
        }
    }
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
