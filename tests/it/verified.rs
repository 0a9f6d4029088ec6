//! Only verified snapshots are handed out: a cut dump planted with our tags by plain
//! restic is recorded `unverified` by `catalog rebuild` (the complete one beside it is
//! streamed once and recorded good, with its digest), files snapshots stay
//! `unverified`, and `restore latest` never returns the planted dump; what nobody
//! vouched for needs `--allow-unverified`, and the error names the snapshots and the flag.

use crate::util::*;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::process::{Command, Stdio};

/// A whole `sqlite3 .dump` text (ends with `COMMIT;`, the engine's end marker).
fn sqlite_dump(rows: usize) -> String {
    let mut t = String::from(
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT);\n",
    );
    for i in 0..rows {
        t.push_str(&format!("INSERT INTO items VALUES({i},'row {i}');\n"));
    }
    t.push_str("COMMIT;\n");
    t
}

/// `restic backup --stdin` with our tags, as someone (or a broken run) could plant it.
fn plant(env: &Env, job: &str, run: &str, text: &[u8]) -> String {
    let mut child = Command::new(&env.restic)
        .args(["backup", "--json", "--stdin", "--stdin-filename"])
        .arg(format!("{job}.sql"))
        .args([
            "--tag",
            &format!("omk:job={job}"),
            "--tag",
            &format!("omk:run={run}"),
        ])
        .env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD_FILE", env.path("password"))
        .env("RESTIC_CACHE_DIR", env.path(".cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run restic");
    child.stdin.take().unwrap().write_all(text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .expect("restic's summary line");
    // restic 0.14's summary names the snapshot by its short id: resolve it.
    let id = summary["snapshot_id"].as_str().unwrap();
    let all = env.restic_cmd(&["snapshots", "--json"]).ok().json();
    all.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .find(|full| full.starts_with(id))
        .expect("the planted snapshot")
}

fn lose_catalog(env: &Env) {
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(env.path(f));
    }
}

fn state_of(snaps: &serde_json::Value, id: &str) -> String {
    snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["snapshot_id"] == id)
        .map(|s| s["state"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("snapshot {id} not listed: {snaps}"))
}

fn config(env: &Env) {
    env.write_config(
        "[docker]\ndiscover = false\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n\
         [jobs.lite]\nkind = \"sqlite\"\ncontainer = \"omk-it-verified-nothing\"\ndatabase = \"/data/app.db\"\n",
    );
}

#[test]
fn rebuild_vouches_for_complete_dumps_only_and_restore_latest_skips_the_rest() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        config(&env);
        env.run(&["backup", "--init", "files1"]).ok();
        let good_text = sqlite_dump(2000);
        let good = plant(&env, "lite", "20260101T000000Z-0001", good_text.as_bytes());
        // Newer than the good one, and cut mid-statement: what must never be "latest".
        let cut_text = &good_text.as_bytes()[..good_text.len() / 2];
        let cut = plant(&env, "lite", "20260101T000000Z-0002", cut_text);
        let files = env
            .restic_cmd(&["snapshots", "--json", "--tag", "omk:job=files1"])
            .ok()
            .json();
        let files = files[0]["id"].as_str().unwrap().to_string();

        lose_catalog(&env);
        let r = env.run(&["--json", "catalog", "rebuild"]).ok();
        let rep = r.json();
        assert_eq!(rep["added"], 3, "restic {ver}: {rep}");
        assert_eq!(rep["verified"], 1, "restic {ver}: {rep}");
        assert_eq!(rep["unverified"], 2, "restic {ver}: {rep}");
        let listed = rep["unverified_snapshots"].to_string();
        assert!(
            listed.contains(&cut) && listed.contains("cut"),
            "restic {ver}: {rep}"
        );
        // The text output names each unverified snapshot and says what it means.
        lose_catalog(&env);
        let text = env.run(&["catalog", "rebuild"]).ok().stdout;
        assert!(
            text.contains(&cut[..8])
                && text.contains(&files[..8])
                && text.contains("--allow-unverified"),
            "restic {ver}: {text}"
        );
        let snaps = env.run(&["--json", "snapshots"]).ok().json();
        assert_eq!(state_of(&snaps, &good), "good", "restic {ver}: {snaps}");
        assert_eq!(
            state_of(&snaps, &cut),
            "unverified",
            "restic {ver}: {snaps}"
        );
        assert_eq!(
            state_of(&snaps, &files),
            "unverified",
            "restic {ver}: {snaps}"
        );
        // The digest of the vouched-for dump, as streamed from the repository.
        let want = format!(
            "{}|{}",
            good_text.len(),
            hex::encode(Sha256::digest(good_text.as_bytes()))
        );
        assert_eq!(
            env.sql(&format!(
                "SELECT bytes || '|' || sha256 FROM dumps WHERE snapshot_id = '{good}'"
            )),
            want,
            "restic {ver}"
        );
        assert_eq!(
            env.sql(&format!(
                "SELECT count(*) FROM dumps WHERE snapshot_id = '{cut}'"
            )),
            "0"
        );

        // latest is the complete dump, never the newer cut one.
        let out = env
            .run(&[
                "--json", "restore", "latest", "--job", "lite", "--target", "r1",
            ])
            .ok();
        assert_eq!(
            out.json()["snapshot_id"],
            good.as_str(),
            "restic {ver}: {}",
            out.stdout
        );
        assert_eq!(
            std::fs::read_to_string(env.path("r1/lite.sql")).unwrap(),
            good_text
        );

        // Only unverified ones: a clear error naming them and the flag.
        let r = env
            .run(&["restore", "latest", "--job", "files1", "--target", "r2"])
            .code(2);
        assert!(
            r.stderr.contains("--allow-unverified") && r.stderr.contains(&files[..8]),
            "restic {ver}: {}",
            r.stderr
        );
        assert!(
            !env.path("r2").exists() || std::fs::read_dir(env.path("r2")).unwrap().next().is_none()
        );
        let r = env.run(&["restore", &cut[..8], "--target", "r3"]).code(2);
        assert!(
            r.stderr.contains("--allow-unverified") && r.stderr.contains("unverified"),
            "restic {ver}: {}",
            r.stderr
        );
        let out = env
            .run(&[
                "--json",
                "restore",
                "latest",
                "--job",
                "files1",
                "--allow-unverified",
                "--target",
                "r4",
            ])
            .ok();
        assert_eq!(
            out.json()["snapshot_id"],
            files.as_str(),
            "restic {ver}: {}",
            out.stdout
        );
    }
}

#[test]
fn without_a_catalog_the_repository_fallback_needs_the_flag() {
    let (ver, restic) = restics().remove(1);
    let env = Env::new(&restic);
    config(&env);
    env.run(&["backup", "--init", "files1"]).ok();
    let text = sqlite_dump(50);
    let older = plant(&env, "lite", "20260101T000000Z-0001", text.as_bytes());
    let newer = plant(
        &env,
        "lite",
        "20260101T000000Z-0002",
        &text.as_bytes()[..text.len() - 9],
    );
    lose_catalog(&env);
    let r = env
        .run(&["restore", "latest", "--job", "lite", "--target", "r"])
        .code(2);
    assert!(
        r.stderr.contains("--allow-unverified")
            && r.stderr.contains(&older[..8])
            && r.stderr.contains(&newer[..8]),
        "restic {ver}: {}",
        r.stderr
    );
    let out = env
        .run(&[
            "--json",
            "restore",
            "latest",
            "--job",
            "lite",
            "--allow-unverified",
            "--target",
            "r",
        ])
        .ok();
    assert_eq!(
        out.json()["snapshot_id"],
        newer.as_str(),
        "restic {ver}: {}",
        out.stdout
    );
}

#[test]
fn a_postgres_dump_is_vouched_for_by_its_end_marker_and_an_unreadable_one_is_not() {
    let (ver, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.write_config(
        "[docker]\ndiscover = false\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n\
         [jobs.pg]\nkind = \"postgres\"\ncontainer = \"omk-it-verified-nothing\"\ndatabase = \"app\"\n",
    );
    env.run(&["backup", "--init", "files1"]).ok();
    let text = include_str!("../../src/engine/testdata/pg_dump.sql");
    let whole = plant(&env, "pg", "20260101T000000Z-0001", text.as_bytes());
    // A folder with the job's tags but no `/pg.sql` in it (restic refuses an empty
    // `--stdin`, 0.14 and 0.18 alike, so an empty dump cannot be planted that way).
    let data = env.path("data");
    env.restic_cmd(&[
        "backup",
        "--tag",
        "omk:job=pg",
        "--tag",
        "omk:run=20260101T000000Z-0002",
        data.to_str().unwrap(),
    ])
    .ok();
    let mine = env
        .restic_cmd(&["snapshots", "--json", "--tag", "omk:job=pg"])
        .ok()
        .json();
    let odd = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .find(|id| *id != whole)
        .unwrap();
    lose_catalog(&env);
    let rep = env.run(&["--json", "catalog", "rebuild"]).ok().json();
    assert_eq!(rep["verified"], 1, "restic {ver}: {rep}");
    let snaps = env.run(&["--json", "snapshots"]).ok().json();
    assert_eq!(state_of(&snaps, &whole), "good", "restic {ver}: {snaps}");
    assert_eq!(
        state_of(&snaps, &odd),
        "unverified",
        "restic {ver}: {snaps}"
    );
    assert!(
        rep["unverified_snapshots"]
            .to_string()
            .contains("cannot read pg.sql"),
        "{rep}"
    );
    let out = env
        .run(&[
            "--json", "restore", "latest", "--job", "pg", "--target", "r",
        ])
        .ok();
    assert_eq!(
        out.json()["snapshot_id"],
        whole.as_str(),
        "restic {ver}: {}",
        out.stdout
    );
}
