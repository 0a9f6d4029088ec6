//! Files that hold state or evidence are not world-readable: the catalog with its WAL
//! and SHM (0600, and an older world-readable catalog is tightened), reports and the
//! metrics textfile (no world bits).

use crate::util::*;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn catalog_reports_and_metrics_have_no_world_access() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    env.write_config(
        "[metrics]\ntextfile = \"omk.prom\"\n\n[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
    );
    env.init();
    env.run(&["report", "--format", "html", "--output", "r.html"])
        .ok();
    assert_eq!(mode(&env.path("catalog.db")), 0o600);
    // The WAL and SHM files exist while a connection is open (the last one to close
    // removes them): hold one open with the sqlite3 CLI and look.
    let mut holder = std::process::Command::new("sqlite3")
        .arg(env.path("catalog.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 (installed by scripts/setup-test-env.sh)");
    {
        use std::io::{BufRead, Write};
        let stdin = holder.stdin.as_mut().unwrap();
        writeln!(stdin, "SELECT count(*) FROM runs;").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.trim().parse::<u32>().is_ok(), "{line}");
    }
    for f in ["catalog.db-wal", "catalog.db-shm"] {
        assert_eq!(mode(&env.path(f)), 0o600, "{f}");
    }
    drop(holder.stdin.take());
    holder.wait().unwrap();
    for f in ["r.html", "omk.prom"] {
        assert_eq!(mode(&env.path(f)) & 0o007, 0, "{f} is world-accessible");
    }
    // A catalog made world-readable (an older omk-backup made it 0644) is tightened.
    std::fs::set_permissions(
        env.path("catalog.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    env.run(&["status"]).ok();
    assert_eq!(mode(&env.path("catalog.db")) & 0o007, 0);
}
