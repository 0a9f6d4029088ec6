//! Engine tests: commands, credentials and end markers on real dump output. The samples
//! in `testdata/` are real output of the test images (`omk-test/postgres:15`
//! pg_dump/pg_dumpall, `omk-test/mariadb:10.11` mariadb-dump, `omk-test/sqlite:3`
//! sqlite3 .dump); the `_cut` ones are the same tools' output cut by `head -c`, as a
//! dump killed mid-stream leaves it.

use super::*;
use crate::config::JobOrigin;

const PG_DUMP: &[u8] = include_bytes!("testdata/pg_dump.sql");
const PG_DUMPALL: &[u8] = include_bytes!("testdata/pg_dumpall.sql");
const PG_DUMPALL_CUT: &[u8] = include_bytes!("testdata/pg_dumpall_cut.sql");
const MARIADB: &[u8] = include_bytes!("testdata/mariadb_dump.sql");
const MARIADB_CUT: &[u8] = include_bytes!("testdata/mariadb_dump_cut.sql");
const SQLITE: &[u8] = include_bytes!("testdata/sqlite_dump.sql");
const SQLITE_CUT: &[u8] = include_bytes!("testdata/sqlite_dump_cut.sql");

const SECRET: &str = "s3cr3t-value";

/// The whole samples, with the job shape that makes each (`database` or none).
const FULL: [(JobKind, Option<&str>, &[u8]); 4] = [
    (JobKind::Postgres, Some("app"), PG_DUMP),
    (JobKind::Postgres, None, PG_DUMPALL),
    (JobKind::Mariadb, Some("app"), MARIADB),
    (JobKind::Sqlite, Some("/data/app.db"), SQLITE),
];

fn job(kind: JobKind, database: Option<&str>, password_file: Option<std::path::PathBuf>) -> Job {
    Job {
        name: "db".into(),
        kind,
        engine: crate::config::LOCAL_ENGINE.to_string(),
        paths: Vec::new(),
        exclude: Vec::new(),
        quiesce: None,
        container: Some("db".into()),
        user: None,
        password_file,
        database: database.map(str::to_string),
        retention: None,
        notify: None,
        origin: JobOrigin::Config { line: 1 },
        probes: Vec::new(),
        shrink_limit: crate::config::DEFAULT_SHRINK_LIMIT,
    }
}

fn engine(kind: JobKind) -> &'static dyn Engine {
    for_kind(kind).unwrap()
}

/// Feed `bytes` in chunks of `n` through [`keep_tail`], as the delivery does.
fn streamed_tail(bytes: &[u8], n: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    for chunk in bytes.chunks(n) {
        keep_tail(&mut tail, chunk);
    }
    tail
}

/// Every spec an engine builds for `job` on `target`.
fn all_specs(e: &dyn Engine, j: &Job, target: &Target) -> Vec<ExecSpec> {
    let probe = Probe {
        sql: "SELECT 1".into(),
        expect: "1".into(),
        database: None,
    };
    vec![
        e.dump(j, target.env.clone()).unwrap(),
        e.load(j, "/tmp/x.sql", target),
        e.count_rows(j, target),
        e.probe(j, &probe, target),
    ]
}

#[test]
fn files_jobs_have_no_engine() {
    assert!(for_kind(JobKind::Files).is_none());
    let err = for_job(&job(JobKind::Files, None, None)).err().unwrap();
    assert!(err.to_string().contains("db: a files job"), "{err}");
    for kind in [JobKind::Postgres, JobKind::Mariadb, JobKind::Sqlite] {
        assert_eq!(engine(kind).kind(), kind);
    }
}

#[test]
fn secrets_travel_in_env_never_argv() {
    let dir = tempfile::tempdir().unwrap();
    let pf = dir.path().join("pw");
    std::fs::write(&pf, format!("{SECRET}\nsecond line ignored\n")).unwrap();
    for (kind, var) in [
        (JobKind::Postgres, Some("PGPASSWORD")),
        (JobKind::Mariadb, Some("MYSQL_PWD")),
        (JobKind::Sqlite, None),
    ] {
        let e = engine(kind);
        let j = job(kind, Some("/data/app.db"), Some(pf.clone()));
        let env = client_env(e, &j).unwrap();
        match var {
            Some(v) => assert_eq!(env, vec![format!("{v}={SECRET}")], "{kind}"),
            None => assert!(env.is_empty(), "{kind}: no password variable"),
        }
        let target = e.live_target(&j, env);
        assert!(
            !format!("{target:?}").contains(SECRET),
            "{kind}: Debug redacts"
        );
        for spec in all_specs(e, &j, &target) {
            assert!(
                !spec.cmd.join(" ").contains(SECRET),
                "{kind}: {:?}",
                spec.cmd
            );
            assert!(
                !format!("{spec:?}").contains(SECRET),
                "{kind}: Debug redacts"
            );
            assert_eq!(spec.env, target.env, "{kind}: credentials in Env");
        }
    }
    // A password file that cannot be read names the job and the file, not its content.
    let j = job(JobKind::Postgres, None, Some(dir.path().join("missing")));
    let err = client_env(engine(JobKind::Postgres), &j).unwrap_err();
    assert!(format!("{err:#}").contains("db: password_file"), "{err:#}");
}

#[test]
fn mariadb_without_a_password_file_reads_the_containers_variable_by_name() {
    let e = engine(JobKind::Mariadb);
    let j = job(JobKind::Mariadb, None, None);
    assert!(client_env(e, &j).unwrap().is_empty());
    let dump = e.dump(&j, Vec::new()).unwrap();
    assert!(dump.env.is_empty());
    let script = &dump.cmd[2];
    assert!(
        script.contains("${MYSQL_PWD:-${MARIADB_ROOT_PASSWORD:-$MYSQL_ROOT_PASSWORD}}"),
        "{script}"
    );
    // The same fallback for every client command (one place, not three).
    let t = e.scratch_target(&j);
    for spec in all_specs(e, &j, &t) {
        assert!(spec.cmd[2].contains(CLIENT_PREFIX), "{:?}", spec.cmd);
    }
}

/// The start of `mariadb::CLIENT`, as the commands carry it.
const CLIENT_PREFIX: &str = "p=\"${MYSQL_PWD:-";

#[test]
fn dump_commands() {
    let pg = engine(JobKind::Postgres);
    let one = pg
        .dump(&job(JobKind::Postgres, Some("app"), None), Vec::new())
        .unwrap();
    assert_eq!(one.cmd[..2], ["sh".to_string(), "-c".into()]);
    assert!(one.cmd[2].starts_with("printf 'omk-pid=%s\\n' $$ >&2; "));
    assert_eq!(
        one.cmd[4..],
        [
            "pg_dump",
            "--username",
            "postgres",
            "--no-password",
            "--dbname",
            "app"
        ]
    );
    let all = pg
        .dump(&job(JobKind::Postgres, None, None), Vec::new())
        .unwrap();
    assert_eq!(
        all.cmd[4..],
        ["pg_dumpall", "--username", "postgres", "--no-password"]
    );
    let m = engine(JobKind::Mariadb);
    let one = m
        .dump(&job(JobKind::Mariadb, Some("app"), None), Vec::new())
        .unwrap();
    assert!(one.cmd[2].contains("exec mariadb-dump \"$@\""));
    assert!(
        one.cmd
            .ends_with(&["--databases".to_string(), "app".into()])
    );
    assert!(one.cmd.contains(&"--single-transaction".to_string()));
    assert!(one.cmd.contains(&"--user=root".to_string()));
    let all = m
        .dump(&job(JobKind::Mariadb, None, None), Vec::new())
        .unwrap();
    assert_eq!(all.cmd.last().unwrap(), "--all-databases");
    let s = engine(JobKind::Sqlite);
    let mut lite = job(JobKind::Sqlite, Some("/data/app.db"), None);
    lite.user = Some("1000".into());
    let spec = s.dump(&lite, Vec::new()).unwrap();
    assert!(spec.cmd[2].contains("exec sqlite3 -readonly \"$1\" .dump"));
    assert_eq!(spec.cmd.last().unwrap(), "/data/app.db");
    assert_eq!(spec.user.as_deref(), Some("1000"), "runs as the job's user");
    let err = s
        .dump(&job(JobKind::Sqlite, None, None), Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("database = "), "{err}");
}

#[test]
fn end_markers_on_real_dumps() {
    for (kind, db, sample) in FULL {
        let (e, j) = (engine(kind), job(kind, db, None));
        for chunk in [1, 7, 100, 4096] {
            let tail = streamed_tail(sample, chunk);
            assert!(tail.len() <= TAIL);
            assert!(e.ends_complete(&j, &tail), "{kind} {db:?} by {chunk}");
        }
    }
}

#[test]
fn end_markers_on_cut_dumps() {
    let cut: [(JobKind, Option<&str>, &[u8]); 3] = [
        (JobKind::Postgres, None, PG_DUMPALL_CUT),
        (JobKind::Mariadb, Some("app"), MARIADB_CUT),
        (JobKind::Sqlite, Some("/data/app.db"), SQLITE_CUT),
    ];
    for (kind, db, sample) in cut {
        let (e, j) = (engine(kind), job(kind, db, None));
        assert!(!e.ends_complete(&j, &streamed_tail(sample, 64)), "{kind}");
    }
    // Every cut at a line end before the tool's last line: not complete. For
    // pg_dumpall this includes the cuts between two databases, which end with
    // pg_dump's per-database marker.
    for (kind, db, sample) in FULL {
        let (e, j) = (engine(kind), job(kind, db, None));
        let text = std::str::from_utf8(sample).unwrap();
        let marker_at = text.rfind(e.end_marker(&j)).unwrap();
        let mut cuts = 0;
        for (i, _) in text.match_indices('\n').filter(|(i, _)| *i < marker_at) {
            let prefix = &sample[..=i];
            assert!(!e.ends_complete(&j, prefix), "{kind} cut after byte {i}");
            cuts += 1;
        }
        assert!(cuts > 5, "{kind}: the sample has lines");
    }
    let text = std::str::from_utf8(PG_DUMPALL).unwrap();
    assert!(
        text.matches("-- PostgreSQL database dump complete").count() >= 2,
        "the cluster sample holds per-database markers"
    );
}

#[test]
fn scratch_profiles_keep_the_password_out_of_argv() {
    for kind in [JobKind::Postgres, JobKind::Mariadb, JobKind::Sqlite] {
        let e = engine(kind);
        for db in [None, Some("app")] {
            let db = if kind == JobKind::Sqlite {
                Some("/a.db")
            } else {
                db
            };
            let j = job(kind, db, None);
            let p = e.scratch(&j, SECRET);
            assert!(!format!("{p:?}").contains(SECRET), "{kind}: Debug redacts");
            assert!(!p.ready.cmd.join(" ").contains(SECRET), "{kind}");
            assert!(p.ready.env.is_empty());
            let t = e.scratch_target(&j);
            assert!(!t.live && t.env.is_empty());
            for spec in all_specs(e, &j, &t) {
                assert!(!spec.cmd.join(" ").contains(SECRET), "{kind}");
            }
            if kind != JobKind::Sqlite {
                assert!(p.env.iter().any(|v| v.ends_with(&format!("={SECRET}"))));
            }
        }
    }
    // A cluster restore runs as a superuser no source cluster has; a single database
    // as the dumping role (its objects' owner).
    let pg = engine(JobKind::Postgres);
    let all = job(JobKind::Postgres, None, None);
    assert_eq!(pg.scratch_target(&all).db_user, "omk_restore");
    assert!(
        pg.scratch(&all, "x")
            .env
            .contains(&"POSTGRES_USER=omk_restore".into())
    );
    let one = job(JobKind::Postgres, Some("app"), None);
    assert_eq!(pg.scratch_target(&one).db_user, "postgres");
}

#[test]
fn loads_are_fatal_on_error() {
    let pg = engine(JobKind::Postgres);
    let one = job(JobKind::Postgres, Some("app"), None);
    let spec = pg.load(&one, "/tmp/d.sql", &pg.scratch_target(&one));
    assert!(spec.cmd.contains(&"ON_ERROR_STOP=1".to_string()));
    assert_eq!(spec.cmd.last().unwrap(), "/tmp/d.sql");
    let lite = engine(JobKind::Sqlite);
    let j = job(JobKind::Sqlite, Some("/data/app.db"), None);
    let live = lite.live_target(&j, Vec::new());
    assert_eq!(live.restored_file.as_deref(), Some("/data/app.db.restored"));
    let spec = lite.load(&j, "/tmp/d.sql", &live);
    assert!(spec.cmd[2].contains("sqlite3 -bail"));
    assert_eq!(spec.cmd[4..], ["/data/app.db.restored", "/tmp/d.sql"]);
}

/// The live cluster load rewrites `CREATE ROLE x;` with real `sed` on the real
/// pg_dumpall sample: only the existing-role error is tolerated.
#[test]
fn live_cluster_load_tolerates_only_existing_roles() {
    let pg = engine(JobKind::Postgres);
    let all = job(JobKind::Postgres, None, None);
    let target = pg.live_target(&all, Vec::new());
    let spec = pg.load(&all, "/tmp/d.sql", &target);
    assert!(spec.cmd[2].contains("ON_ERROR_STOP=1"));
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("d.sql");
    std::fs::write(&dump, PG_DUMPALL).unwrap();
    let out = std::process::Command::new("sed")
        .arg("-e")
        .arg(&spec.cmd[5])
        .arg(&dump)
        .output()
        .expect("sed");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("\nCREATE ROLE postgres;\n"), "rewritten");
    assert!(text.contains(
        "DO $omk$ BEGIN CREATE ROLE postgres; EXCEPTION WHEN duplicate_object THEN NULL; END $omk$;"
    ));
    // Everything else is untouched.
    assert_eq!(
        text.lines().count(),
        PG_DUMPALL.split(|b| *b == b'\n').count() - 1
    );
}

#[test]
fn row_counts_parse_and_compare() {
    let pg = engine(JobKind::Postgres);
    let got = pg.parse_counts("public.items|20\npublic.\"Odd Name\"|2\nnoise\n");
    assert_eq!(got.get("public.items"), Some(&20));
    assert_eq!(got.get("public.\"Odd Name\""), Some(&2));
    assert_eq!(got.len(), 2);
    let m = engine(JobKind::Mariadb);
    assert_eq!(m.parse_counts("app.a\t3\n").get("app.a"), Some(&3));
    let fp = Fingerprint {
        engine: "mariadb".into(),
        tables: [
            ("app.a".to_string(), 3),
            ("app.b".to_string(), 5),
            ("mysql.user".to_string(), 2),
        ]
        .into_iter()
        .collect(),
        rows: 10,
    };
    let mut got: BTreeMap<String, u64> = [("app.a".to_string(), 3), ("app.b".to_string(), 5)]
        .into_iter()
        .collect();
    let c = compare(m, &fp, &got);
    assert!(c.passed, "{}", c.detail);
    assert!(c.detail.starts_with("2 tables, 8 rows"), "{}", c.detail);
    got.insert("app.b".into(), 2);
    got.insert("app.c".into(), 1);
    let c = compare(m, &fp, &got);
    assert!(!c.passed);
    assert!(
        c.detail.contains("app.b: 2 rows restored, 5 dumped"),
        "{}",
        c.detail
    );
    assert!(
        c.detail.contains("app.c: 1 rows restored but not in"),
        "{}",
        c.detail
    );
    let lite = engine(JobKind::Sqlite);
    assert!(lite.system_table("sqlite_sequence") && !lite.system_table("items"));
    assert!(m.system_table("performance_schema.x") && !m.system_table("app.x"));
    assert!(
        !pg.system_table("pg_catalog.x"),
        "postgres counts skip them in SQL"
    );
}

#[test]
fn cluster_counts_visit_every_database_with_its_name() {
    let pg = engine(JobKind::Postgres);
    let all = job(JobKind::Postgres, None, None);
    let spec = pg.count_rows(&all, &pg.scratch_target(&all));
    assert_eq!(spec.cmd[4], "omk_restore");
    assert!(spec.cmd[5].contains("FROM pg_database"));
    assert!(spec.cmd[6].starts_with("SELECT current_database() || '.' || quote_ident"));
    let one = job(JobKind::Postgres, Some("app"), None);
    let spec = pg.count_rows(&one, &pg.scratch_target(&one));
    assert_eq!(spec.cmd[0], "psql");
    assert!(spec.cmd.contains(&"app".to_string()));
}
