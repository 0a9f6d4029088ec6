//! One crontab time specification (the five fields or an `@macro`) with Vixie cron
//! semantics, and its next run in a time zone across DST changes.
//!
//! Semantics (Vixie cron 4.1 / cronie): Sunday is 0 or 7; month and day names; ranges,
//! steps, lists; when both day-of-month and day-of-week are restricted a day matches
//! when *either* does, and a field counts as unrestricted when it starts with `*`
//! (so `*/2` in day-of-month still ANDs with day-of-week, as in Vixie's `DOM_STAR`).
//! DST: a wall-clock time that occurs twice runs at its first occurrence only; one
//! that does not exist (spring gap) runs at the end of the gap, once.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A parse problem inside a time specification: byte offset in the spec and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl SpecError {
    fn new(offset: usize, message: impl Into<String>, hint: Option<&str>) -> Self {
        SpecError {
            offset,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

/// A parsed time specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6 (Sunday = 0).
    dow: u8,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct FieldDef {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// First name's value (months start at 1, days at 0).
    names_base: u32,
}

const FIELDS: [FieldDef; 5] = [
    FieldDef {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_base: 0,
    },
    FieldDef {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_base: 0,
    },
    FieldDef {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_base: 0,
    },
    FieldDef {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_base: 1,
    },
    FieldDef {
        name: "day of week",
        min: 0,
        max: 7,
        names: &DAYS,
        names_base: 0,
    },
];

/// The macros Vixie cron knows, as five fields. `@reboot` is refused (see `parse`).
pub const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl CronSpec {
    /// Parse five fields (given with their byte offsets in the line).
    pub fn from_fields(fields: &[(usize, &str); 5]) -> Result<CronSpec, SpecError> {
        let mut bits = [0u64; 5];
        for (i, (off, text)) in fields.iter().enumerate() {
            bits[i] = parse_field(&FIELDS[i], text, *off)?;
        }
        // Sunday 7 is Sunday 0.
        let mut dow = bits[4];
        if dow & (1 << 7) != 0 {
            dow = (dow & !(1 << 7)) | 1;
        }
        Ok(CronSpec {
            minutes: bits[0],
            hours: bits[1] as u32,
            dom: bits[2] as u32,
            months: bits[3] as u16,
            dow: dow as u8,
            dom_star: fields[2].1.starts_with('*'),
            dow_star: fields[4].1.starts_with('*'),
        })
    }

    /// Parse a macro such as `@daily` found at `offset`.
    pub fn from_macro(name: &str, offset: usize) -> Result<CronSpec, SpecError> {
        let lower = name.to_ascii_lowercase();
        if lower == "@reboot" {
            return Err(SpecError::new(
                offset,
                "@reboot is not supported",
                Some(
                    "the daemon catches up missed runs on start by itself; give a time, e.g. @daily",
                ),
            ));
        }
        let Some((_, fields)) = MACROS.iter().find(|(m, _)| *m == lower) else {
            return Err(SpecError::new(
                offset,
                format!("unknown macro `{name}`"),
                Some("use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"),
            ));
        };
        let parts: Vec<&str> = fields.split(' ').collect();
        let arr = [
            (offset, parts[0]),
            (offset, parts[1]),
            (offset, parts[2]),
            (offset, parts[3]),
            (offset, parts[4]),
        ];
        CronSpec::from_fields(&arr)
    }

    /// Whether a local date is a run day.
    pub fn day_matches(&self, d: NaiveDate) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom_ok = self.dom & (1 << d.day()) != 0;
        let dow_ok = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }

    /// The first run strictly after `after`, in zone `tz`; `None` when the spec never
    /// matches (e.g. `0 0 30 2 *`) within the next eight years.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Start a day early: a wall-clock time in a gap resolves later than it reads.
        let start = after.with_timezone(&tz).date_naive().pred_opt()?;
        let mut day = start;
        for _ in 0..(366 * 8) {
            if self.day_matches(day) {
                for h in 0..24u32 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    for m in 0..60u32 {
                        if self.minutes & (1 << m) == 0 {
                            continue;
                        }
                        let naive = day.and_hms_opt(h, m, 0)?;
                        let at = resolve(tz, naive)?;
                        if at > after {
                            return Some(at);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The next `n` runs after `after`.
    pub fn next_n(&self, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(tz, t) {
                Some(x) => {
                    out.push(x);
                    t = x;
                }
                None => break,
            }
        }
        out
    }
}

/// The instant a scheduled wall-clock time runs at: the first of two in an autumn
/// overlap; the end of the gap for a time that spring-forward skips.
pub fn resolve(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => {
            // Walk forward minute by minute to the first wall-clock time that exists:
            // that is the instant the clocks jumped (gaps are at most a day long).
            let mut t = naive;
            for _ in 0..(26 * 60) {
                t += Duration::minutes(1);
                match tz.from_local_datetime(&t) {
                    LocalResult::Single(x) => return Some(x.with_timezone(&Utc)),
                    LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
                    LocalResult::None => {}
                }
            }
            None
        }
    }
}

fn parse_field(def: &FieldDef, text: &str, offset: usize) -> Result<u64, SpecError> {
    let mut bits = 0u64;
    let mut pos = 0usize;
    for item in text.split(',') {
        let at = offset + pos;
        pos += item.len() + 1;
        if item.is_empty() {
            return Err(SpecError::new(
                at,
                format!("empty item in the {} field `{text}`", def.name),
                Some("lists are values separated by single commas, e.g. 1,15"),
            ));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let s_at = at + r.len() + 1;
                let step: u32 = s.parse().map_err(|_| {
                    SpecError::new(
                        s_at,
                        format!("step `{s}` in the {} field is not a number", def.name),
                        Some("write a step as */N or A-B/N, e.g. */15"),
                    )
                })?;
                if step == 0 || step > def.max {
                    return Err(SpecError::new(
                        s_at,
                        format!("step {step} in the {} field is out of range", def.name),
                        Some(&format!("a step is 1..{}", def.max)),
                    ));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (def.min, def.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = value(def, a, at)?;
            let hi = value(def, b, at + a.len() + 1)?;
            if lo > hi {
                return Err(SpecError::new(
                    at,
                    format!("range `{range}` in the {} field runs backwards", def.name),
                    Some(
                        "write ranges low-high; for a range across the wrap, use a list, e.g. 22-23,0-2",
                    ),
                ));
            }
            (lo, hi)
        } else {
            let v = value(def, range, at)?;
            if step.is_some() {
                return Err(SpecError::new(
                    at,
                    format!(
                        "`{item}`: a step needs a range or `*` in the {} field",
                        def.name
                    ),
                    Some(&format!(
                        "write {range}-{}/{}, or */{}",
                        def.max,
                        step.unwrap_or(1),
                        step.unwrap_or(1)
                    )),
                ));
            }
            (v, v)
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(def: &FieldDef, s: &str, at: usize) -> Result<u32, SpecError> {
    if let Ok(v) = s.parse::<u32>() {
        if v < def.min || v > def.max {
            return Err(SpecError::new(
                at,
                format!(
                    "{v} is out of range for the {} field ({}-{})",
                    def.name, def.min, def.max
                ),
                Some(match def.name {
                    "day of week" => "days of week are 0-7 (0 and 7 are Sunday) or sun-sat",
                    "month" => "months are 1-12 or jan-dec",
                    _ => "crontab fields are: minute hour day-of-month month day-of-week",
                }),
            ));
        }
        return Ok(v);
    }
    let lower = s.to_ascii_lowercase();
    if let Some(i) = def.names.iter().position(|n| *n == lower) {
        return Ok(def.names_base + i as u32);
    }
    let hint = if def.names.is_empty() {
        format!(
            "the {} field takes numbers {}-{}, `*`, ranges, steps and lists",
            def.name, def.min, def.max
        )
    } else {
        format!(
            "use {}-{} or the names {}",
            def.min,
            def.max,
            def.names.join(",")
        )
    };
    Err(SpecError::new(
        at,
        format!("`{s}` is not a valid {} value", def.name),
        Some(&hint),
    ))
}
