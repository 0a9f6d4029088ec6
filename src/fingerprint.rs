//! Content fingerprints of database dumps, computed while the dump streams: rows per
//! table, counted from the dump text itself (Postgres `COPY ... FROM stdin` blocks,
//! MariaDB extended `INSERT` value tuples, SQLite `.dump` `INSERT INTO` lines). A restore
//! test recounts the restored database and compares. Pure logic, fed in chunks that may
//! split anywhere (inside a line, a name, a quoted string); memory stays bounded.
//!
//! Built for the streaming hot path: lines that arrive whole inside one chunk are read
//! in place (only a line cut by a chunk boundary is buffered, up to [`HEAD`] bytes, in
//! one reused buffer); the rows of a Postgres `COPY` block are counted with `memchr`
//! line scans and added to the table once, at `\.`; MariaDB value tuples are scanned
//! with `memchr` jumps between quotes and parentheses and added once per statement.
//! The test module keeps the plain line-by-line parser this replaced as the oracle.

use crate::domain::JobKind;
use memchr::{memchr, memchr_iter, memchr2, memchr3};
use std::collections::BTreeMap;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

/// How much of a line's beginning we keep to recognise it.
const HEAD: usize = 4096;

/// Rows per table (`db.schema.table` for Postgres, `db.table` for MariaDB, `table` for
/// SQLite).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub engine: String,
    pub tables: BTreeMap<String, u64>,
    pub rows: u64,
}

/// A streaming counter for one engine's dump format.
#[derive(Debug)]
pub struct Counter {
    engine: JobKind,
    /// The beginning of a line cut by a chunk boundary (capped at [`HEAD`]); reused.
    head: Vec<u8>,
    /// Bytes of the current line seen so far.
    line_len: usize,
    /// Postgres: inside a COPY block for this table, with the rows seen so far.
    copy: Option<(String, u64)>,
    /// Current database (Postgres `\connect`, MariaDB `USE`).
    db: Option<String>,
    /// MariaDB: counting value tuples of an INSERT.
    insert: Option<Tuples>,
    tables: BTreeMap<String, u64>,
}

/// The value tuples of one MariaDB `INSERT INTO ... VALUES` statement.
#[derive(Debug)]
struct Tuples {
    /// The qualified table name (the database cannot change inside a statement).
    key: String,
    rows: u64,
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
            head: Vec::with_capacity(HEAD),
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
            if self.line_len == 0 && self.copy.is_some() {
                data = self.copy_rows(data);
                if data.is_empty() {
                    return;
                }
            }
            let Some(i) = memchr(b'\n', data) else {
                self.take(data);
                return;
            };
            if self.line_len == 0 {
                self.whole_line(&data[..i]);
            } else {
                self.take(&data[..i]);
                self.end_line();
            }
            data = &data[i + 1..];
        }
    }

    /// Postgres, at a line start inside a COPY block: count the whole data lines of
    /// `data` up to (not including) the `\.` line; return what is left.
    fn copy_rows<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Some((_, rows)) = &mut self.copy else {
            return data;
        };
        let mut start = 0;
        for i in memchr_iter(b'\n', data) {
            let line = &data[start..i];
            if line == b"\\." || line == b"\\.\r" {
                break;
            }
            *rows += 1;
            start = i + 1;
        }
        &data[start..]
    }

    /// A line that arrived whole (without its `\n`): read in place, nothing copied.
    fn whole_line(&mut self, line: &[u8]) {
        if self.insert.is_none() {
            let head = &line[..line.len().min(HEAD)];
            if self.engine == JobKind::Mariadb
                && let Some((table, after)) = insert_start(head)
            {
                self.start_insert(&table);
                self.scan_tuples(&line[after..]);
            } else {
                self.line_done(head, line.len() <= HEAD);
                return;
            }
        } else {
            self.scan_tuples(line);
        }
        self.end_insert_line();
    }

    /// A piece of a line cut by a chunk boundary: keep its head.
    fn take(&mut self, part: &[u8]) {
        let mut part = part;
        if self.insert.is_none() && self.head.len() < HEAD {
            let n = (HEAD - self.head.len()).min(part.len());
            self.head.extend_from_slice(&part[..n]);
            self.line_len += n;
            part = &part[n..];
            if self.engine == JobKind::Mariadb
                && let Some((table, after)) = insert_start(&self.head)
            {
                // The bytes after VALUES in the head count; then the rest of the part.
                let head = std::mem::take(&mut self.head);
                self.start_insert(&table);
                self.scan_tuples(&head[after..]);
                self.head = head;
                self.scan_tuples(part);
            }
        } else if self.insert.is_some() {
            self.scan_tuples(part);
        }
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        let mut head = std::mem::take(&mut self.head);
        let complete = self.line_len == head.len();
        self.line_len = 0;
        if self.insert.is_some() {
            self.end_insert_line();
        } else {
            self.line_done(&head, complete);
        }
        head.clear();
        self.head = head;
    }

    fn start_insert(&mut self, table: &str) {
        self.insert = Some(Tuples {
            key: qualify(self.db.as_deref(), table),
            rows: 0,
            in_str: false,
            esc: false,
            depth: 0,
            done: false,
        });
    }

    fn scan_tuples(&mut self, data: &[u8]) {
        if let Some(t) = &mut self.insert {
            t.scan(data);
        }
    }

    /// A statement spans lines until its `;`: at its line's end, add its tuples.
    fn end_insert_line(&mut self) {
        if self.insert.as_ref().is_some_and(|t| t.done) {
            self.flush_insert();
        }
    }

    fn flush_insert(&mut self) {
        if let Some(t) = self.insert.take() {
            *self.tables.entry(t.key).or_insert(0) += t.rows;
        }
    }

    fn flush_copy(&mut self) {
        if let Some((key, rows)) = self.copy.take() {
            *self.tables.entry(key).or_insert(0) += rows;
        }
    }

    /// The end of a line that is not part of an INSERT statement: `head` is its first
    /// [`HEAD`] bytes, `complete` whether that is all of it.
    fn line_done(&mut self, head: &[u8], complete: bool) {
        let line = trim_cr(head);
        match self.engine {
            JobKind::Postgres => self.postgres_line(line, complete),
            JobKind::Mariadb => {
                if let Some(db) = line.strip_prefix(b"USE `") {
                    let db = String::from_utf8_lossy(db);
                    self.db = Some(db.trim_end_matches(';').trim_end_matches('`').to_string());
                } else if let Some(rest) = line.strip_prefix(b"CREATE TABLE `")
                    && let Some(end) = memchr(b'`', rest)
                {
                    let name = String::from_utf8_lossy(&rest[..end]);
                    self.tables
                        .entry(qualify(self.db.as_deref(), &name))
                        .or_insert(0);
                }
            }
            JobKind::Sqlite => {
                if let Some(rest) = line.strip_prefix(b"INSERT INTO ") {
                    match plain_sqlite_name(rest).and_then(|n| self.tables.get_mut(n)) {
                        Some(n) => *n += 1,
                        None => *self.tables.entry(sqlite_name(rest)).or_insert(0) += 1,
                    }
                } else if let Some(rest) = line.strip_prefix(b"CREATE TABLE ") {
                    let rest = rest.strip_prefix(b"IF NOT EXISTS ").unwrap_or(rest);
                    self.tables.entry(sqlite_name(rest)).or_insert(0);
                }
            }
            JobKind::Files => {}
        }
    }

    fn postgres_line(&mut self, line: &[u8], complete: bool) {
        if let Some((_, rows)) = &mut self.copy {
            if line == b"\\." {
                self.flush_copy();
            } else {
                *rows += 1;
            }
        } else if complete && line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") {
            let rest = &line[5..];
            let end = find(rest, b" (")
                .or_else(|| find(rest, b" FROM stdin;"))
                .unwrap_or(rest.len());
            let name = String::from_utf8_lossy(&rest[..end]);
            let key = qualify(self.db.as_deref(), &name);
            self.tables.entry(key.clone()).or_insert(0);
            self.copy = Some((key, 0));
        } else if let Some(db) = line.strip_prefix(b"\\connect ") {
            let db = String::from_utf8_lossy(db);
            let db = db.split_whitespace().last().unwrap_or("").trim_matches('"');
            self.db = Some(db.to_string());
        }
    }

    /// The fingerprint so far (call after the last chunk).
    pub fn finish(mut self) -> Fingerprint {
        if !self.head.is_empty() || self.insert.is_some() {
            self.end_line();
        }
        self.flush_insert();
        self.flush_copy();
        Fingerprint {
            engine: self.engine.as_str().to_string(),
            rows: self.tables.values().sum(),
            tables: self.tables,
        }
    }
}

impl Tuples {
    /// Count the tuples starting in `data`: a `(` at depth 0 outside a quoted string.
    /// Jumps with `memchr` to the next byte that can change the state.
    fn scan(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() && !self.done {
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    i += 1;
                    continue;
                }
                let Some(j) = memchr2(b'\\', b'\'', &data[i..]) else {
                    return;
                };
                i += j;
                if data[i] == b'\\' {
                    self.esc = true;
                } else {
                    self.in_str = false;
                }
                i += 1;
                continue;
            }
            if self.depth != 0 {
                // `;` only matters at depth 0: skip to the next quote or parenthesis.
                let Some(j) = memchr3(b'\'', b'(', b')', &data[i..]) else {
                    return;
                };
                i += j;
            }
            match data[i] {
                b'\'' => self.in_str = true,
                b'(' => {
                    if self.depth == 0 {
                        self.rows += 1;
                    }
                    self.depth += 1;
                }
                b')' => self.depth -= 1,
                b';' if self.depth == 0 => self.done = true,
                _ => {}
            }
            i += 1;
        }
    }
}

/// MariaDB: "INSERT INTO `t` VALUES" within the head → the table name and the offset
/// just after `VALUES` (mariadb-dump 10.11 puts each tuple on its own line; older ones
/// one long line).
fn insert_start(head: &[u8]) -> Option<(String, usize)> {
    const P: &[u8] = b"INSERT INTO `";
    const V: &[u8] = b"` VALUES";
    if !head.starts_with(P) {
        return None;
    }
    let end = find(&head[P.len()..], V)?;
    let table = String::from_utf8_lossy(&head[P.len()..P.len() + end]).into_owned();
    Some((table, P.len() + end + V.len()))
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
    memchr::memmem::find(hay, needle)
}

/// The common SQLite case without allocating: an unquoted ASCII name, ended by
/// whitespace or `(` (what [`sqlite_name`] returns for it); `None` for anything else.
fn plain_sqlite_name(rest: &[u8]) -> Option<&str> {
    if rest.first() == Some(&b'"') {
        return None;
    }
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'\t'..=b'\r' | b' ' | b'(') || !b.is_ascii())
        .unwrap_or(rest.len());
    if rest.get(end).is_some_and(|b| !b.is_ascii()) {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
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
