//! restic 0.18 retries a failed backend request with backoff for up to 15 minutes,
//! whatever the error — also errors that waiting cannot heal, like a server certificate
//! no trusted CA signed (0.14 fails at once; restic 0.18 has no flag to bound the
//! retrying). This module reads restic's stderr as it comes and raises [`Watch::fatal`]
//! at the first such line, so the caller stops restic at once instead of waiting.

use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub(super) struct Watch {
    /// All of stderr, when the child closed it.
    pub text: JoinHandle<String>,
    /// Notified once a hopeless error was printed.
    pub fatal: Arc<Notify>,
}

/// Errors no retry can fix.
pub(super) fn hopeless(line: &str) -> bool {
    line.contains("x509: ") || line.contains("tls: failed to verify certificate")
}

pub(super) fn watch(stderr: ChildStderr) -> Watch {
    let fatal = Arc::new(Notify::new());
    let raise = fatal.clone();
    let text = tokio::spawn(async move {
        let mut r = BufReader::new(stderr);
        let mut all = Vec::new();
        let mut said = false;
        loop {
            let start = all.len();
            match r.read_until(b'\n', &mut all).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !said && hopeless(&String::from_utf8_lossy(&all[start..])) {
                        said = true;
                        raise.notify_one();
                    }
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    Watch { text, fatal }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_untrusted_certificate_is_hopeless_a_refused_connection_is_not() {
        assert!(super::hopeless(
            "Load(<config/0000000000>, 0, 0) returned error, retrying after 1s: Get \"https://h/config\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
        ));
        assert!(!super::hopeless(
            "Stat(<config/>) returned error, retrying after 1s: dial tcp 127.0.0.1:1: connect: connection refused"
        ));
    }
}
