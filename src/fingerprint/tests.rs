//! Fingerprint tests: table cases per engine, and the fast counter against the oracle.
use super::*;

/// Feed `text` split at every possible point, and in 1-byte pieces, and check that
/// the counts never depend on where the chunks end.
fn count_everywhere(engine: JobKind, text: &str) -> BTreeMap<String, u64> {
    let whole = {
        let mut c = Counter::new(engine);
        c.feed(text.as_bytes());
        c.finish().tables
    };
    for cut in 0..=text.len() {
        let mut c = Counter::new(engine);
        c.feed(&text.as_bytes()[..cut]);
        c.feed(&text.as_bytes()[cut..]);
        assert_eq!(c.finish().tables, whole, "split at {cut}");
    }
    let mut c = Counter::new(engine);
    for b in text.as_bytes() {
        c.feed(std::slice::from_ref(b));
    }
    assert_eq!(c.finish().tables, whole, "byte by byte");
    whole
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn postgres_copy_blocks() {
    let cases: &[(&str, &[(&str, u64)])] = &[
        (
            "\\connect app\nCOPY public.items (id, name) FROM stdin;\n1\ta\n2\tb\\nc\n\\.\nCOPY public.empty (id) FROM stdin;\n\\.\n",
            &[("app.public.items", 2), ("app.public.empty", 0)],
        ),
        (
            "COPY t FROM stdin;\n1\n\\.\n\\connect other\nCOPY public.t (x) FROM stdin;\n1\n2\n3\n\\.\n",
            &[("t", 1), ("other.public.t", 3)],
        ),
        ("-- COPY x FROM stdin; in a comment\nSELECT 1;\n", &[]),
        (
            "COPY public.crlf (a) FROM stdin;\r\n1\r\n\\.\r\n",
            &[("public.crlf", 1)],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            count_everywhere(JobKind::Postgres, text),
            map(want),
            "{text}"
        );
    }
}

#[test]
fn mariadb_extended_inserts() {
    let cases: &[(&str, &[(&str, u64)])] = &[
        (
            "USE `app`;\nCREATE TABLE `items` (\n  `id` int\n);\nINSERT INTO `items` VALUES (1,'a'),(2,'b (x)'),(3,'it''s'),(4,'back\\\\'),(5,'q\\')(');\n",
            &[("app.items", 5)],
        ),
        (
            "USE `a`;\nCREATE TABLE `e` (x int);\nUSE `b`;\nINSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2),(3);\n",
            &[("a.e", 0), ("b.t", 3)],
        ),
        ("INSERT INTO `p` VALUES (POINT(1,2)),(NULL);\n", &[("p", 2)]),
        (
            "USE `m`;\nINSERT INTO `t` VALUES\n(1,'a;b'),\n(2,'(\\n)');\nINSERT INTO `u` VALUES\n(3);\n/*!40000 ALTER TABLE `t` ENABLE KEYS */;\n",
            &[("m.t", 2), ("m.u", 1)],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            count_everywhere(JobKind::Mariadb, text),
            map(want),
            "{text}"
        );
    }
}

#[test]
fn sqlite_dump_lines() {
    let cases: &[(&str, &[(&str, u64)])] = &[
        (
            "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE items(id INTEGER, name TEXT);\nINSERT INTO items VALUES(1,'a');\nINSERT INTO items VALUES(2,replace('x\\ny','\\n',char(10)));\nCREATE TABLE IF NOT EXISTS \"my \"\"t\"(x);\nCOMMIT;\n",
            &[("items", 2), ("my \"t", 0)],
        ),
        (
            "INSERT INTO \"a b\" VALUES(1);\nINSERT INTO \"a b\" VALUES(2);",
            &[("a b", 2)],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(count_everywhere(JobKind::Sqlite, text), map(want), "{text}");
    }
}

#[test]
fn long_lines_stay_bounded() {
    let mut c = Counter::new(JobKind::Mariadb);
    c.feed(b"INSERT INTO `big` VALUES ");
    for i in 0..10_000 {
        c.feed(format!("({i},'{}'),", "x".repeat(100)).as_bytes());
    }
    c.feed(b"(0,'');\n");
    assert!(c.head.capacity() <= 2 * HEAD);
    assert_eq!(c.finish().tables, map(&[("big", 10_001)]));
}

// ---- the fast counter against the oracle (the parser it replaced) ----

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn fast(engine: JobKind, pieces: &[&[u8]]) -> Fingerprint {
    let mut c = Counter::new(engine);
    for p in pieces {
        c.feed(p);
    }
    c.finish()
}

fn slow(engine: JobKind, pieces: &[&[u8]]) -> Fingerprint {
    let mut c = oracle::Counter::new(engine);
    for p in pieces {
        c.feed(p);
    }
    c.finish()
}

/// Compare on the whole text, every 2-way split (except deep inside a run of one
/// repeated byte: the long filler lines), byte by byte, and random chunkings.
fn agree(engine: JobKind, text: &[u8], rng: &mut Rng) {
    let want = slow(engine, &[text]);
    assert_eq!(fast(engine, &[text]), want, "whole text");
    let in_run = |cut: usize| {
        cut >= 3 && cut + 3 <= text.len() && text[cut - 3..cut + 3].iter().all(|&b| b == text[cut])
    };
    for cut in (0..=text.len()).filter(|&c| !in_run(c)) {
        let (a, b) = text.split_at(cut);
        assert_eq!(fast(engine, &[a, b]), want, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = text.chunks(1).collect();
    assert_eq!(fast(engine, &bytes), want, "byte by byte");
    for _ in 0..50 {
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let n = (1 + rng.below(64)).min(rest.len());
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(fast(engine, &pieces), want, "random chunks");
    }
}

/// Every 3-way split of a short text: two boundaries anywhere, e.g. one inside `\r\n`
/// and one inside `\.`.
fn agree_three_ways(engine: JobKind, text: &[u8]) {
    let want = slow(engine, &[text]);
    for i in 0..=text.len() {
        for j in i..=text.len() {
            let got = fast(engine, &[&text[..i], &text[i..j], &text[j..]]);
            assert_eq!(got, want, "splits at {i} and {j}");
        }
    }
}

fn postgres_dump(rng: &mut Rng) -> String {
    let rows = [
        "1\ta\n",
        "2\t\\N\n",
        "\\\\.\n",
        "\\.x\n",
        "x\\.\n",
        "\n",
        "3\tb\r\n",
        " \\.\n",
        "4\tCOPY t FROM stdin;\n",
        "5\t\\connect evil\n",
    ];
    let other = [
        "SET x = 1;\n",
        "\\connect app\n",
        "\\connect -reuse-previous=on \"dbname='b c'\"\n",
        "-- COPY x FROM stdin;\n",
        "COPY public.\"odd name\" (a, b) FROM stdin;\r\n1\r\n\\.\r\n",
        "COPY t FROM stdin; \n",
        "CREATE TABLE t (a int);\n",
    ];
    let mut s = String::new();
    for _ in 0..6 {
        s.push_str(rng.pick(&other));
        let table = rng.pick(&["public.items", "t", "s.\"Ü\""]);
        let cols = rng.pick(&[" (id, name)", ""]);
        s.push_str(&format!("COPY {table}{cols} FROM stdin;\n"));
        for _ in 0..rng.below(6) {
            s.push_str(rng.pick(&rows));
        }
        s.push_str(rng.pick(&["\\.\n", "\\.\r\n", "\\.\n\n"]));
    }
    // A line longer than the head, inside and outside a block, and an unfinished block.
    s.push_str(&format!("{}\n", "x".repeat(HEAD + 3)));
    s.push_str(&format!(
        "COPY long FROM stdin;\n{}\n1\n",
        "y".repeat(2 * HEAD)
    ));
    s.push_str(rng.pick(&["\\.", "2", "", "\\"]));
    s
}

fn mariadb_dump(rng: &mut Rng) -> String {
    let tuples = [
        "(1,'a')",
        "(2,'b (x)')",
        "(3,'it''s')",
        "(4,'back\\\\')",
        "(5,'q\\')(')",
        "(POINT(1,2),'a;b')",
        "(NULL)",
        "(6,'\\n);(')",
        "((7))",
    ];
    let mut s = String::new();
    for _ in 0..5 {
        s.push_str(rng.pick(&["USE `app`;\n", "USE `b`;\r\n", "", "-- USE `x`;\n"]));
        let table = rng.pick(&["items", "e", "dé"]);
        s.push_str(&format!("CREATE TABLE `{table}` (\n  `id` int\n);\n"));
        let sep = rng.pick(&[",", ",\n", ",\r\n"]);
        let head = rng.pick(&[" ", "\n", " \n"]);
        let n = 1 + rng.below(5);
        let body: Vec<&str> = (0..n).map(|_| rng.pick(&tuples)).collect();
        s.push_str(&format!(
            "INSERT INTO `{table}` VALUES{head}{};",
            body.join(sep)
        ));
        s.push_str(rng.pick(&["\n", " INSERT INTO `t` VALUES (9);\n", "\r\n"]));
        s.push_str("/*!40000 ALTER TABLE `t` ENABLE KEYS */;\n");
    }
    // VALUES past the head: not counted, by both.
    s.push_str(&format!("INSERT INTO `{}` VALUES (1);\n", "z".repeat(HEAD)));
    s.push_str(rng.pick(&["INSERT INTO `u` VALUES (1),(2", "INSERT INTO `u` VAL", ""]));
    s
}

fn sqlite_dump(rng: &mut Rng) -> String {
    let lines = [
        "PRAGMA foreign_keys=OFF;\n",
        "CREATE TABLE items(id INTEGER, name TEXT);\n",
        "CREATE TABLE IF NOT EXISTS \"my \"\"t\"(x);\n",
        "INSERT INTO items VALUES(1,'a');\n",
        "INSERT INTO items VALUES(2,replace('x\\ny','\\n',char(10)));\n",
        "INSERT INTO \"a b\" VALUES(1);\n",
        "INSERT INTO t\u{a0}x VALUES(1);\n",
        "INSERT INTO t\u{b}x VALUES(1);\r\n",
        "INSERT INTO é(x) VALUES(1);\n",
        "INSERT INTO items(id) VALUES(3);\n",
        "INSERT INTO \n",
        "\n",
    ];
    let mut s = String::new();
    for _ in 0..12 {
        s.push_str(rng.pick(&lines));
    }
    s.push_str(&format!(
        "INSERT INTO {} VALUES(1);\n",
        "w".repeat(HEAD + 1)
    ));
    s.push_str(rng.pick(&["INSERT INTO items VALUES(9);", "COMMIT;"]));
    s
}

#[test]
fn fast_counter_matches_the_oracle_on_generated_dumps() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..5 {
        agree(
            JobKind::Postgres,
            postgres_dump(&mut rng).as_bytes(),
            &mut rng,
        );
        agree(
            JobKind::Mariadb,
            mariadb_dump(&mut rng).as_bytes(),
            &mut rng,
        );
        agree(JobKind::Sqlite, sqlite_dump(&mut rng).as_bytes(), &mut rng);
    }
}

#[test]
fn fast_counter_matches_the_oracle_split_three_ways() {
    let cases: &[(JobKind, &str)] = &[
        (
            JobKind::Postgres,
            "\\connect app\nCOPY t (a) FROM stdin;\r\n1\r\n\\.x\n\\\\.\n\n\\.\r\nCOPY u FROM stdin;\n2\n\\.\nSET x;\n3",
        ),
        (
            JobKind::Mariadb,
            "USE `m`;\nINSERT INTO `t` VALUES\n(1,'a;b'),\r\n(2,'(\\')'),((3));x\nUSE `n`;\nINSERT INTO `u` VALUES (4);\n",
        ),
        (
            JobKind::Sqlite,
            "CREATE TABLE \"a\"\"b\"(x);\nINSERT INTO \"a\"\"b\" VALUES(1);\r\nINSERT INTO t VALUES(2);\nINSERT INTO t(x) VALUES(3);",
        ),
    ];
    for (engine, text) in cases {
        agree_three_ways(*engine, text.as_bytes());
    }
}

#[test]
fn copy_rows_are_counted_without_a_map_lookup_per_row() {
    // A large block fed in big chunks, as the dump pump does: same count as the oracle.
    let mut text = String::from("\\connect bench\nCOPY public.t (id, a) FROM stdin;\n");
    for i in 0..200_000 {
        text.push_str(&format!("{i}\t{}\n", i * 7));
    }
    text.push_str("\\.\n");
    let pieces: Vec<&[u8]> = text.as_bytes().chunks(1 << 16).collect();
    let got = fast(JobKind::Postgres, &pieces);
    assert_eq!(got, slow(JobKind::Postgres, &pieces));
    assert_eq!(got.tables, map(&[("bench.public.t", 200_000)]));
}
