//! Secrets: the repository password appears in no output, no argv, no catalog row.

use crate::util::*;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Read every process's argv while `f` runs; return those that contain `needle`.
fn argv_leaks_while(needle: &str, f: impl FnOnce()) -> Vec<String> {
    let stop = Arc::new(AtomicBool::new(false));
    let leaks = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(0usize));
    let (s2, l2, n2, needle) = (
        stop.clone(),
        leaks.clone(),
        seen.clone(),
        needle.to_string(),
    );
    let watcher = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                if let Ok(b) = std::fs::read(e.path().join("cmdline")) {
                    let cmd = String::from_utf8_lossy(&b).replace('\0', " ");
                    if cmd.contains("restic") {
                        *n2.lock().unwrap() += 1;
                    }
                    if cmd.contains(&needle) {
                        l2.lock().unwrap().push(cmd);
                    }
                }
            }
        }
    });
    f();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(
        *seen.lock().unwrap() > 0,
        "the watcher never saw a restic process: the check proved nothing"
    );

    leaks.lock().unwrap().clone()
}

#[test]
fn password_never_in_output_argv_or_catalog() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let pw = env.password.clone();
        let mut outputs = Vec::new();
        let leaks = argv_leaks_while(&pw, || {
            for args in [
                vec!["-vvv", "backup", "--init"],
                vec!["-vvv", "backup"],
                vec!["-vvv", "--json", "backup"],
                vec!["-vvv", "snapshots"],
                vec!["-vvv", "status"],
                vec!["-vvv", "restore", "latest", "--target", "restored"],
                vec!["-vvv", "check"],
                vec!["-vvv", "forget", "--prune"],
            ] {
                let r = Run::from_output(env.cmd(&args).stdout(Stdio::piped()).output().unwrap());
                outputs.push((args.join(" "), r));
            }
        });
        assert!(
            leaks.is_empty(),
            "restic {ver}: password in argv: {leaks:?}"
        );
        for (args, r) in &outputs {
            assert_eq!(r.code, 0, "{args}: {}", r.stderr);
            assert!(
                !r.all().contains(&pw),
                "restic {ver}: `{args}` printed the password"
            );
        }
        let cat = env.catalog_bytes();
        assert!(!cat.is_empty());
        assert!(
            !cat.windows(pw.len()).any(|w| w == pw.as_bytes()),
            "restic {ver}: the password is in the catalog"
        );
    }
}
