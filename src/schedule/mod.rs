//! Schedule files: crontab lines whose command is an omk-backup task.
//!
//! Owns the schedule file format (5 fields or `@macro`, `CRON_TZ=` lines, comments),
//! where the files come from (`[schedule] files` globs, else `schedules/` beside the
//! config, else the shipped default compiled in), and when each line runs next.
//! Problems are `ConfigError`s pointing at file:line:column with a hint (exit code 2).
//! The time arithmetic is our own (`cron.rs`), not a crate's: see docs/schedules.md.

pub mod cron;
pub mod plan;
pub mod task;

pub use cron::CronSpec;
pub use task::{Task, TaskKind};

use crate::config::{Config, ConfigError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::path::{Path, PathBuf};

/// The shipped default schedule (`schedules/default.cron`).
pub const DEFAULT: &str = include_str!("../../schedules/default.cron");
/// How the embedded default is named in messages and listings.
pub const DEFAULT_NAME: &str = "(built-in schedules/default.cron)";

/// One schedule line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub file: PathBuf,
    pub line: usize,
    /// The time part as written (`30 2 * * *` or `@daily`).
    pub when: String,
    pub spec: CronSpec,
    pub tz: Tz,
    pub task: Task,
}

impl Entry {
    /// A stable key for the daemon's queue and logs: `file:line`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.spec.next_after(self.tz, after)
    }
}

/// All schedule lines in effect, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub sources: Vec<PathBuf>,
    pub entries: Vec<Entry>,
}

impl Schedule {
    /// The next scheduled backup that covers `job`, after `now`.
    pub fn next_backup(&self, job: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries
            .iter()
            .filter(|e| e.task.backs_up(job))
            .filter_map(|e| e.next_after(now))
            .min()
    }
}

/// The zone for lines before any `CRON_TZ=`: `$TZ`, else `/etc/timezone`, else the
/// `/etc/localtime` link, else UTC.
pub fn host_zone() -> Tz {
    let candidates = [
        std::env::var("TZ")
            .ok()
            .map(|s| s.trim_start_matches(':').to_string()),
        std::fs::read_to_string("/etc/timezone")
            .ok()
            .map(|s| s.trim().to_string()),
        std::fs::read_link("/etc/localtime").ok().and_then(|p| {
            let s = p.display().to_string();
            s.split_once("zoneinfo/").map(|(_, z)| z.to_string())
        }),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|s| s.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// Load the schedules a config uses, validating job names against it.
pub fn load(config: &Config) -> Result<Schedule, ConfigError> {
    let zone = host_zone();
    let files = match &config.schedule_files {
        Some(globs) => expand(config, globs)?,
        None => {
            let dir = config.dir.join("schedules");
            let mut found = Vec::new();
            if dir.is_dir() {
                let pattern = format!(
                    "{}/*.cron",
                    glob::Pattern::escape(&dir.display().to_string())
                );
                found = glob_files(&pattern).map_err(|e| ConfigError::new(&dir, e))?;
            }
            found
        }
    };
    let mut entries = Vec::new();
    if files.is_empty() && config.schedule_files.is_none() {
        entries = parse(Path::new(DEFAULT_NAME), DEFAULT, zone)?;
        check_jobs(config, Path::new(DEFAULT_NAME), DEFAULT, &entries)?;
        return Ok(Schedule {
            sources: vec![PathBuf::from(DEFAULT_NAME)],
            entries,
        });
    }
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            ConfigError::new(f, format!("cannot read the schedule file: {e}"))
                .hint("check the file's permissions, or fix [schedule] files in the config")
        })?;
        let mut parsed = parse(f, &text, zone)?;
        check_jobs(config, f, &text, &parsed)?;
        entries.append(&mut parsed);
    }
    Ok(Schedule {
        sources: files,
        entries,
    })
}

fn expand(config: &Config, globs: &[String]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    for g in globs {
        let found = glob_files(g).map_err(|e| {
            ConfigError::new(&config.file, format!("schedule.files: {e}"))
                .hint("globs use *, ? and [..]; relative paths start at the config's folder")
        })?;
        if found.is_empty() {
            return Err(ConfigError::new(
                &config.file,
                format!("schedule.files: `{g}` matches no file"),
            )
            .hint("fix the path or glob (relative paths start at the config's folder), or remove the key to use the default"));
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn glob_files(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let paths = glob::glob(pattern).map_err(|e| format!("bad glob `{pattern}`: {e}"))?;
    let mut v: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Unknown job names in tasks are errors at their place in the file.
fn check_jobs(
    config: &Config,
    file: &Path,
    text: &str,
    entries: &[Entry],
) -> Result<(), ConfigError> {
    for e in entries {
        for j in &e.task.jobs {
            if !config.jobs.contains_key(j) {
                let line_text = text.lines().nth(e.line - 1).unwrap_or("");
                let col = find_word(line_text, j).map(|c| c + 1).unwrap_or(1);
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    position: Some((e.line, col)),
                    message: format!(
                        "{} names the job `{j}`, which the config does not define",
                        e.task.kind.as_str()
                    ),
                    hint: Some(format!(
                        "the jobs in {} are: {}",
                        config.file.display(),
                        config.job_names()
                    )),
                });
            }
        }
    }
    Ok(())
}

fn find_word(line: &str, w: &str) -> Option<usize> {
    words(line)
        .into_iter()
        .rev()
        .find(|x| x.1 == w)
        .map(|x| line[..x.0].chars().count())
}

/// Whitespace-separated words with their byte offsets.
fn words(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(st)) => {
                out.push((st, &s[st..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, &s[st..]));
    }
    out
}

const TASK_NAMES: [&str; 6] = [
    "backup",
    "forget",
    "check",
    "restore-test",
    "report",
    "omk-backup",
];

/// One line being parsed: errors point at a byte of it.
struct LineAt<'a> {
    file: &'a Path,
    n: usize,
    line: &'a str,
}

impl LineAt<'_> {
    fn err(&self, byte: usize, message: String, hint: String) -> ConfigError {
        let line = self.line;
        ConfigError {
            file: self.file.to_path_buf(),
            position: Some((self.n, line[..byte.min(line.len())].chars().count() + 1)),
            message,
            hint: Some(hint),
        }
    }
}

/// Parse one schedule file's text. `zone` applies until a `CRON_TZ=` line.
pub fn parse(file: &Path, text: &str, zone: Tz) -> Result<Vec<Entry>, ConfigError> {
    let mut tz = zone;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = LineAt {
            file,
            n: i + 1,
            line,
        };
        let trimmed = line.trim_start();
        let lead = line.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(zone) = env_line(&at, lead) {
            tz = zone?;
            continue;
        }
        let w = words(line);
        let (spec, when, rest) = timing(&at, lead, &w)?;
        let task = Task::parse(rest).map_err(|e| {
            let byte = if e.offset == 0 { line.len() } else { e.offset };
            at.err(byte, e.message, e.hint)
        })?;
        out.push(Entry {
            file: file.to_path_buf(),
            line: at.n,
            when,
            spec,
            tz,
            task,
        });
    }
    Ok(out)
}

/// An environment line (`NAME=value`, Vixie allows spaces around `=`): only `CRON_TZ`
/// is understood, and gives the zone of the lines below. `None`: not such a line.
fn env_line(at: &LineAt<'_>, lead: usize) -> Option<Result<Tz, ConfigError>> {
    let line = at.line;
    let eq = line.find('=')?;
    let name = line[..eq].trim();
    if line.trim_start().starts_with('@')
        || name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    if name != "CRON_TZ" {
        return Some(Err(at.err(
            lead,
            format!("`{name}=` is not supported in schedule files"),
            "only CRON_TZ=Area/City lines are understood (they set the zone of the lines below)"
                .into(),
        )));
    }
    let value = line[eq + 1..]
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    let vpos = eq + 1 + (line[eq + 1..].len() - line[eq + 1..].trim_start().len());
    Some(value.parse::<Tz>().map_err(|_| {
        at.err(
            vpos,
            format!("unknown time zone `{value}`"),
            "use an IANA zone name such as Europe/Berlin, America/New_York or UTC".into(),
        )
    }))
}

/// A line's timing, its text (`@daily`, `30 2 * * *`) and the words after it.
type Timing<'w, 'l> = (CronSpec, String, &'w [(usize, &'l str)]);

/// A line's timing (`@macro` or five fields), its text, and the words after it.
fn timing<'w, 'l>(
    at: &LineAt<'_>,
    lead: usize,
    w: &'w [(usize, &'l str)],
) -> Result<Timing<'w, 'l>, ConfigError> {
    if at.line.trim_start().starts_with('@') {
        let (byte, m) = w[0];
        let spec = CronSpec::from_macro(m, byte)
            .map_err(|e| at.err(e.offset, e.message, e.hint.unwrap_or_default()))?;
        return Ok((spec, m.to_string(), &w[1..]));
    }
    if w.len() < 5 {
        return Err(at.err(
            lead,
            format!(
                "a schedule line needs 5 time fields and a task; found {} word(s)",
                w.len()
            ),
            "write: minute hour day-of-month month day-of-week task, e.g. `30 2 * * * backup`"
                .into(),
        ));
    }
    if let Some(k) = w[..5].iter().position(|x| TASK_NAMES.contains(&x.1)) {
        return Err(at.err(w[k].0, format!("only {k} time field(s) before the task `{}`", w[k].1),
            "write all 5 fields: minute hour day-of-month month day-of-week, e.g. `30 2 * * * backup`".into()));
    }
    let fields = [w[0], w[1], w[2], w[3], w[4]];
    if let Some(&(byte, word)) = w.get(5)
        && word
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '*')
    {
        return Err(at.err(
            byte,
            format!("`{word}` looks like a sixth time field"),
            "schedule lines use the standard 5 fields (no seconds, no year), then the task".into(),
        ));
    }
    let spec = CronSpec::from_fields(&fields)
        .map_err(|e| at.err(e.offset, e.message, e.hint.unwrap_or_default()))?;
    let when = fields.iter().map(|f| f.1).collect::<Vec<_>>().join(" ");
    Ok((spec, when, &w[5..]))
}

#[cfg(test)]
mod tests;
