//! The fingerprint parser as it was before the streaming fast paths (one `Vec` per
//! line, one map lookup per row): kept verbatim as the test oracle the fast [`Counter`]
//! must match byte for byte. Test-only.
//!
//! [`Counter`]: super::Counter

use super::Fingerprint;
use crate::domain::JobKind;
use std::collections::BTreeMap;

/// How much of a line's beginning we keep to recognise it.
const HEAD: usize = 4096;

/// A streaming counter for one engine's dump format.
#[derive(Debug)]
pub struct Counter {
    engine: JobKind,
    /// The beginning of the current line (capped at [`HEAD`]).
    head: Vec<u8>,
    /// Bytes of the current line seen so far.
    line_len: usize,
    /// Postgres: inside a COPY block for this table.
    copy: Option<String>,
    /// Current database (Postgres `\connect`, MariaDB `USE`).
    db: Option<String>,
    /// MariaDB: counting value tuples of an INSERT into this table.
    insert: Option<Tuples>,
    tables: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct Tuples {
    table: String,
    in_str: bool,
    esc: bool,
    depth: i32,
    /// The statement's `;` was seen: ignore the rest of the line.
    done: bool,
}

impl Counter {
    pub fn new(engine: JobKind) -> Counter {
        Counter {
            engine,
            head: Vec::with_capacity(256),
            line_len: 0,
            copy: None,
            db: None,
            insert: None,
            tables: BTreeMap::new(),
        }
    }

    /// Feed the next piece of the dump.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (part, rest, eol) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            self.take(part);
            if eol {
                self.end_line();
            }
            data = rest;
        }
    }

    fn take(&mut self, part: &[u8]) {
        let mut part = part;
        if self.insert.is_none() && self.head.len() < HEAD {
            let room = HEAD - self.head.len();
            let n = room.min(part.len());
            self.head.extend_from_slice(&part[..n]);
            self.line_len += n;
            if self.engine == JobKind::Mariadb {
                self.maybe_start_insert();
                if self.insert.is_some() {
                    // The bytes after VALUES in the head were counted; go on with the rest.
                    part = &part[n..];
                    self.count_tuples(part);
                    self.line_len += part.len();
                    return;
                }
            }
            part = &part[n..];
        } else if self.insert.is_some() {
            self.count_tuples(part);
        }
        self.line_len += part.len();
    }

    /// MariaDB: once the head holds "INSERT INTO `t` VALUES", start counting tuples
    /// (mariadb-dump 10.11 puts each tuple on its own line; older ones one long line).
    fn maybe_start_insert(&mut self) {
        const P: &[u8] = b"INSERT INTO `";
        if !self.head.starts_with(P) {
            return;
        }
        let Some(end) = find(&self.head[P.len()..], b"` VALUES") else {
            return;
        };
        let table = String::from_utf8_lossy(&self.head[P.len()..P.len() + end]).into_owned();
        let after = P.len() + end + b"` VALUES".len();
        let rest = self.head[after..].to_vec();
        self.insert = Some(Tuples {
            table,
            in_str: false,
            esc: false,
            depth: 0,
            done: false,
        });
        self.count_tuples(&rest);
    }

    fn count_tuples(&mut self, data: &[u8]) {
        let Some(t) = &mut self.insert else { return };
        let mut n = 0u64;
        for &b in data {
            if t.done {
                break;
            }
            if t.in_str {
                if t.esc {
                    t.esc = false;
                } else if b == b'\\' {
                    t.esc = true;
                } else if b == b'\'' {
                    t.in_str = false;
                }
                continue;
            }
            match b {
                b'\'' => t.in_str = true,
                b'(' => {
                    if t.depth == 0 {
                        n += 1;
                    }
                    t.depth += 1;
                }
                b')' => t.depth -= 1,
                b';' if t.depth == 0 => t.done = true,
                _ => {}
            }
        }
        let key = qualify(self.db.as_deref(), &t.table);
        *self.tables.entry(key).or_insert(0) += n;
    }

    fn end_line(&mut self) {
        let head = std::mem::take(&mut self.head);
        let line = trim_cr(&head);
        let complete = self.line_len == head.len();
        self.line_len = 0;
        if let Some(t) = &self.insert {
            // A statement spans lines until its `;`.
            if t.done {
                self.insert = None;
            }
            return;
        }
        match self.engine {
            JobKind::Postgres => {
                if let Some(table) = &self.copy {
                    if line == b"\\." {
                        self.copy = None;
                    } else {
                        *self.tables.entry(table.clone()).or_insert(0) += 1;
                    }
                } else if complete && line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;")
                {
                    let rest = &line[5..];
                    let end = find(rest, b" (")
                        .or_else(|| find(rest, b" FROM stdin;"))
                        .unwrap_or(rest.len());
                    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
                    let key = qualify(self.db.as_deref(), &name);
                    self.tables.entry(key.clone()).or_insert(0);
                    self.copy = Some(key);
                } else if let Some(db) = line.strip_prefix(b"\\connect ") {
                    let db = String::from_utf8_lossy(db);
                    let db = db.split_whitespace().last().unwrap_or("").trim_matches('"');
                    self.db = Some(db.to_string());
                }
            }
            JobKind::Mariadb => {
                if let Some(db) = line.strip_prefix(b"USE `") {
                    let db = String::from_utf8_lossy(db);
                    self.db = Some(db.trim_end_matches(';').trim_end_matches('`').to_string());
                } else if let Some(rest) = line.strip_prefix(b"CREATE TABLE `")
                    && let Some(end) = find(rest, b"`")
                {
                    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
                    self.tables
                        .entry(qualify(self.db.as_deref(), &name))
                        .or_insert(0);
                }
            }
            JobKind::Sqlite => {
                if let Some(rest) = line.strip_prefix(b"INSERT INTO ") {
                    let name = sqlite_name(rest);
                    *self.tables.entry(name).or_insert(0) += 1;
                } else if let Some(rest) = line.strip_prefix(b"CREATE TABLE ") {
                    let rest = rest.strip_prefix(b"IF NOT EXISTS ").unwrap_or(rest);
                    let name = sqlite_name(rest);
                    self.tables.entry(name).or_insert(0);
                }
            }
            JobKind::Files => {}
        }
    }

    /// The fingerprint so far (call after the last chunk).
    pub fn finish(mut self) -> Fingerprint {
        if !self.head.is_empty() || self.insert.is_some() {
            self.end_line();
        }
        Fingerprint {
            engine: self.engine.as_str().to_string(),
            rows: self.tables.values().sum(),
            tables: self.tables,
        }
    }
}

fn qualify(db: Option<&str>, table: &str) -> String {
    match db {
        Some(d) if !d.is_empty() => format!("{d}.{table}"),
        _ => table.to_string(),
    }
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `t VALUES(...)`, `"my t" VALUES(...)`, `t(a,b)` → the table name.
fn sqlite_name(rest: &[u8]) -> String {
    let s = String::from_utf8_lossy(rest);
    if let Some(q) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    out.push('"');
                    chars.next();
                    continue;
                }
                break;
            }
            out.push(c);
        }
        return out;
    }
    s.split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_string()
}
