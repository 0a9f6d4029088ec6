//! Restore tests, the encryption proof, rotating checks, the recovery kit and the
//! monthly report, against real restic (0.14 and 0.18) and a real headless Chromium.

use crate::util::*;
use std::path::{Path, PathBuf};

/// An env with a bigger file, so the largest pack in `repo/data` holds file content.
fn env_with_data(restic: &Path) -> Env {
    let env = Env::new(restic);
    let big: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(env.path("data/big.bin"), big).unwrap();
    env.init();
    env
}

fn largest_pack(env: &Env) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for sub in std::fs::read_dir(env.repo().join("data")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let len = std::fs::metadata(&p).unwrap().len();
            if best.as_ref().is_none_or(|b| len > b.0) {
                best = Some((len, p));
            }
        }
    }
    best.expect("a pack file").1
}

fn flip_byte(p: &Path, at: usize) {
    use std::os::unix::fs::PermissionsExt;
    // restic writes packs read-only.
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut b = std::fs::read(p).unwrap();
    b[at] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

fn check_named<'a>(test: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    test["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {test}"))
}

#[test]
fn files_restore_test_passes_records_rto_rpo_and_proves_encryption() {
    for (ver, restic) in restics() {
        let env = env_with_data(&restic);
        // A scratch folder a killed run of ours left is removed; another catalog's is not.
        let old_run = env.sql("SELECT id FROM runs LIMIT 1");
        let ours = env.path(&format!(".omk-restore-test-{old_run}/x"));
        std::fs::create_dir_all(&ours).unwrap();
        let foreign = env.path(".omk-restore-test-20200101T000000Z-0000");
        std::fs::create_dir_all(&foreign).unwrap();
        let run = env.run(&["--json", "restore-test"]).ok();
        assert!(!ours.exists() && foreign.exists(), "restic {ver}");
        std::fs::remove_dir(&foreign).unwrap();
        let v = run.json();
        let t = &v["tests"][0];
        assert_eq!(t["job"], "files1", "restic {ver}");
        assert_eq!(t["passed"], true, "restic {ver}: {v:#}");
        assert!(t["rto_seconds"].as_f64().unwrap() > 0.0);
        assert!(t["rpo_seconds"].as_i64().is_some());
        for c in t["checks"].as_array().unwrap() {
            for f in ["name", "passed", "detail"] {
                assert!(c.get(f).is_some(), "check lacks {f}: {c}");
            }
        }
        assert!(
            check_named(t, "content")["detail"]
                .as_str()
                .unwrap()
                .contains("SHA-256 of 3 restored file(s)"),
            "{t:#}"
        );
        // Encryption: canary absent from the raw files, wrong password refused.
        let enc = &v["encryption"];
        assert_eq!(enc["passed"], true, "restic {ver}: {enc:#}");
        for name in [
            "canary-absent",
            "canary-restored",
            "wrong-password-refused",
            "config-encrypted",
            "keys-scrypt",
            "canary-forgotten",
        ] {
            let c = check_named(enc, name);
            assert_eq!(c["passed"], true, "restic {ver}: {c}");
            assert!(c.get("skipped").is_none(), "{c}");
        }
        // The canary snapshot is gone; the job's is still there.
        let canaries = env
            .restic_cmd(&["snapshots", "--json", "--tag", "omk:canary"])
            .ok();
        assert_eq!(canaries.stdout.trim(), "[]", "restic {ver}");
        // Catalog: the test, RTO, RPO, the evidence; status shows the verified restore.
        assert_eq!(env.sql("SELECT count(*) FROM restore_tests WHERE passed = 1 AND rto_ms > 0 AND rpo_seconds >= 0"), "1");
        assert_eq!(
            env.sql("SELECT count(*) FROM encryption_checks WHERE passed = 1"),
            "1"
        );
        let st = env.run(&["--json", "status"]).ok().json();
        assert!(st["jobs"][0]["last_verified_restore"].is_string(), "{st}");
        // The scratch folder is gone; the password never shows.
        let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("restore-test"))
            .collect();
        assert!(leftovers.is_empty(), "scratch left behind: {leftovers:?}");
        assert!(!run.all().contains(&env.password));
        assert!(!String::from_utf8_lossy(&env.catalog_bytes()).contains(&env.password));
    }
}

#[test]
fn database_jobs_are_not_reported_as_passed() {
    let (_, restic) = restics().remove(1);
    let env = env_with_data(&restic);
    env.write_config(
        "[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n[jobs.db]\nkind = \"postgres\"\ncontainer = \"pg\"\n",
    );
    let v = env.run(&["--json", "restore-test", "db"]).code(1).json();
    let t = &v["tests"][0];
    assert_eq!(t["passed"], false);
    assert!(t["rto_seconds"].is_null());
    // No dump of it yet: nothing to restore, and said so (never "passed").
    let c = check_named(t, "snapshot");
    assert_eq!(c["passed"], false);
    assert!(
        c["detail"].as_str().unwrap().contains("no good snapshot"),
        "{c}"
    );
}

#[test]
fn flipped_byte_in_a_pack_is_caught_by_check_and_restore_test() {
    for (ver, restic) in restics() {
        let env = env_with_data(&restic);
        let pack = largest_pack(&env);
        let len = std::fs::metadata(&pack).unwrap().len() as usize;
        flip_byte(&pack, len / 2);
        let r = env.run(&["check", "--read-data-subset", "1/1"]).code(1);
        assert!(r.stdout.contains("FAILED"), "restic {ver}: {}", r.all());
        let st = env.run(&["status"]).ok();
        assert!(
            st.stdout.contains("REPOSITORY FLAGGED"),
            "restic {ver}: {}",
            st.stdout
        );
        let v = env.run(&["--json", "restore-test"]).code(1).json();
        let t = &v["tests"][0];
        assert_eq!(t["passed"], false, "restic {ver}: {t:#}");
        assert!(t["rto_seconds"].is_null());
        let restore = check_named(t, "restore");
        assert!(
            restore["detail"]
                .as_str()
                .unwrap()
                .contains("damaged data (ciphertext verification failed)"),
            "restic {ver}: {restore}"
        );
        // The report leads with the flag and the failed test.
        let md = env.run(&["report"]).ok().stdout;
        let problems = md.split("## Jobs").next().unwrap();
        assert!(problems.contains("repository flagged"), "{md}");
        assert!(problems.contains("files1: the last restore test"), "{md}");
        // Repaired (byte flipped back): a passing check clears the flag.
        flip_byte(&pack, len / 2);
        env.run(&["check", "--read-data-subset", "1/1"]).ok();
        let st = env.run(&["--json", "status"]).ok().json();
        assert!(st["repository_flag"].is_null(), "restic {ver}: {st}");
    }
}

#[test]
fn deleted_pack_fails_the_restore_test_clearly() {
    for (ver, restic) in restics() {
        let env = env_with_data(&restic);
        std::fs::remove_file(largest_pack(&env)).unwrap();
        let v = env.run(&["--json", "restore-test"]).code(1).json();
        let t = &v["tests"][0];
        assert_eq!(t["passed"], false);
        let failed: Vec<String> = t["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["passed"] == false)
            .map(|c| format!("{}: {}", c["name"], c["detail"]))
            .collect();
        assert!(!failed.is_empty(), "restic {ver}");
        let restore = check_named(t, "restore");
        assert_eq!(restore["passed"], false, "restic {ver}: {t:#}");
        assert!(
            restore["detail"]
                .as_str()
                .unwrap()
                .contains("restore of snapshot"),
            "restic {ver}: {restore}"
        );
    }
}

#[test]
fn rotating_check_advances_and_records_coverage() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    env.write_config(
        "[check]\nsubsets = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    env.init();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let v = env.run(&["--json", "check"]).ok().json();
        assert_eq!(v["rotating"], true);
        seen.push(v["read_data_subset"].as_str().unwrap().to_string());
        if seen.len() == 3 {
            assert_eq!(v["coverage"]["complete"], true, "{v}");
        }
    }
    assert_eq!(seen, ["1/3", "2/3", "3/3", "1/3"]);
    let st = env.run(&["--json", "status"]).ok().json();
    assert_eq!(st["check_coverage"]["subsets_read"], 3, "{st}");
    assert_eq!(st["check_coverage"]["complete"], true, "{st}");
    assert_eq!(
        env.sql("SELECT count(*) FROM check_runs WHERE rotating = 1 AND passed = 1"),
        "4"
    );
}

/// `kit export --output KIT --passphrase-file PP`.
fn kit_export(env: &Env, kit: &Path, pp: &Path) -> Run {
    env.run(&[
        "kit",
        "export",
        "--output",
        kit.to_str().unwrap(),
        "--passphrase-file",
        pp.to_str().unwrap(),
    ])
}

fn write_passphrase(env: &Env, name: &str, text: &str) -> PathBuf {
    let p = env.path(name);
    std::fs::write(&p, format!("{text}\n")).unwrap();
    p
}

#[test]
fn kit_roundtrip_and_refusals() {
    let (_, restic) = restics().remove(1);
    let env = env_with_data(&restic);
    let pp = write_passphrase(&env, "pp", "correct horse battery staple");
    let kit = env.path("kit.omk");
    kit_export(&env, &kit, &pp).ok();
    let sealed = std::fs::read(&kit).unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains(&env.password),
        "password in clear"
    );
    // Roundtrip.
    let into = env.path("opened");
    let r = env
        .run(&[
            "kit",
            "open",
            kit.to_str().unwrap(),
            "--into",
            into.to_str().unwrap(),
            "--passphrase-file",
            pp.to_str().unwrap(),
        ])
        .ok();
    assert!(!r.all().contains(&env.password));
    let pw = into.join("secrets/restic_password");
    assert_eq!(std::fs::read_to_string(&pw).unwrap().trim(), env.password);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cfg = std::fs::read_to_string(into.join("omk-backup.toml")).unwrap();
    assert!(
        cfg.contains("password_file = \"secrets/restic_password\""),
        "{cfg}"
    );
    // The unsealed config works on its own.
    let snaps = Run::from_output(
        std::process::Command::new(BIN)
            .args([
                "--json",
                "--config",
                into.join("omk-backup.toml").to_str().unwrap(),
                "snapshots",
            ])
            .env("OMK_BACKUP_RESTIC", &env.restic)
            .output()
            .unwrap(),
    )
    .ok()
    .json();
    assert_eq!(snaps.as_array().unwrap().len(), 1);

    let open = |file: &Path, pass: &Path| {
        let into = env.path(&format!("o-{}", unique()));
        env.run(&[
            "kit",
            "open",
            file.to_str().unwrap(),
            "--into",
            into.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ])
    };
    // Wrong passphrase.
    let wrong = write_passphrase(&env, "wrong", "correct horse battery stapler");
    let r = open(&kit, &wrong).code(1);
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    // A flipped byte.
    let mut t = sealed.clone();
    let mid = t.len() / 2;
    t[mid] ^= 0x20;
    let tampered = env.path("tampered.omk");
    std::fs::write(&tampered, &t).unwrap();
    let r = open(&tampered, &pp).code(1);
    assert!(r.stderr.contains("tampered"), "{}", r.stderr);
    // Truncated at a chunk boundary, and mid-chunk.
    let cut_at = 91 + 64 * 1024 + 16;
    assert!(
        sealed.len() > cut_at,
        "kit too small to cut at a chunk boundary"
    );
    let truncated = env.path("truncated.omk");
    std::fs::write(&truncated, &sealed[..cut_at]).unwrap();
    let r = open(&truncated, &pp).code(1);
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);
    std::fs::write(&truncated, &sealed[..sealed.len() - 7]).unwrap();
    open(&truncated, &pp).code(1);
    // Not a kit; no kit at all (refused before any passphrase is asked).
    let junk = env.path("junk.omk");
    std::fs::write(&junk, "hello").unwrap();
    let r = open(&junk, &pp).code(1);
    assert!(
        r.stderr.contains("not an omk-backup recovery kit"),
        "{}",
        r.stderr
    );
    let r = open(&env.path("missing.omk"), &pp).code(2);
    assert!(r.stderr.contains("no kit file"), "{}", r.stderr);
    // A short passphrase is refused at export.
    let short = write_passphrase(&env, "short", "abc");
    let r = kit_export(&env, &env.path("k2"), &short).code(2);
    assert!(r.stderr.contains("shorter than 10"), "{}", r.stderr);
}

#[test]
fn restore_test_from_the_kit_alone() {
    let (_, restic) = restics().remove(0);
    let env = env_with_data(&restic);
    let pp = write_passphrase(&env, "pp", "a long enough kit passphrase");
    let kit = env.path("kit.omk");
    kit_export(&env, &kit, &pp).ok();
    // Lose the password file and the catalog: only the kit (and the repository) remain.
    std::fs::remove_file(env.path("password")).unwrap();
    std::fs::remove_file(env.path("catalog.db")).unwrap();
    let _ = std::fs::remove_file(env.path("catalog.db-wal"));
    let v = env
        .run(&[
            "--json",
            "restore-test",
            "--from-kit",
            kit.to_str().unwrap(),
            "--passphrase-file",
            pp.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(v["tests"][0]["passed"], true, "{v:#}");
    assert_eq!(v["from_kit"], kit.to_str().unwrap());
}

fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn html_report_renders_in_headless_chromium_and_chains_digests() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: install Debian's `chromium` (scripts/setup-test-env.sh must add it to its apt list) to render the HTML report"
    );
    let (_, restic) = restics().remove(1);
    let env = env_with_data(&restic);
    env.run(&["restore-test"]).ok();
    env.run(&["check"]).ok();
    let out = artefacts().join("report.html");
    let prev = env
        .run(&[
            "--json",
            "report",
            "--month",
            "previous",
            "--format",
            "html",
            "--output",
            env.path("prev.html").to_str().unwrap(),
        ])
        .ok()
        .json();
    let cur = env
        .run(&[
            "--json",
            "report",
            "--format",
            "html",
            "--output",
            out.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(
        cur["previous_sha256"], prev["sha256"],
        "the chain links months"
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<svg") && html.contains("@media print"));
    assert!(
        !html.contains(" src=") && !html.contains(" href="),
        "the report must be self-contained"
    );
    assert!(html.contains(cur["sha256"].as_str().unwrap()));
    let content = html.split("<footer class=\"integrity\">").next().unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(content.as_bytes())),
        cur["sha256"]
    );
    let png = artefacts().join("report.png");
    let _ = std::fs::remove_file(&png);
    let profile = env.path("chromium-profile");
    let r = Run::from_output(
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1100,1600",
                &format!("--user-data-dir={}", profile.display()),
                &format!("--screenshot={}", png.display()),
                &format!("file://{}", out.display()),
            ])
            .output()
            .unwrap(),
    );
    let shot = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot ({e}): {}", r.all()));
    assert!(
        shot.starts_with(b"\x89PNG") && shot.len() > 10_000,
        "screenshot too small: {}",
        r.all()
    );
}

#[test]
fn kit_export_runs_password_command_and_rewrites_the_config() {
    let (_, restic) = restics().remove(1);
    let env = Env::new(&restic);
    std::fs::write(env.path("dbpw"), "db-secret-1\n").unwrap();
    std::fs::write(
        env.config_path(),
        format!(
            "[repository]\nurl = \"repo\"\npassword_command = \"cat {}\"\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n\n[jobs.db]\nkind = \"postgres\"\ncontainer = \"pg\"\npassword_file = \"dbpw\"\n",
            env.path("password").display()
        ),
    )
    .unwrap();
    let pp = write_passphrase(&env, "pp", "another long passphrase");
    let kit = env.path("kit.omk");
    kit_export(&env, &kit, &pp).ok();
    let into = env.path("opened");
    env.run(&[
        "kit",
        "open",
        kit.to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
        "--passphrase-file",
        pp.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(into.join("secrets/restic_password"))
            .unwrap()
            .trim(),
        env.password
    );
    assert_eq!(
        std::fs::read_to_string(into.join("secrets/db-db")).unwrap(),
        "db-secret-1\n"
    );
    let cfg = std::fs::read_to_string(into.join("omk-backup.toml")).unwrap();
    assert!(!cfg.contains("password_command"), "{cfg}");
    assert!(cfg.contains("password_file = \"secrets/db-db\""), "{cfg}");
    assert!(
        cfg.contains(&format!("url = \"{}\"", env.repo().display())),
        "{cfg}"
    );
    assert!(
        cfg.contains(&format!("\"{}\"", env.path("data").display())),
        "{cfg}"
    );
}
