//! `sftp:` repositories on a real OpenSSH server (scripts/env/10-sftp.sh: its own port,
//! host key and client key, reached through the `Host omk-sftp` entry restic's `ssh`
//! reads): the full cycle on restic 0.14 and 0.18 with the encryption proof read over
//! sftp, a server that dies mid-backup (a private sshd), and an unreachable host.

use crate::remote_common::*;
use crate::util::*;

#[test]
fn sftp_repository_full_cycle_with_the_encryption_proof_over_the_wire() {
    for (ver, restic) in restics() {
        full_cycle(ver, &restic, &Backend::sftp());
    }
}

#[test]
fn an_sftp_server_gone_mid_backup_fails_the_run_cleanly_and_the_next_run_succeeds() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let mut sshd = private_sshd(env.dir.path());
        let dir = need_var("OMK_TEST_SFTP_DIR");
        let mut b = Backend::sftp();
        b.url = format!(
            "sftp://omk-sftp-private:{}/{dir}/omk-it-{}",
            sshd.port,
            unique()
        );
        // Slow enough to be mid-upload when the server dies; stall_timeout bounds any
        // retrying.
        b.repo_extra = "limit_upload = 300\nstall_timeout = \"30s\"\n".into();
        server_gone_mid_backup(ver, &env, &b, &mut sshd);
    }
}

#[test]
fn an_unreachable_sftp_host_is_named_with_its_host_and_port() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let port = free_port();
        let mut b = Backend::sftp();
        b.url = format!("sftp://omk-sftp-closed:{port}//var/lib/omk-test/sftp/nowhere");
        b.write(
            &env,
            "[retention]\nkeep_last = 3\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n",
        );
        let t = std::time::Instant::now();
        let r = b.run(&env, &["backup"]);
        assert_eq!(r.code, 1, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("127.0.0.1") && r.stderr.contains(&format!("port {port}")),
            "restic {ver}: host and port named: {}",
            r.stderr
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "restic {ver}: took {:?}",
            t.elapsed()
        );
        assert_eq!(
            env.sql("SELECT count(*) FROM snapshots WHERE state = 'good'"),
            "0"
        );
    }
}
