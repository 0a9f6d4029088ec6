//! Catalog tests against a real SQLite file.

use super::*;

fn snap(id: &str, job: &str, time: i64, state: SnapshotState) -> SnapshotRow {
    SnapshotRow {
        snapshot_id: id.into(),
        job: job.into(),
        run_id: Some("r1".into()),
        time,
        bytes: Some(10),
        files: Some(1),
        data_added: Some(5),
        duration_ms: Some(3),
        state,
        note: None,
    }
}

#[test]
fn migrates_once_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.db");
    Catalog::open(&p)
        .unwrap()
        .start_run("r1", "backup", "cli", 1)
        .unwrap();
    let c = Catalog::open(&p).unwrap();
    assert_eq!(c.run("r1").unwrap().unwrap().status, RunStatus::Running);
    let mode: String = c
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.db");
    Catalog::open(&p)
        .unwrap()
        .conn
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let e = Catalog::open(&p).err().expect("too new");
    assert!(e.to_string().contains("newer omk-backup"), "{e}");
}

#[test]
fn runs_steps_and_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(&dir.path().join("c.db")).unwrap();
    c.start_run("r1", "backup", "cli", 100).unwrap();
    let s = c.start_step("r1", Some("photos"), "backup", 101).unwrap();
    assert_eq!(c.running_runs().unwrap().len(), 1);
    c.interrupt_run("r1", "killed", 200).unwrap();
    assert!(c.running_runs().unwrap().is_empty());
    let last = c.last_step("photos", "backup").unwrap().unwrap();
    assert_eq!(last.status, RunStatus::Interrupted);
    c.start_run("r2", "backup", "cli", 300).unwrap();
    let s2 = c.start_step("r2", Some("photos"), "backup", 301).unwrap();
    c.finish_step(s2, RunStatus::Success, None, None, 302)
        .unwrap();
    assert_eq!(c.last_success("photos", "backup").unwrap(), Some(302));
    assert_ne!(s, s2);
}

#[test]
fn snapshots_latest_and_forget() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(&dir.path().join("c.db")).unwrap();
    c.start_run("r1", "backup", "cli", 1).unwrap();
    c.insert_snapshot(&snap("aaa1", "photos", 10, SnapshotState::Good))
        .unwrap();
    c.insert_snapshot(&snap("bbb2", "photos", 20, SnapshotState::Good))
        .unwrap();
    c.insert_snapshot(&snap("ccc3", "photos", 30, SnapshotState::Unverified))
        .unwrap();
    c.insert_snapshot(&snap("ddd4", "db", 40, SnapshotState::Good))
        .unwrap();
    assert_eq!(
        c.latest_good("photos").unwrap().unwrap().snapshot_id,
        "bbb2"
    );
    assert_eq!(c.snapshots(Some("photos")).unwrap().len(), 3);
    assert_eq!(c.snapshots(None).unwrap().len(), 4);
    c.mark_forgotten(&["bbb2".into()], "retention", 50).unwrap();
    assert_eq!(
        c.latest_good("photos").unwrap().unwrap().snapshot_id,
        "aaa1"
    );
    assert_eq!(c.find_snapshot("dd").unwrap().len(), 1);
    assert_eq!(c.find_snapshot("zz").unwrap().len(), 0);
    assert!(c.has_snapshot("bbb2").unwrap());
    assert_eq!(c.live_snapshot_ids().unwrap().len(), 3);
}

#[test]
fn quiesce_journal_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(&dir.path().join("c.db")).unwrap();
    let id = c
        .journal_quiesce("r1", "vw", "local", "vaultwarden", "pause", 1)
        .unwrap();
    c.journal_before(id, "abc", "running").unwrap();
    c.journal_state(id, "quiesced", None, None, 2).unwrap();
    assert_eq!(c.open_quiesces().unwrap().len(), 1);
    c.journal_state(id, "resumed", Some(42), None, 3).unwrap();
    assert!(c.open_quiesces().unwrap().is_empty());
    assert_eq!(c.last_quiesce_window("vw").unwrap(), Some(42));
}

#[test]
fn a_damaged_detail_column_is_an_error_naming_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(&dir.path().join("c.db")).unwrap();
    c.start_run("r1", "backup", "cli", 1).unwrap();
    c.start_run("r9", "restore-test", "cli", 2).unwrap();
    c.insert_snapshot(&snap("s1", "db", 1, SnapshotState::Good))
        .unwrap();
    let fp = crate::fingerprint::Fingerprint::default();
    c.insert_dump(&DumpRow {
        snapshot_id: "s1".into(),
        job: "db".into(),
        engine: "postgres".into(),
        filename: "db.sql".into(),
        sha256: "00".into(),
        bytes: 1,
        fingerprint: Some(fp.clone()),
    })
    .unwrap();
    assert_eq!(c.dump("s1").unwrap().unwrap().fingerprint, Some(fp));
    c.insert_encryption_check(&EncryptionRow {
        run_id: "r9".into(),
        repository: "repo".into(),
        at: 5,
        passed: true,
        checks: vec![Check::new("canary", true, "absent")],
    })
    .unwrap();
    assert_eq!(
        c.encryption_checks(0, 10).unwrap()[0].checks[0].name,
        "canary"
    );

    c.conn
        .execute_batch(
            "UPDATE dumps SET fingerprint = '{not json'; UPDATE encryption_checks SET checks = '7';",
        )
        .unwrap();
    let e = c.dump("s1").unwrap_err().to_string();
    assert!(
        e.contains("dumps row s1") && e.contains("fingerprint"),
        "{e}"
    );
    let e = c.encryption_checks(0, 10).unwrap_err().to_string();
    assert!(
        e.contains("encryption_checks row run r9") && e.contains("checks"),
        "{e}"
    );
}
