//! Progress on stderr: an indicatif bar when stderr is a terminal, plain notes otherwise,
//! nothing with `-q` or `--json`.

use crate::app::reporter::Reporter;
use crate::restic::BackupStatus;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct TermReporter {
    quiet: bool,
    tty: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl TermReporter {
    pub fn new(quiet: bool) -> Self {
        TermReporter {
            quiet,
            tty: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    pub fn clear(&self) {
        if let Ok(mut b) = self.bar.lock()
            && let Some(bar) = b.take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for TermReporter {
    fn note(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn backup_progress(&self, job: &str, s: &BackupStatus) {
        if self.quiet || !self.tty {
            return;
        }
        let Ok(mut guard) = self.bar.lock() else {
            return;
        };
        let bar = guard.get_or_insert_with(|| {
            let bar =
                ProgressBar::with_draw_target(Some(s.total_bytes), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(job.to_string());
            bar
        });
        bar.set_length(s.total_bytes.max(s.bytes_done));
        bar.set_position(s.bytes_done);
        bar.set_message(format!("{}/{} files", s.files_done, s.total_files));
    }

    fn step_done(&self) {
        self.clear();
    }
}
