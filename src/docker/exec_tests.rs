//! Unit tests of the exec stream: framing (close-delimited, chunked, 101 tunnel), cut
//! streams, refusals, and telling Docker's own exec failures from failed commands.

use super::*;

fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![kind, 0, 0, 0];
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for c in body.chunks(size) {
        v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        v.extend_from_slice(c);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

async fn collect(response: Vec<u8>) -> Result<(Vec<u8>, String, Option<u32>), DockerError> {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let writer = tokio::spawn(async move {
        let mut req = vec![0u8; 1024];
        let _ = server.read(&mut req).await;
        for piece in response.chunks(7) {
            if server.write_all(piece).await.is_err() {
                return;
            }
        }
    });
    let mut s = ExecStream::start("test", Box::new(client), "abc").await?;
    let mut out = Vec::new();
    let mut buf = [0u8; 5];
    while let Some(n) = s.next_stdout(&mut buf).await? {
        out.extend_from_slice(&buf[..n]);
    }
    let _ = writer.await;
    Ok((out, s.stderr_tail(), s.pid()))
}

fn body() -> Vec<u8> {
    let mut b = frame(2, b"omk-pid=42\nwarn");
    b.extend(frame(1, b"hello "));
    b.extend(frame(2, b"ing\n"));
    b.extend(frame(1, b"world\n"));
    b
}

#[tokio::test]
async fn close_delimited_stream() {
    let mut r =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n".to_vec();
    r.extend(body());
    let (out, err, pid) = collect(r).await.unwrap();
    assert_eq!(out, b"hello world\n");
    assert_eq!(err, "warning");
    assert_eq!(pid, Some(42));
}

#[tokio::test]
async fn chunked_stream_through_nginx() {
    for size in [1, 3, 8, 9, 100] {
        let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        r.extend(chunked(&body(), size));
        let (out, err, _) = collect(r).await.unwrap();
        assert_eq!(out, b"hello world\n", "chunk size {size}");
        assert_eq!(err, "warning");
    }
}

#[tokio::test]
async fn cut_stream_is_an_error() {
    let mut r = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    let b = body();
    r.extend(&b[..b.len() - 3]);
    assert!(matches!(collect(r).await, Err(DockerError::Stream { .. })));
}

/// The request asks for the upgrade (so Go proxies hijack instead of forwarding the
/// stream through `Transport.RoundTrip`), head and body in one write; a `101` answer
/// is a tunnel read until the daemon closes.
#[tokio::test]
async fn upgrade_requested_and_a_101_tunnel_streams() {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let writer = tokio::spawn(async move {
        let mut req = vec![0u8; 1024];
        let n = server.read(&mut req).await.unwrap();
        let mut r = b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".to_vec();
        r.extend(body());
        server.write_all(&r).await.unwrap();
        String::from_utf8_lossy(&req[..n]).into_owned()
    });
    let mut s = ExecStream::start("test", Box::new(client), "abc")
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while let Some(n) = s.next_stdout(&mut buf).await.unwrap() {
        out.extend_from_slice(&buf[..n]);
    }
    let req = writer.await.unwrap();
    assert!(
        req.contains("\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"),
        "{req}"
    );
    assert!(
        req.ends_with(r#"{"Detach":false,"Tty":false}"#),
        "one write: {req}"
    );
    assert_eq!(out, b"hello world\n");
    assert_eq!(s.pid(), Some(42));
}

/// What Docker 20.10 answered here (checked with curl on the socket): a missing
/// binary is 126 with the runtime's message on stdout; a shell's "not found" is 127
/// with stderr (the command ran); a silent 126 is a cut stream.
#[test]
fn not_run_tells_docker_failures_from_commands_that_failed() {
    let missing = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"psql\": executable file not found in $PATH: unknown\r\n";
    assert_eq!(
        not_run(126, missing, ""),
        Some(NotRun::Runtime {
            message: missing.trim().to_string(),
            permanent: true
        })
    );
    let transient = "OCI runtime exec failed: exec failed: container is paused: unknown";
    assert!(matches!(
        not_run(126, transient, ""),
        Some(NotRun::Runtime {
            permanent: false,
            ..
        })
    ));
    assert_eq!(not_run(126, "", ""), Some(NotRun::StreamBroken));
    assert_eq!(not_run(126, "", "sh: 1: ./x: Permission denied"), None);
    assert_eq!(not_run(127, "", "sh: 1: psql: not found"), None);
    assert_eq!(not_run(2, "", "psql: error: connection refused"), None);
    assert_eq!(not_run(1, "", ""), None);
    assert_eq!(not_run(0, "", ""), None);
}

#[tokio::test]
async fn refusal_names_the_endpoint() {
    let r = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nForbidden".to_vec();
    let e = collect(r).await.unwrap_err().to_string();
    assert!(e.contains("POST /exec/abc/start"), "{e}");
    assert!(e.contains("EXEC=1"), "{e}");
}

#[tokio::test]
async fn many_frames_gathered_into_one_large_buffer() {
    // Frames of every awkward size (empty, 1 byte, header split by the 7-byte writes),
    // stderr interleaved: a large buffer gets all the stdout, in order.
    let mut r = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    let mut want = Vec::new();
    r.extend(frame(2, b"omk-pid=7\n"));
    for i in 0..2000usize {
        let data: Vec<u8> = (0..(i * 37) % 301).map(|j| (i + j) as u8).collect();
        r.extend(frame(1, &data));
        want.extend_from_slice(&data);
        if i % 97 == 0 {
            r.extend(frame(2, format!("e{i}\n").as_bytes()));
        }
    }
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let writer = tokio::spawn(async move {
        let mut req = vec![0u8; 1024];
        let _ = server.read(&mut req).await;
        for piece in r.chunks(7) {
            server.write_all(piece).await.unwrap();
        }
    });
    let mut s = ExecStream::start("test", Box::new(client), "abc")
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Some(n) = s.next_stdout(&mut buf).await.unwrap() {
        assert!(n > 0);
        out.extend_from_slice(&buf[..n]);
    }
    writer.await.unwrap();
    assert_eq!(out.len(), want.len());
    assert!(out == want, "stdout bytes differ");
    assert_eq!(s.pid(), Some(7));
    assert!(s.stderr_tail().ends_with("e1940"), "{}", s.stderr_tail());
}
