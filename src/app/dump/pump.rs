//! The dump pump: moves a dump's stdout from the exec stream into restic's stdin while
//! a dedicated thread computes the SHA-256, byte count, row fingerprint and the last
//! bytes (for the engine's end marker) of the same bytes. Reading the socket, writing restic's pipe and digesting run concurrently (a
//! reader and a writer future on one runtime task, the digest on its own thread), so
//! restic is fed while the next block is read and hashed.
//!
//! Memory stays flat for any dump size: [`BUFFERS`] buffers of [`BUF`] bytes circulate;
//! a buffer goes back to the reader when both the writer and the digest thread are done
//! with it. When restic or the digest falls behind, the reader waits for a buffer
//! (backpressure reaches the socket and so the dump); a stuck restic times out.

use crate::docker::ExecStream;
use crate::domain::JobKind;
use crate::engine;
use crate::fingerprint::{Counter, Fingerprint};
use anyhow::anyhow;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, oneshot};

/// A buffer the reader fills (from many exec frames) before handing it on.
const BUF: usize = 1024 * 1024;
/// Buffers in circulation: reader → writer and digest thread → reader.
const BUFFERS: usize = 4;
/// How long the reader lets data pile up in the socket when restic is well fed (at
/// least two full buffers queued): a few large reads instead of one per frame.
const BATCH_WAIT: Duration = Duration::from_millis(2);

/// What the digest thread computed over every byte of the dump.
pub(super) struct Digest {
    pub sha256: String,
    pub bytes: u64,
    pub fingerprint: Fingerprint,
    /// The dump's last bytes ([`engine::TAIL`]), where its tool's end marker must be.
    pub tail: Vec<u8>,
}

/// How a pump ended: the digest when the stream ended cleanly and restic took every
/// byte, or why not and how many bytes restic took.
pub(super) enum Pumped {
    Done(Digest),
    Failed { error: anyhow::Error, bytes: u64 },
}

/// The limits of one pump.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    /// Longest silence accepted from the dump (`[repository] stall_timeout`; `None`:
    /// no bound).
    pub idle: Option<Duration>,
    /// Longest a write into restic may block.
    pub write: Duration,
}

/// The dump printed nothing for this long: the pump stopped (see [`Limits::idle`]).
#[derive(Debug)]
pub(super) struct Stalled(pub Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the dump stalled after {} without output and was stopped: the database did not answer (a lock held by another session, a hung disk); nothing was recorded — fix it and run again, or raise [repository] stall_timeout",
            crate::restic::short_duration(self.0)
        )
    }
}

impl std::error::Error for Stalled {}

/// A filled buffer and how much of it holds data, shared by the writer and the digest.
type Chunk = Arc<(Vec<u8>, usize)>;

/// Copy `stream`'s stdout into `stdin` until the stream ends, digesting it on the way.
/// Runs on a runtime worker (the I/O driver's thread, fewer cross-thread wake-ups than
/// the thread that blocks on the command) and hands both ends back.
pub(super) async fn pump(
    stream: ExecStream,
    stdin: Option<ChildStdin>,
    kind: JobKind,
    limits: Limits,
) -> (ExecStream, Option<ChildStdin>, Pumped) {
    let mut task = AbortOnDrop(tokio::spawn(pump_on_task(stream, stdin, kind, limits)));
    match (&mut task.0).await {
        Ok(r) => r,
        // Only a panic gets here (the task is aborted only when this future is dropped).
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Aborts the pump task when the caller stops waiting for it (a cancelled run).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn pump_on_task(
    mut stream: ExecStream,
    mut stdin: Option<ChildStdin>,
    kind: JobKind,
    limits: Limits,
) -> (ExecStream, Option<ChildStdin>, Pumped) {
    let (pool_tx, pool_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (digest_tx, digest_rx) = mpsc::channel::<Chunk>(BUFFERS);
    let (result_tx, result_rx) = oneshot::channel();
    let back = pool_tx.clone();
    let spawned = std::thread::Builder::new()
        .name("omk-digest".into())
        .spawn(move || {
            let _ = result_tx.send(digest(kind, digest_rx, back));
        });
    if let Err(e) = spawned {
        let error = anyhow!("could not start the digest thread: {e}");
        return (stream, stdin, Pumped::Failed { error, bytes: 0 });
    }
    let (write_tx, write_rx) = mpsc::channel::<Chunk>(BUFFERS);
    let mut sent = 0u64;
    let joined = tokio::try_join!(
        read(&mut stream, pool_rx, digest_tx, write_tx, limits.idle),
        write(&mut stdin, write_rx, pool_tx, limits.write, &mut sent),
    );
    let pumped = match joined {
        Err(error) => Pumped::Failed { error, bytes: sent },
        Ok(_) => match result_rx.await {
            Ok(d) => Pumped::Done(d),
            Err(_) => Pumped::Failed {
                error: anyhow!("the digest thread ended without a result"),
                bytes: sent,
            },
        },
    };
    (stream, stdin, pumped)
}

/// The reader: fill a free buffer from the stream and pass it to the digest and the
/// writer. A buffer is handed on early when the writer has nothing queued (restic is
/// never kept waiting), otherwise filled up (fewer hand-offs and pipe writes).
async fn read(
    stream: &mut ExecStream,
    mut pool: mpsc::UnboundedReceiver<Vec<u8>>,
    to_digest: mpsc::Sender<Chunk>,
    to_writer: mpsc::Sender<Chunk>,
    idle: Option<Duration>,
) -> anyhow::Result<()> {
    let mut allocated = 0;
    let mut eof = false;
    while !eof {
        let mut buf = match pool.try_recv() {
            Ok(b) => b,
            Err(_) if allocated < BUFFERS => {
                allocated += 1;
                vec![0u8; BUF]
            }
            Err(_) => pool
                .recv()
                .await
                .ok_or_else(|| anyhow!("the dump buffers were lost"))?,
        };
        let mut filled = 0;
        loop {
            let next = match idle {
                Some(idle) => tokio::time::timeout(idle, stream.next_stdout(&mut buf[filled..]))
                    .await
                    .map_err(|_| Stalled(idle))??,
                None => stream.next_stdout(&mut buf[filled..]).await?,
            };
            match next {
                Some(n) => filled += n,
                None => eof = true,
            }
            let queued = to_writer.max_capacity() - to_writer.capacity();
            if eof || filled == buf.len() || queued == 0 {
                break;
            }
            if queued >= 2 {
                // restic has megabytes to chew on: let the socket fill up instead of
                // waking for every 32 KiB frame the daemon writes.
                tokio::time::sleep(BATCH_WAIT).await;
            }
        }
        if filled == 0 {
            break;
        }
        let chunk = Arc::new((buf, filled));
        to_digest
            .send(Arc::clone(&chunk))
            .await
            .map_err(|_| anyhow!("the digest thread stopped"))?;
        to_writer
            .send(chunk)
            .await
            .map_err(|_| anyhow!("restic's writer stopped"))?;
    }
    Ok(())
}

/// The writer: each chunk into restic's stdin, in order.
async fn write(
    stdin: &mut Option<ChildStdin>,
    mut chunks: mpsc::Receiver<Chunk>,
    pool: mpsc::UnboundedSender<Vec<u8>>,
    deadline: Duration,
    sent: &mut u64,
) -> anyhow::Result<()> {
    while let Some(chunk) = chunks.recv().await {
        let w = stdin
            .as_mut()
            .ok_or_else(|| anyhow!("restic's stdin is closed"))?;
        let (buf, n) = &*chunk;
        match tokio::time::timeout(deadline, w.write_all(&buf[..*n])).await {
            Ok(Ok(())) => *sent += *n as u64,
            Ok(Err(e)) => anyhow::bail!("restic stopped reading the dump ({e}): it probably died"),
            Err(_) => anyhow::bail!("restic did not accept data for {} s", deadline.as_secs()),
        }
        give_back(chunk, &pool);
    }
    Ok(())
}

/// Return a chunk's buffer to the reader once its last user is done with it.
fn give_back(chunk: Chunk, pool: &mpsc::UnboundedSender<Vec<u8>>) {
    if let Some((buf, _)) = Arc::into_inner(chunk) {
        let _ = pool.send(buf);
    }
}

/// The digest thread: hash and count each chunk in order.
fn digest(
    kind: JobKind,
    mut chunks: mpsc::Receiver<Chunk>,
    pool: mpsc::UnboundedSender<Vec<u8>>,
) -> Digest {
    let mut hasher = Sha256::new();
    let mut counter = Counter::new(kind);
    let mut bytes = 0u64;
    let mut tail = Vec::with_capacity(2 * engine::TAIL);
    while let Some(chunk) = chunks.blocking_recv() {
        let data = &chunk.0[..chunk.1];
        hasher.update(data);
        counter.feed(data);
        engine::keep_tail(&mut tail, data);
        bytes += data.len() as u64;
        give_back(chunk, &pool);
    }
    Digest {
        sha256: hex::encode(hasher.finalize()),
        bytes,
        fingerprint: counter.finish(),
        tail,
    }
}
