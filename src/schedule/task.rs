//! The task a schedule line runs: an omk-backup command with its arguments.

use serde::Serialize;

/// What a schedule line runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    Backup,
    Forget,
    Check,
    RestoreTest,
    Report,
    /// `copy [--to NAME] [JOB...]` (3-2-1 copies).
    Copy,
}

impl TaskKind {
    /// The command name, also the `runs.command` the catalog records.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Backup => "backup",
            TaskKind::Forget => "forget",
            TaskKind::Check => "check",
            TaskKind::RestoreTest => "restore-test",
            TaskKind::Report => "report",
            TaskKind::Copy => "copy",
        }
    }
}

/// A parsed task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Task {
    pub kind: TaskKind,
    /// Jobs named (empty: all jobs).
    pub jobs: Vec<String>,
    /// forget: `--prune`.
    pub prune: bool,
    /// check: `--read-data-subset`.
    pub read_data_subset: Option<String>,
    /// report: `--month`, `--format`, `--output`.
    pub month: Option<String>,
    pub format: Option<String>,
    pub output: Option<String>,
    /// copy: `--to NAME` (default: every copy).
    pub to: Option<String>,
}

/// A task problem: byte offset in the command text, message, hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

const TASKS_HINT: &str = "tasks are: backup [JOB...], forget [--prune] [JOB...], check [--read-data-subset K/N], restore-test [JOB...], report [--month YYYY-MM|previous], copy [--to COPY] [JOB...]";

/// The task a line's first word names.
fn kind_of(at: usize, name: &str) -> Result<TaskKind, TaskError> {
    Ok(match name {
        "backup" => TaskKind::Backup,
        "forget" => TaskKind::Forget,
        "check" => TaskKind::Check,
        "restore-test" => TaskKind::RestoreTest,
        "report" => TaskKind::Report,
        "copy" => TaskKind::Copy,
        other => {
            return Err(TaskError {
                offset: at,
                message: format!("unknown task `{other}`"),
                hint: TASKS_HINT.into(),
            });
        }
    })
}

impl Task {
    /// Parse `words` (each with its byte offset in the line).
    pub fn parse(words: &[(usize, &str)]) -> Result<Task, TaskError> {
        let mut words = words;
        if words.first().is_some_and(|w| w.1 == "omk-backup") {
            words = &words[1..];
        }
        let Some(&(at, name)) = words.first() else {
            return Err(TaskError {
                offset: 0,
                message: "the line has a time but no task".into(),
                hint: TASKS_HINT.into(),
            });
        };
        let kind = kind_of(at, name)?;
        let mut t = Task {
            kind,
            jobs: Vec::new(),
            prune: false,
            read_data_subset: None,
            month: None,
            format: None,
            output: None,
            to: None,
        };
        let mut i = 1;
        while i < words.len() {
            let (at, w) = words[i];
            let (flag, inline) = match w.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                _ => (w, None),
            };
            let take_value = |i: &mut usize| -> Result<String, TaskError> {
                if let Some(v) = inline {
                    return Ok(v.to_string());
                }
                *i += 1;
                words.get(*i).map(|x| x.1.to_string()).ok_or(TaskError {
                    offset: at,
                    message: format!("{flag} needs a value"),
                    hint: TASKS_HINT.into(),
                })
            };
            match (kind, flag) {
                (TaskKind::Forget, "--prune") if inline.is_none() => t.prune = true,
                (TaskKind::Check, "--read-data-subset") => {
                    t.read_data_subset = Some(take_value(&mut i)?)
                }
                (TaskKind::Report, "--month") => {
                    let v = take_value(&mut i)?;
                    if v != "previous" && !is_month(&v) {
                        return Err(TaskError {
                            offset: at,
                            message: format!("report --month `{v}` is not a month"),
                            hint: "use --month previous or --month YYYY-MM".into(),
                        });
                    }
                    t.month = Some(v)
                }
                (TaskKind::Report, "--format") => t.format = Some(take_value(&mut i)?),
                (TaskKind::Report, "--output") => t.output = Some(take_value(&mut i)?),
                (TaskKind::Copy, "--to") => t.to = Some(take_value(&mut i)?),
                (
                    TaskKind::Backup | TaskKind::Forget | TaskKind::RestoreTest | TaskKind::Copy,
                    job,
                ) if !job.starts_with('-') => t.jobs.push(job.to_string()),
                (_, other) => {
                    return Err(TaskError {
                        offset: at,
                        message: format!("`{other}` is not an option or argument of {name}"),
                        hint: TASKS_HINT.into(),
                    });
                }
            }
            i += 1;
        }
        Ok(t)
    }

    /// Whether this is a backup task that covers `job`.
    pub fn backs_up(&self, job: &str) -> bool {
        self.kind == TaskKind::Backup
            && (self.jobs.is_empty() || self.jobs.iter().any(|j| j == job))
    }
}

fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[5..].iter().all(u8::is_ascii_digit)
        && matches!(
            &s[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.as_str())?;
        if self.prune {
            f.write_str(" --prune")?;
        }
        if let Some(s) = &self.read_data_subset {
            write!(f, " --read-data-subset {s}")?;
        }
        if let Some(m) = &self.month {
            write!(f, " --month {m}")?;
        }
        if let Some(m) = &self.format {
            write!(f, " --format {m}")?;
        }
        if let Some(m) = &self.output {
            write!(f, " --output {m}")?;
        }
        if let Some(m) = &self.to {
            write!(f, " --to {m}")?;
        }
        for j in &self.jobs {
            write!(f, " {j}")?;
        }
        Ok(())
    }
}
