//! The catalog's migrations. Append-only: never edit a shipped migration, add one.
//! `PRAGMA user_version` counts the migrations applied.

pub const MIGRATIONS: &[&str] = &[
    // 1: runs, steps, snapshots, dumps, the quiesce journal.
    r#"
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,        -- also the snapshots' omk:run= tag
        command     TEXT NOT NULL,           -- backup, forget, check, restore-test, ...
        trigger     TEXT NOT NULL,           -- cli, daemon, catch-up, rebuild
        status      TEXT NOT NULL,           -- running, success, failed, interrupted
        pid         INTEGER,
        started_at  INTEGER NOT NULL,        -- unix milliseconds, UTC
        finished_at INTEGER,
        error       TEXT
    );
    CREATE INDEX runs_started ON runs(started_at);
    CREATE INDEX runs_running ON runs(status) WHERE status = 'running';

    CREATE TABLE steps (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL REFERENCES runs(id),
        job         TEXT,
        kind        TEXT NOT NULL,           -- backup, retention, check, restore, ...
        status      TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        detail      TEXT,                    -- JSON
        error       TEXT
    );
    CREATE INDEX steps_job ON steps(job, kind, started_at);
    CREATE INDEX steps_run ON steps(run_id);

    CREATE TABLE snapshots (
        snapshot_id  TEXT PRIMARY KEY,       -- restic's full id
        job          TEXT NOT NULL,
        run_id       TEXT,
        time         INTEGER NOT NULL,
        bytes        INTEGER,
        files        INTEGER,
        data_added   INTEGER,
        duration_ms  INTEGER,
        state        TEXT NOT NULL,          -- good, unverified, forgotten
        note         TEXT,
        forgotten_at INTEGER
    );
    CREATE INDEX snapshots_job_time ON snapshots(job, time);
    CREATE INDEX snapshots_run ON snapshots(run_id);

    CREATE TABLE dumps (
        snapshot_id TEXT PRIMARY KEY REFERENCES snapshots(snapshot_id),
        job         TEXT NOT NULL,
        engine      TEXT NOT NULL,
        filename    TEXT NOT NULL,           -- path inside the snapshot
        sha256      TEXT NOT NULL,
        bytes       INTEGER NOT NULL,
        fingerprint TEXT                     -- JSON: what the dump holds
    );

    CREATE TABLE quiesce_journal (
        id             INTEGER PRIMARY KEY,
        run_id         TEXT NOT NULL,
        job            TEXT NOT NULL,
        container      TEXT NOT NULL,        -- the name configured
        container_id   TEXT,
        mode           TEXT NOT NULL,        -- pause, stop
        state_before   TEXT,                 -- running, paused, exited, ...
        state          TEXT NOT NULL,        -- pending, quiesced, resumed, untouched, failed
        created_at     INTEGER NOT NULL,
        resumed_at     INTEGER,
        window_ms      INTEGER,
        note           TEXT
    );
    CREATE INDEX quiesce_open ON quiesce_journal(state) WHERE state IN ('pending', 'quiesced');
    "#,
    // 2: snapshots still in the repository are few (retention) among many forgotten:
    // partial indexes keep `snapshots` and `status` fast with 100k runs.
    r#"
    CREATE INDEX snapshots_live ON snapshots(time) WHERE state != 'forgotten';
    CREATE INDEX snapshots_live_job ON snapshots(job, time) WHERE state != 'forgotten';
    "#,
    // 2: restore tests, encryption evidence, check coverage, issued reports.
    r#"
    CREATE TABLE restore_tests (
        id             INTEGER PRIMARY KEY,
        run_id         TEXT NOT NULL,
        job            TEXT NOT NULL,
        kind           TEXT NOT NULL,        -- files, postgres, ...
        snapshot_id    TEXT,
        passed         INTEGER NOT NULL,
        started_at     INTEGER NOT NULL,
        finished_at    INTEGER NOT NULL,
        rto_ms         INTEGER,              -- start to verified restore; NULL when not verified
        rpo_seconds    INTEGER,              -- age of the newest good snapshot at the start
        files_listed   INTEGER,
        files_hashed   INTEGER,
        bytes_hashed   INTEGER,
        not_compared   INTEGER,
        checks         TEXT NOT NULL         -- JSON [{name, passed, detail}]
    );
    CREATE INDEX restore_tests_job ON restore_tests(job, started_at);

    CREATE TABLE encryption_checks (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL,
        repository  TEXT NOT NULL,
        at          INTEGER NOT NULL,
        passed      INTEGER NOT NULL,
        checks      TEXT NOT NULL            -- JSON [{name, passed, detail, skipped}]
    );
    CREATE INDEX encryption_checks_at ON encryption_checks(repository, at);

    CREATE TABLE check_runs (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL,
        repository  TEXT NOT NULL,
        subset      TEXT,                    -- as passed to restic, NULL = structure only
        k           INTEGER,                 -- rotating subsets: K of N
        n           INTEGER,
        rotating    INTEGER NOT NULL,        -- 1 when omk-backup chose K/N
        at          INTEGER NOT NULL,
        passed      INTEGER NOT NULL,
        error       TEXT
    );
    CREATE INDEX check_runs_repo ON check_runs(repository, at);

    CREATE TABLE reports (
        id              INTEGER PRIMARY KEY,
        month           TEXT NOT NULL,       -- YYYY-MM
        format          TEXT NOT NULL,       -- md, html, json
        sha256          TEXT NOT NULL,       -- of the report's content
        previous_sha256 TEXT,                -- the previous month's report, same format
        issued_at       INTEGER NOT NULL
    );
    CREATE INDEX reports_month ON reports(month, format, issued_at);
    "#,
    // 4: a job's newest steps of every kind (the dashboard's job page, `/api/runs?job=`):
    // steps_job leads with kind, so without this a page sorted all of a job's steps.
    r#"
    CREATE INDEX steps_job_started ON steps(job, started_at);
    "#,
    // 5: copies (3-2-1): which snapshot of which copy repository ([copies.NAME], by
    // name: a URL may hold credentials) holds a primary snapshot; restore tests say
    // which repository they restored from (NULL: the primary).
    r#"
    CREATE TABLE copies (
        snapshot_id  TEXT NOT NULL,          -- the primary's snapshot (snapshots.snapshot_id)
        repository   TEXT NOT NULL,          -- the copy's name
        copy_id      TEXT NOT NULL,          -- restic's full id of the snapshot in the copy
        run_id       TEXT,                   -- the copy run that recorded it
        copied_at    INTEGER NOT NULL,
        forgotten_at INTEGER,                -- removed from the copy (its retention)
        PRIMARY KEY (snapshot_id, repository)
    );
    CREATE INDEX copies_live ON copies(repository, copy_id) WHERE forgotten_at IS NULL;
    ALTER TABLE restore_tests ADD COLUMN repository TEXT;
    CREATE INDEX restore_tests_repo ON restore_tests(job, repository, started_at);
    "#,
    // 6: the Docker engine a quiesced container runs on, so recovery resumes it there
    // (`[engines.NAME]`); rows from before engines are the local engine's.
    r#"
    ALTER TABLE quiesce_journal ADD COLUMN engine TEXT NOT NULL DEFAULT 'local';
    "#,
];
