//! Exec output streaming that works through every common socket proxy.
//!
//! The exec is created with bollard, but started with a hand-written HTTP/1.1
//! `POST /exec/{id}/start` carrying `{"Detach":false,"Tty":false}` and the upgrade
//! headers the Docker CLI sends (`Connection: Upgrade`, `Upgrade: tcp`). Two answers are
//! expected, and both carry the multiplexed stream until the daemon closes:
//! - `101 UPGRADED` where the proxy passes upgrades (CetusGuard and other Go proxies,
//!   nginx with upgrade headers, the plain socket): the connection becomes a tunnel;
//! - `200 OK` where the proxy drops the upgrade headers (haproxy ≥ 2.4: Tecnativa,
//!   linuxserver): bollard's `start_exec` fails there ("no upgrade available"), while
//!   the daemon answers the downgraded request with the stream as the body —
//!   close-delimited from the daemon or haproxy, `Transfer-Encoding: chunked` through a
//!   proxy that re-frames an unknown-length body. All three are handled here.
//!
//! Why the upgrade headers matter (issue 9, docs/socket-proxy.md "Go forwarding
//! proxies"): without them a Go proxy forwards the exec stream as an ordinary response
//! with `Transport.RoundTrip`; Docker answers as soon as it has read the 28-byte body,
//! the proxy's server closes the request body when it writes the answer's head, and the
//! Transport's request writer, still checking that body for its end, fails ("invalid
//! Read on closed Body") and closes the backend connection mid-stream: Docker marks the
//! exec 126. Under load 2–4 restore tests in 10 failed that way. With the upgrade the
//! proxy hijacks both connections and no request writer is left to fail.
//!
//! The stream is read incrementally with fixed buffers: memory stays flat whatever the
//! size of the dump. Each read takes up to [`RAW_BUF`] bytes, frames are demultiplexed
//! in memory, and one [`ExecStream::next_stdout`] call hands out the stdout of all the
//! frames received (a frame is at most 32 KiB from the daemon): few syscalls, one copy.
//! stderr is kept as a bounded tail for error messages.
//!
//! [`not_run`] tells an exec Docker could not run (its exec machinery's 126) from a
//! command that ran and failed: only the first is an infrastructure error worth a retry.

use super::error::{DockerError, proxy_hint};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Everything the start request can run over (TCP to a proxy, or the unix socket).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How many bytes of the dump's stderr we keep for the error message.
const STDERR_TAIL: usize = 4096;
/// The largest response head we accept.
const MAX_HEAD: usize = 16 * 1024;
/// How much of the body one read may take: whatever the socket holds, up to this.
const RAW_BUF: usize = 256 * 1024;
/// The marker line our dump wrappers print first on stderr: the process id *inside* the
/// container, so a dump can be stopped with `kill` when restic dies.
pub const PID_MARKER: &str = "omk-pid=";

/// How the response body is delimited.
#[derive(Debug)]
pub(super) enum Body {
    Close,
    Length(u64),
    Chunked { left: u64, done: bool },
}

/// The live output of an exec: stdout through [`ExecStream::next_stdout`], stderr kept
/// as a tail.
pub struct ExecStream {
    exec_id: String,
    io: BufReader<Box<dyn Io>>,
    body: Body,
    /// Received body bytes not demultiplexed yet: `raw[raw_pos..raw_end]` (allocated at
    /// the first read, then reused).
    raw: Vec<u8>,
    raw_pos: usize,
    raw_end: usize,
    /// A frame header cut by a read boundary.
    hdr: [u8; 8],
    hdr_len: usize,
    frame_left: usize,
    frame_kind: u8,
    stderr: Stderr,
}

/// The exec's stderr: the pid marker line, then a bounded tail.
#[derive(Debug)]
struct Stderr {
    tail: Vec<u8>,
    first_line: Option<Vec<u8>>,
    pid: Option<u32>,
}

impl Stderr {
    fn push(&mut self, mut data: &[u8]) {
        if let Some(line) = &mut self.first_line {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    line.extend_from_slice(&data[..=i]);
                    data = &data[i + 1..];
                    let text = String::from_utf8_lossy(line).trim().to_string();
                    let taken = self.first_line.take().unwrap_or_default();
                    match text.strip_prefix(PID_MARKER).and_then(|p| p.parse().ok()) {
                        Some(pid) => self.pid = Some(pid),
                        None => self.tail.extend_from_slice(&taken),
                    }
                }
                None => {
                    line.extend_from_slice(data);
                    if line.len() > 256 {
                        let taken = self.first_line.take().unwrap_or_default();
                        self.tail.extend_from_slice(&taken);
                    }
                    return;
                }
            }
        }
        self.tail.extend_from_slice(data);
        if self.tail.len() > STDERR_TAIL {
            let cut = self.tail.len() - STDERR_TAIL;
            self.tail.drain(..cut);
        }
    }
}

impl std::fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStream")
            .field("exec_id", &self.exec_id)
            .finish_non_exhaustive()
    }
}

impl ExecStream {
    /// Send the start request on `io` and read the response head.
    pub(crate) async fn start(
        host: &str,
        io: Box<dyn Io>,
        exec_id: &str,
    ) -> Result<ExecStream, DockerError> {
        let path = format!("/exec/{exec_id}/start");
        let body = br#"{"Detach":false,"Tty":false}"#;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: omk-backup\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let transport = |detail: String| DockerError::Transport {
            method: "POST".into(),
            path: path.clone(),
            detail,
        };
        let mut io = BufReader::with_capacity(64 * 1024, io);
        let w = io.get_mut();
        // Head and body in one write: one segment, the body is never behind the head.
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let sent = async {
            w.write_all(&request).await?;
            w.flush().await
        };
        sent.await
            .map_err(|e| transport(format!("sending the request: {e}")))?;

        let (status, mut body_kind) = read_head(&mut io, &transport).await?;
        if status == 101 {
            // A tunnel now: the stream runs until the daemon closes.
            body_kind = Body::Close;
        }
        let mut stream = ExecStream {
            exec_id: exec_id.to_string(),
            io,
            body: body_kind,
            raw: Vec::new(),
            raw_pos: 0,
            raw_end: 0,
            hdr: [0; 8],
            hdr_len: 0,
            frame_left: 0,
            frame_kind: 0,
            stderr: Stderr {
                tail: Vec::new(),
                first_line: Some(Vec::new()),
                pid: None,
            },
        };
        if status == 200 || status == 101 {
            return Ok(stream);
        }
        // An error answer: read a bounded part of its body for the message.
        let mut msg = vec![0u8; 2048];
        let mut got = 0;
        while got < msg.len() {
            match stream.read_body(&mut msg[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        let message = String::from_utf8_lossy(&msg[..got]).trim().to_string();
        Err(match status {
            403 => DockerError::Refused {
                host: host.to_string(),
                method: "POST".into(),
                hint: proxy_hint("POST", &path),
                path,
            },
            404 => DockerError::NotFound {
                what: format!("exec {exec_id}"),
                method: "POST".into(),
                path,
            },
            _ => DockerError::Api {
                method: "POST".into(),
                path,
                status,
                message,
            },
        })
    }

    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// The dump's process id inside the container, once its wrapper printed it.
    pub fn pid(&self) -> Option<u32> {
        self.stderr.pid
    }

    /// The last few KiB of the exec's stderr (lossy UTF-8).
    pub fn stderr_tail(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stderr.tail).into_owned();
        if let Some(first) = &self.stderr.first_line
            && !first.is_empty()
        {
            s.push_str(&String::from_utf8_lossy(first));
        }
        s.trim().to_string()
    }

    /// The next piece of stdout, written to `out`: `Ok(None)` at the clean end of the
    /// stream; an error when the stream is cut inside a frame or malformed.
    ///
    /// The body is read in large blocks (one `read` takes whatever the socket holds, up
    /// to [`RAW_BUF`]) and demultiplexed in memory: one call gathers the stdout of every
    /// frame already received, so a large `out` means few calls and few writes
    /// downstream. It waits for the network only while it has nothing to return yet.
    pub async fn next_stdout(&mut self, out: &mut [u8]) -> Result<Option<usize>, DockerError> {
        if out.is_empty() {
            return Ok(Some(0));
        }
        let mut filled = 0;
        loop {
            filled += self.demux(&mut out[filled..])?;
            if filled == out.len() || (filled > 0 && self.raw_pos == self.raw_end) {
                return Ok(Some(filled));
            }
            // Everything received is consumed: read the next block.
            let mut raw = std::mem::take(&mut self.raw);
            if raw.is_empty() {
                raw = vec![0u8; RAW_BUF];
            }
            let read = self.read_body(&mut raw).await;
            self.raw = raw;
            self.raw_pos = 0;
            self.raw_end = 0;
            let n = read.map_err(|e| self.cut(e))?;
            if n == 0 {
                if self.frame_left > 0 || self.hdr_len > 0 {
                    return Err(self.cut_eof());
                }
                return Ok((filled > 0).then_some(filled));
            }
            self.raw_end = n;
        }
    }

    /// Demultiplex the received bytes in `raw[raw_pos..raw_end]`: stdout payload into
    /// `out` (as much as fits), stderr into the tail. Returns the stdout bytes written.
    fn demux(&mut self, out: &mut [u8]) -> Result<usize, DockerError> {
        let mut w = 0;
        while self.raw_pos < self.raw_end {
            let avail = &self.raw[self.raw_pos..self.raw_end];
            if self.frame_left == 0 {
                let n = (8 - self.hdr_len).min(avail.len());
                self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&avail[..n]);
                self.hdr_len += n;
                self.raw_pos += n;
                if self.hdr_len < 8 {
                    break;
                }
                self.hdr_len = 0;
                let h = self.hdr;
                if h[0] > 2 || h[1..4] != [0, 0, 0] {
                    return Err(DockerError::Stream {
                        exec: self.exec_id.clone(),
                        detail: format!(
                            "bad frame header {h:02x?} (was the exec created with Tty?)"
                        ),
                    });
                }
                self.frame_kind = h[0];
                self.frame_left = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
                continue;
            }
            let n = self.frame_left.min(avail.len());
            if self.frame_kind == 2 {
                self.stderr.push(&avail[..n]);
            } else {
                let n = n.min(out.len() - w);
                if n == 0 {
                    break;
                }
                out[w..w + n].copy_from_slice(&avail[..n]);
                w += n;
                self.raw_pos += n;
                self.frame_left -= n;
                continue;
            }
            self.raw_pos += n;
            self.frame_left -= n;
        }
        Ok(w)
    }

    fn cut(&self, e: std::io::Error) -> DockerError {
        DockerError::Stream {
            exec: self.exec_id.clone(),
            detail: e.to_string(),
        }
    }

    fn cut_eof(&self) -> DockerError {
        DockerError::Stream {
            exec: self.exec_id.clone(),
            detail: "the connection closed in the middle of a frame".into(),
        }
    }

    /// Raw body bytes, whatever the framing; 0 at the end of the body.
    async fn read_body(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        read_body(&mut self.io, &mut self.body, buf).await
    }
}

/// Raw body bytes of a response delimited as `body` says; 0 at the end of the body.
pub(super) async fn read_body(
    io: &mut BufReader<Box<dyn Io>>,
    body: &mut Body,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match body {
        Body::Close => io.read(buf).await,
        Body::Length(left) => {
            if *left == 0 {
                return Ok(0);
            }
            let want = (*left).min(buf.len() as u64) as usize;
            let n = io.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the body ended before its Content-Length",
                ));
            }
            *left -= n as u64;
            Ok(n)
        }
        Body::Chunked { left, done } => {
            if *done {
                return Ok(0);
            }
            if *left == 0 {
                let size = read_chunk_size(io).await?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        let mut l = Vec::new();
                        let n = io.read_until(b'\n', &mut l).await?;
                        if n == 0 || l == b"\r\n" || l == b"\n" {
                            break;
                        }
                    }
                    *done = true;
                    return Ok(0);
                }
                *left = size;
            }
            let want = (*left).min(buf.len() as u64) as usize;
            let n = io.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection closed inside a chunk",
                ));
            }
            *left -= n as u64;
            if *left == 0 {
                let mut crlf = Vec::new();
                io.read_until(b'\n', &mut crlf).await?;
            }
            Ok(n)
        }
    }
}

/// Why Docker could not run an exec's command, when that is what its result says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRun {
    /// The runtime refused to start the program (`OCI runtime exec failed: …`, exit 126
    /// with the message as output). `permanent` when retrying cannot help: the program
    /// is missing or not executable in the image.
    Runtime { message: String, permanent: bool },
    /// Exit 126 and no output at all: Docker ends an exec whose output stream broke (a
    /// proxy closed the connection) with 126 — the command may have been cut anywhere.
    StreamBroken,
}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRun::Runtime { message, .. } => write!(f, "Docker could not start it: {message}"),
            NotRun::StreamBroken => f.write_str(
                "Docker ended the exec with 126 and no output: its output stream was cut (by a socket proxy or the daemon)",
            ),
        }
    }
}

/// Classify an exec's result: `Some` when Docker's exec machinery failed (exit 126/127
/// with the runtime's message, or 126 with no output at all), `None` when the command
/// ran — whatever its exit code, e.g. psql's 1/2/3 or a shell's 127 "not found" (which
/// prints its message on stderr). Our commands never exit 126 silently on their own: a
/// shell says why it could not execute something.
pub fn not_run(code: i64, stdout: &str, stderr: &str) -> Option<NotRun> {
    let text = format!("{stdout}\n{stderr}");
    if (code == 126 || code == 127) && text.contains("OCI runtime exec failed") {
        let message = text
            .lines()
            .map(str::trim)
            .find(|l| l.contains("OCI runtime exec failed"))
            .unwrap_or_default()
            .to_string();
        let lower = message.to_ascii_lowercase();
        let permanent = [
            "executable file not found",
            "no such file or directory",
            "permission denied",
        ]
        .iter()
        .any(|p| lower.contains(p));
        return Some(NotRun::Runtime { message, permanent });
    }
    (code == 126 && stdout.trim().is_empty() && stderr.trim().is_empty())
        .then_some(NotRun::StreamBroken)
}

/// Read the response head: the status code and how the body is delimited.
pub(super) async fn read_head(
    io: &mut BufReader<Box<dyn Io>>,
    transport: &impl Fn(String) -> DockerError,
) -> Result<(u16, Body), DockerError> {
    let mut status: Option<u16> = None;
    let mut body_kind = Body::Close;
    let mut seen = 0usize;
    loop {
        let mut line = Vec::new();
        let n = io
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| transport(format!("reading the response: {e}")))?;
        if n == 0 {
            return Err(transport(
                "the connection closed before a complete response head".into(),
            ));
        }
        seen += n;
        if seen > MAX_HEAD {
            return Err(transport("the response head is too large".into()));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if status.is_none() {
            let code = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| transport(format!("not an HTTP response: {text:?}")))?;
            status = Some(code);
            continue;
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                body_kind = Body::Chunked {
                    left: 0,
                    done: false,
                };
            } else if name == "content-length"
                && !matches!(body_kind, Body::Chunked { .. })
                && let Ok(n) = value.parse()
            {
                body_kind = Body::Length(n);
            }
        }
    }
    Ok((status.unwrap_or(0), body_kind))
}

async fn read_chunk_size<R: AsyncBufReadExt + Unpin>(io: &mut R) -> std::io::Result<u64> {
    let mut line = Vec::new();
    let n = io.read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed before the next chunk",
        ));
    }
    let text = String::from_utf8_lossy(&line);
    let hex = text.trim().split(';').next().unwrap_or("").trim();
    u64::from_str_radix(hex, 16).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad chunk size line {text:?}"),
        )
    })
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
