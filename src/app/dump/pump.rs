//! The dump pump: moves a dump's stdout from the exec stream into restic's stdin while
//! a dedicated thread computes the SHA-256, byte count and row fingerprint of the same
//! bytes, so restic writes and hashing overlap instead of taking turns on the I/O task.
//!
//! Memory stays flat for any dump size: [`BUFFERS`] buffers of [`BUF`] bytes circulate
//! between the reader, the digest thread and the restic write; when the thread falls
//! behind, the reader waits for a buffer to come back (backpressure reaches the socket
//! and so the dump), and when restic stops reading, the write times out.

use crate::docker::ExecStream;
use crate::domain::JobKind;
use crate::fingerprint::{Counter, Fingerprint};
use anyhow::anyhow;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, oneshot};

/// One read from the exec stream fills up to this much.
const BUF: usize = 1024 * 1024;
/// Buffers in circulation (reader → digest thread and restic write → reader).
const BUFFERS: usize = 4;

/// What the digest thread computed over every byte of the dump.
pub(super) struct Digest {
    pub sha256: String,
    pub bytes: u64,
    pub fingerprint: Fingerprint,
}

/// How a pump ended: the digest when the stream ended cleanly, or why not and how far
/// it got.
pub(super) enum Pumped {
    Done(Digest),
    Failed { error: anyhow::Error, bytes: u64 },
}

type Chunk = (Arc<Vec<u8>>, usize);

/// Copy `stream`'s stdout into `stdin` until the stream ends, digesting it on the way.
pub(super) async fn pump(
    stream: &mut ExecStream,
    stdin: &mut Option<ChildStdin>,
    kind: JobKind,
    idle: Duration,
    write_deadline: Duration,
) -> Pumped {
    let (to_digest, from_reader) = mpsc::channel::<Chunk>(BUFFERS);
    let (give_back, mut returned) = mpsc::unbounded_channel::<Arc<Vec<u8>>>();
    let (result_tx, result_rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("omk-digest".into())
        .spawn(move || {
            let _ = result_tx.send(digest(kind, from_reader, give_back));
        });
    if let Err(e) = spawned {
        let error = anyhow!("could not start the digest thread: {e}");
        return Pumped::Failed { error, bytes: 0 };
    }
    let mut sent: u64 = 0;
    let mut allocated = 0;
    let failure = loop {
        // A free buffer: one the digest thread gave back, a new one, or wait for one.
        let mut buf = match returned.try_recv() {
            Ok(b) => b,
            Err(_) if allocated < BUFFERS => {
                allocated += 1;
                Arc::new(vec![0u8; BUF])
            }
            Err(_) => match returned.recv().await {
                Some(b) => b,
                None => break Some(anyhow!("the digest thread stopped")),
            },
        };
        let Some(space) = Arc::get_mut(&mut buf) else {
            break Some(anyhow!("a dump buffer is still in use"));
        };
        let n = match tokio::time::timeout(idle, stream.next_stdout(space)).await {
            Ok(Ok(Some(n))) => n,
            Ok(Ok(None)) => break None,
            Ok(Err(e)) => break Some(e.into()),
            Err(_) => {
                break Some(anyhow!(
                    "the dump printed nothing for {} minutes",
                    idle.as_secs() / 60
                ));
            }
        };
        if to_digest.send((Arc::clone(&buf), n)).await.is_err() {
            break Some(anyhow!("the digest thread stopped"));
        }
        let Some(w) = stdin.as_mut() else {
            break Some(anyhow!("restic's stdin is closed"));
        };
        match tokio::time::timeout(write_deadline, w.write_all(&buf[..n])).await {
            Ok(Ok(())) => sent += n as u64,
            Ok(Err(e)) => {
                break Some(anyhow!(
                    "restic stopped reading the dump ({e}): it probably died"
                ));
            }
            Err(_) => {
                break Some(anyhow!(
                    "restic did not accept data for {} s",
                    write_deadline.as_secs()
                ));
            }
        }
    };
    // Closing the channel ends the thread once it has digested what it was sent.
    drop(to_digest);
    if let Some(error) = failure {
        return Pumped::Failed { error, bytes: sent };
    }
    match result_rx.await {
        Ok(d) => Pumped::Done(d),
        Err(_) => Pumped::Failed {
            error: anyhow!("the digest thread ended without a result"),
            bytes: sent,
        },
    }
}

/// The digest thread: hash and count each chunk in order, then hand the buffer back.
fn digest(
    kind: JobKind,
    mut chunks: mpsc::Receiver<Chunk>,
    give_back: mpsc::UnboundedSender<Arc<Vec<u8>>>,
) -> Digest {
    let mut hasher = Sha256::new();
    let mut counter = Counter::new(kind);
    let mut bytes = 0u64;
    while let Some((buf, n)) = chunks.blocking_recv() {
        hasher.update(&buf[..n]);
        counter.feed(&buf[..n]);
        bytes += n as u64;
        let _ = give_back.send(buf);
    }
    Digest {
        sha256: hex::encode(hasher.finalize()),
        bytes,
        fingerprint: counter.finish(),
    }
}
