//! A vanished source is not a good backup (issue 9, item 3): an emptied folder, an
//! unmounted share (the source folder replaced by an empty one, and a real tmpfs
//! unmounted from the source folder), a shrink past
//! `shrink_limit`, a truncated Postgres table and a dump cut before its end marker all
//! fail the backup (exit 1) naming the job and the drop; the snapshot is kept `suspect`
//! (or, for a cut dump, never made), `restore latest` and retention keep using the last
//! good one, and `--accept-shrink JOB` accepts a real shrink. Real restic 0.14 and 0.18,
//! real SQLite, real Postgres behind the haproxy socket proxy.

use crate::dock::*;
use crate::util::*;

fn state(env: &Env, id: &str) -> String {
    env.sql(&format!(
        "SELECT state FROM snapshots WHERE snapshot_id = '{id}'"
    ))
}

/// Full ids of the snapshots restic holds for `job`.
fn in_repository(env: &Env, job: &str) -> Vec<String> {
    let r = env
        .restic_cmd(&["snapshots", "--json", "--tag", &format!("omk:job={job}")])
        .ok();
    serde_json::from_str::<serde_json::Value>(&r.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn newest(env: &Env, job: &str) -> String {
    env.sql(&format!(
        "SELECT snapshot_id FROM snapshots WHERE job = '{job}' ORDER BY time DESC, rowid DESC LIMIT 1"
    ))
}

/// Empty the source folder in place (an emptied share).
fn empty_in_place(env: &Env) {
    let data = env.path("data");
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// An unmounted share: the mount point is there, empty; the data lives elsewhere.
fn unmount(env: &Env) {
    std::fs::rename(env.path("data"), env.path("data.mounted")).unwrap();
    std::fs::create_dir(env.path("data")).unwrap();
}

/// A real share: a tmpfs mounted over `data/` holding its files; `umount` leaves the
/// empty mount point behind, as an unmounted NAS share does. Unmounted on drop.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn over(env: &Env) -> Mounted {
        let data = env.path("data");
        let keep = env.path("data.files");
        copy_tree(&data, &keep);
        // A mount point is an empty folder; the share's files live on the filesystem.
        empty_in_place(env);
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "omk-it-share"])
            .arg(&data)
            .status()
            .expect("mount(8)");
        assert!(
            st.success(),
            "mount -t tmpfs over {} (the tests run as root)",
            data.display()
        );
        let m = Mounted(data.clone());
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cp -a {}/. {}/", keep.display(), data.display()))
            .status()
            .unwrap();
        assert!(st.success());
        m
    }

    fn umount(&self) {
        let st = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "umount {}", self.0.display());
    }

    fn is_mounted(&self) -> bool {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(self.0.to_str().unwrap()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.is_mounted() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

fn vanished_source(ver: &str, env: &Env, vanish: &dyn Fn(&Env), how: &str) {
    let original = env.path("original");
    copy_tree(&env.path("data"), &original);
    // keep_last = 1: retention that counted the suspect snapshot would drop the good one.
    env.write_config(
        "[retention]\nkeep_last = 1\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    env.init();
    let good = newest(env, "files1");
    assert_eq!(state(env, &good), "good");
    vanish(env);

    // 1. The backup fails (exit 1), naming the job, the drop and the way to accept it.
    let r = env.run(&["backup"]).code(1);
    let out = r.all();
    for want in [
        "files1: FAILED: files1: the source shrank: files fell from 2 to 0 (-100.0 %)",
        &format!("against the last good snapshot {}", &good[..8]),
        "more than shrink_limit = 50 %",
        "omk-backup backup --accept-shrink files1",
    ] {
        assert!(
            out.contains(want),
            "restic {ver}, {how}: `{want}` in\n{out}"
        );
    }
    // 2. Its snapshot is kept (it may be the only copy of what is left) as suspect; the
    //    step's detail row says why.
    let suspect = newest(env, "files1");
    assert_ne!(suspect, good);
    assert_eq!(state(env, &suspect), "suspect", "restic {ver}, {how}");
    assert!(in_repository(env, "files1").contains(&suspect));
    let detail = env.sql(
        "SELECT status || ' ' || detail FROM steps WHERE job = 'files1' AND kind = 'backup' ORDER BY id DESC LIMIT 1",
    );
    assert!(
        detail.starts_with("failed ")
            && detail.contains(&suspect)
            && detail.contains("\"shrink\":\"files1: the source shrank: files fell from 2 to 0"),
        "restic {ver}, {how}: {detail}"
    );
    // 3. `status` shows it as a problem of the job.
    let st = env.run(&["status"]).ok().stdout;
    assert!(
        st.contains(&format!(
            "SUSPECT: files1: snapshot {} is suspect",
            &suspect[..8]
        )),
        "restic {ver}, {how}: {st}"
    );
    let sj = env.run(&["--json", "status"]).ok().json();
    assert!(
        sj["jobs"][0]["suspect"]
            .as_str()
            .unwrap()
            .contains("the source shrank"),
        "{sj}"
    );
    // 4. `restore latest` hands out the previous good snapshot, not the suspect one.
    let target = env.path("restored");
    env.run(&["restore", "latest", "--target", target.to_str().unwrap()])
        .ok();
    let restored = target.join(env.path("data").strip_prefix("/").unwrap());
    assert_same_tree(&original, &restored);
    // The suspect one only with --allow-unverified.
    let r = env
        .run(&["restore", &suspect[..12], "--target", "x"])
        .code(2);
    assert!(
        r.stderr.contains("is suspect") && r.stderr.contains("--allow-unverified"),
        "{}",
        r.stderr
    );
    // 5. `forget` keeps the good one: it skips a job whose newest snapshot is suspect.
    let f = env.run(&["forget"]).ok();
    assert!(
        f.all()
            .contains("files1: retention skipped: the newest snapshot")
            && f.all().contains("is suspect"),
        "restic {ver}, {how}: {}",
        f.all()
    );
    let live = in_repository(env, "files1");
    assert!(live.contains(&good) && live.contains(&suspect), "{live:?}");
    assert_eq!(state(env, &good), "good");
}

#[test]
fn an_emptied_source_is_suspect_and_restore_latest_and_forget_keep_the_good_one() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        vanished_source(ver, &env, &empty_in_place, "emptied in place");
    }
}

#[test]
fn an_unmounted_share_is_suspect_and_restore_latest_and_forget_keep_the_good_one() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        vanished_source(ver, &env, &unmount, "unmounted share stand-in");
        // The real thing: a mounted filesystem that is not mounted at backup time.
        let env = Env::new(&restic);
        let share = Mounted::over(&env);
        vanished_source(ver, &env, &|_| share.umount(), "tmpfs share unmounted");
        assert!(!share.is_mounted());
    }
}

#[test]
fn accept_shrink_accepts_a_real_shrink_and_names_only_jobs_of_the_run() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    env.write_config(
        "[retention]\nkeep_last = 1\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n[jobs.other]\nkind = \"files\"\npaths = [\"password\"]\n",
    );
    env.init();
    let good = newest(&env, "files1");
    empty_in_place(&env);
    env.run(&["backup", "files1"]).code(1);
    let suspect = newest(&env, "files1");

    // Naming a job the run does not back up, or no job at all, is a usage error.
    let r = env
        .run(&["backup", "other", "--accept-shrink", "files1"])
        .code(2);
    assert!(
        r.stderr
            .contains("--accept-shrink files1: job `files1` is not backed up by this run"),
        "{}",
        r.stderr
    );
    let r = env.run(&["backup", "--accept-shrink", "nosuch"]).code(2);
    assert!(r.stderr.contains("no job named `nosuch`"), "{}", r.stderr);

    // Accepted: exit 0, the run says so, the snapshot is good and its note remembers it.
    let r = env.run(&["backup", "--accept-shrink", "files1"]).ok();
    assert!(
        r.all()
            .contains("files1: shrink accepted (--accept-shrink files1): files fell from 2 to 0"),
        "{}",
        r.all()
    );
    let accepted = newest(&env, "files1");
    assert_eq!(state(&env, &accepted), "good");
    assert!(
        env.sql(&format!(
            "SELECT note FROM snapshots WHERE snapshot_id = '{accepted}'"
        ))
        .starts_with("shrink accepted")
    );
    // The next (empty) backup compares with the accepted one: nothing left to lose.
    env.run(&["backup", "files1"]).ok();
    // And retention runs again now that the newest snapshot is good.
    env.run(&["forget", "files1"]).ok();
    let live = in_repository(&env, "files1");
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(!live.contains(&good) && !live.contains(&suspect));
}

#[test]
fn a_shrink_within_the_limit_passes_and_a_stricter_limit_fails_it() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    empty_in_place(&env);
    for i in 0..10 {
        std::fs::write(env.path(&format!("data/f{i}")), vec![b'x'; 1000]).unwrap();
    }
    let config = |limit: &str| {
        env.write_config(&format!(
            "[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n{limit}"
        ))
    };
    config("");
    env.init();
    // 30 % fewer files and bytes: within the default 50 %.
    for i in 0..3 {
        std::fs::remove_file(env.path(&format!("data/f{i}"))).unwrap();
    }
    env.run(&["backup"]).ok();
    assert_eq!(state(&env, &newest(&env, "files1")), "good");
    // Another 3 of 7 (-42.9 %): fine by 50 %, too much for shrink_limit = 20.
    for i in 3..6 {
        std::fs::remove_file(env.path(&format!("data/f{i}"))).unwrap();
    }
    config("shrink_limit = 20\n");
    let r = env.run(&["backup"]).code(1);
    assert!(
        r.all()
            .contains("files fell from 7 to 4 (-42.9 %), bytes from 7000 to 4000 (-42.9 %)")
            && r.all().contains("more than shrink_limit = 20 %"),
        "{}",
        r.all()
    );
    assert_eq!(state(&env, &newest(&env, "files1")), "suspect");
    // A bad limit is a config error naming file and line.
    config("shrink_limit = 150\n");
    let r = env.run(&["backup"]).code(2);
    assert!(
        r.stderr
            .contains("omk.toml:8:16: jobs.files1.shrink_limit: 150 is not a percent"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_empty_first_backup_is_allowed_but_warned_about() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    empty_in_place(&env);
    let r = env.run(&["backup", "--init"]).ok();
    assert!(
        r.stderr
            .contains("WARNING: the first backup of job `files1` holds no files"),
        "{}",
        r.stderr
    );
    let id = newest(&env, "files1");
    assert_eq!(state(&env, &id), "good");
}

#[test]
fn a_failed_shrink_check_stops_the_daemons_after_backup_retention() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.init();
    let good = newest(&env, "files1");
    empty_in_place(&env);
    env.sql("DELETE FROM runs");
    std::fs::create_dir_all(env.path("schedules")).unwrap();
    std::fs::write(env.path("schedules/test.cron"), "0 0 1 1 * backup\n").unwrap();
    env.write_config(
        "[schedule]\ngrace = \"400d\"\n\n[retention]\nkeep_last = 1\nafter_backup = true\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    let r = env.run(&["run-due"]).code(1);
    assert!(r.all().contains("the source shrank"), "{}", r.all());
    // The catch-up backup ran and failed; no retention run followed it.
    assert_eq!(
        env.sql("SELECT command || ' ' || status FROM runs ORDER BY started_at"),
        "backup failed"
    );
    assert!(in_repository(&env, "files1").contains(&good));
    assert_eq!(state(&env, &good), "good");
}

#[test]
fn restore_latest_without_a_good_snapshot_names_the_suspect_ones_and_the_flag() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    env.init();
    let good = newest(&env, "files1");
    empty_in_place(&env);
    env.run(&["backup"]).code(1);
    let suspect = newest(&env, "files1");
    // The good snapshot is gone (removed by hand with restic, then a catalog rebuild).
    env.restic_cmd(&["forget", &good]).ok();
    env.run(&["catalog", "rebuild"]).ok();
    assert_eq!(state(&env, &good), "forgotten");
    let r = env.run(&["restore", "latest", "--target", "out"]).code(2);
    for want in [
        "the catalog has no good snapshot (1 suspect: ",
        &suspect[..8],
        "--allow-unverified",
    ] {
        assert!(r.stderr.contains(want), "`{want}` in {}", r.stderr);
    }
    env.run(&["restore", "latest", "--target", "out", "--allow-unverified"])
        .ok();
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

// ---- database dumps (real Postgres through the haproxy socket proxy) ----

fn pg_config(env: &Env, container: &str) {
    env.write_config(&format!(
        "[docker]\nhost = \"{}\"\ndiscover = false\n\n[retention]\nkeep_last = 1\n\n[jobs.pgshrink]\nkind = \"postgres\"\ncontainer = \"{container}\"\ndatabase = \"app\"\n",
        proxy()
    ));
}

fn pg_with_items(rows: u32) -> Container {
    let pg = postgres(&format!("pgpw-{}", unique()));
    pg.sh(&format!("psql -v ON_ERROR_STOP=1 -U postgres -qc 'CREATE DATABASE app' && psql -v ON_ERROR_STOP=1 -U postgres -d app -qc \"CREATE TABLE items (id int primary key, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, {rows}) g;\""));
    pg
}

#[test]
fn a_truncated_postgres_table_fails_the_dump_at_backup_time() {
    let (_, restic) = restics().remove(1);
    let pg = pg_with_items(20000);
    let env = Env::new(&restic);
    pg_config(&env, &pg.name);
    env.run(&["backup", "--init"]).ok();
    let good = newest(&env, "pgshrink");
    pg.sh("psql -v ON_ERROR_STOP=1 -U postgres -d app -qc 'TRUNCATE items'");
    let r = env.run(&["backup"]).code(1);
    let out = r.all();
    for want in [
        "pgshrink: the source shrank: bytes fell from ",
        "rows from 20000 to 0 (-100.0 %)",
        "a truncated table",
        "omk-backup backup --accept-shrink pgshrink",
    ] {
        assert!(out.contains(want), "`{want}` in\n{out}");
    }
    let suspect = newest(&env, "pgshrink");
    assert_eq!(state(&env, &suspect), "suspect");
    // The dump is whole (its digest is recorded), it just holds less.
    assert_eq!(
        env.sql(&format!(
            "SELECT count(*) FROM dumps WHERE snapshot_id = '{suspect}'"
        )),
        "1"
    );
    // restore latest hands out the last good dump; forget keeps it.
    let target = env.path("restored");
    let r = env
        .run(&[
            "restore",
            "latest",
            "--job",
            "pgshrink",
            "--target",
            target.to_str().unwrap(),
        ])
        .ok();
    assert!(r.all().contains(&good[..8]), "{}", r.all());
    let dump = std::fs::read_to_string(target.join("pgshrink.sql")).unwrap();
    assert!(
        dump.contains("COPY public.items"),
        "the full dump came back"
    );
    let lines = dump.lines().count();
    assert!(
        lines > 20000,
        "the good dump holds every row: {lines} lines"
    );
    env.run(&["forget"]).ok();
    assert!(in_repository(&env, "pgshrink").contains(&good));
    // The truncate was real: accepted, the new dump is good.
    env.run(&["backup", "--accept-shrink", "pgshrink"]).ok();
    assert_eq!(state(&env, &newest(&env, "pgshrink")), "good");
}

#[test]
fn a_dump_cut_before_its_end_marker_fails_at_backup_time() {
    let pg = pg_with_items(20000);
    // A dump tool that stops half-way and still exits 0 (a full disk, a broken
    // wrapper): real pg_dump output, cut. Real components cannot do this on demand.
    let real = pg.sh("command -v pg_dump");
    assert!(real.starts_with('/'), "{real}");
    let as_root = |script: &str| docker_ok(&["exec", "-u", "0", &pg.name, "sh", "-c", script]);
    as_root(&format!(
        "mv {real} {real}.real && printf '#!/bin/sh\\n{real}.real \"$@\" | head -c 200000\\nexit 0\\n' > {real} && chmod 755 {real}"
    ));
    assert!(pg.sh(&format!("cat {real}")).contains("head -c 200000"));
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        pg_config(&env, &pg.name);
        env.restic_cmd(&["init"]).ok();
        let r = env.run(&["backup"]).code(1);
        let out = r.all();
        assert!(
            out.contains("pgshrink: the dump does not end with its tool's end marker \"-- PostgreSQL database dump complete\": it was cut short, so no snapshot was kept"),
            "restic {ver}: {out}"
        );
        assert!(
            in_repository(&env, "pgshrink").is_empty(),
            "restic {ver}: no snapshot of a cut dump"
        );
        assert_eq!(
            env.sql(
                "SELECT count(*) FROM snapshots WHERE job = 'pgshrink' AND state != 'forgotten'"
            ),
            "0"
        );
    }
    // The same container without the cut dumps fine (the check is not a false alarm).
    as_root(&format!("mv {real}.real {real}"));
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    pg_config(&env, &pg.name);
    env.run(&["backup", "--init"]).ok();
}
