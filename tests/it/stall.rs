//! A restic that stops making progress (here: a real restic frozen with SIGSTOP, the
//! way a hung NFS read or a stalled network freezes it) is stopped after
//! `[repository] stall_timeout`, the run fails naming the stall, nothing is recorded
//! good, and the next run succeeds.

use crate::util::*;
use std::time::{Duration, Instant};

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn signal(sig: &str, pid: u32) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

#[test]
fn a_frozen_restic_is_stopped_after_stall_timeout_and_nothing_is_recorded() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        env.init();
        let before = env.run(&["--json", "snapshots"]).ok().json();
        std::fs::write(env.path("data/big.bin"), vec![7u8; 64 << 20]).unwrap();
        let text = "[repository]\nurl = \"repo\"\npassword_file = \"password\"\nstall_timeout = \"3s\"\n\n[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n";
        std::fs::write(env.config_path(), text).unwrap();
        let started = Instant::now();
        let child = env
            .cmd(&["backup"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut frozen = None;
        wait_until(60, "restic backup to start", || {
            frozen = children(child.id())
                .into_iter()
                .find(|p| cmdline(*p).contains("backup"));
            frozen.is_some()
        });
        let pid = frozen.unwrap();
        signal("-STOP", pid);
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed();
        signal("-CONT", pid);
        let r = Run::from_output(out);
        assert_eq!(r.code, 1, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("stalled after 3s"),
            "restic {ver}: {}",
            r.stderr
        );
        assert!(
            took < Duration::from_secs(60),
            "restic {ver}: took {took:?}"
        );
        wait_until(20, "the frozen restic to be gone", || !alive(pid));
        // Nothing new recorded: the snapshot list is what it was.
        assert_eq!(
            env.run(&["--json", "snapshots"]).ok().json(),
            before,
            "restic {ver}"
        );
        let st = env.run(&["--json", "status"]).ok().json();
        assert_eq!(
            st["jobs"][0]["last_run_status"], "failed",
            "restic {ver}: {st}"
        );
        // The next run (no freeze) completes, past the stale restic lock.
        env.run(&["backup"]).ok();
    }
}
