//! A repository shared by several hosts: this instance's backups carry
//! `[repository] host`, and retention, `restore latest` and `catalog rebuild` see only
//! this host's snapshots — another host's snapshot with the very same job tags survives
//! our `forget --prune`, is never restored as ours, and is restored on purpose with
//! `restore latest --host`.

use crate::util::*;

fn with_host(env: &Env, host: &str) {
    let text = format!(
        "[repository]\nurl = \"repo\"\npassword_file = \"password\"\nhost = \"{host}\"\n\n\
         [retention]\nkeep_last = 2\n\n[jobs.files1]\nkind = \"files\"\npaths = [\"data\"]\n"
    );
    std::fs::write(env.config_path(), text).unwrap();
}

/// Snapshot ids of a host in the env's repository, by plain restic.
fn ids_of(env: &Env, host: &str) -> Vec<String> {
    let r = env
        .restic_cmd(&["snapshots", "--json", "--host", host])
        .ok();
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn another_hosts_snapshots_are_never_forgotten_restored_or_adopted() {
    for (ver, restic) in restics() {
        let env = Env::new(&restic);
        let me = format!("omk-it-self-{}", &unique()[..8]);
        let other = format!("omk-it-other-{}", &unique()[..8]);
        with_host(&env, &me);
        env.init();
        // The other host backs up ITS data with our job's very tags.
        let theirs = env.path("theirs");
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::write(theirs.join("only-on-the-other-host.txt"), "theirs\n").unwrap();
        env.restic_cmd(&[
            "backup",
            "--host",
            &other,
            "--tag",
            "omk:job=files1",
            "--tag",
            "omk:run=20260101T000000Z-0000",
            theirs.to_str().unwrap(),
        ])
        .ok();
        let their_ids = ids_of(&env, &other);
        assert_eq!(their_ids.len(), 1, "restic {ver}");
        for _ in 0..3 {
            env.run(&["backup"]).ok();
        }
        env.run(&["forget", "--prune"]).ok();
        assert_eq!(
            ids_of(&env, &other),
            their_ids,
            "restic {ver}: our retention removed another host's snapshot"
        );
        assert_eq!(
            ids_of(&env, &me).len(),
            2,
            "restic {ver}: keep_last = 2 on our own snapshots"
        );

        // A lost catalog is rebuilt from this host's snapshots only.
        std::fs::remove_file(env.path("catalog.db")).unwrap();
        let _ = std::fs::remove_file(env.path("catalog.db-wal"));
        let _ = std::fs::remove_file(env.path("catalog.db-shm"));
        env.run(&["catalog", "rebuild"]).ok();
        let snaps = env.run(&["--json", "snapshots"]).ok().json();
        let listed: Vec<&str> = snaps
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["snapshot_id"].as_str().unwrap())
            .collect();
        assert!(
            !listed.iter().any(|id| their_ids.contains(&id.to_string())),
            "restic {ver}: rebuild adopted another host's snapshot: {snaps}"
        );
        assert_eq!(listed.len(), 2, "restic {ver}: {snaps}");

        // restore latest is ours (rebuilt files snapshots are unverified: the flag)...
        env.run(&[
            "restore",
            "latest",
            "--job",
            "files1",
            "--allow-unverified",
            "--target",
            "mine",
        ])
        .ok();
        let data = env.path("data");
        assert_same_tree(&data, &env.path(&format!("mine{}", data.display())));
        // ...and theirs only when asked for by host; this catalog cannot vouch for
        // another host's snapshot, so that too needs the flag.
        let r = env.run(&[
            "restore", "latest", "--job", "files1", "--host", &other, "--target", "dr",
        ]);
        assert_eq!(r.code, 2, "restic {ver}: {}", r.all());
        assert!(
            r.stderr.contains("--allow-unverified") && r.stderr.contains(&their_ids[0][..8]),
            "{}",
            r.stderr
        );
        let r = env
            .run(&[
                "--json",
                "restore",
                "latest",
                "--job",
                "files1",
                "--host",
                &other,
                "--allow-unverified",
                "--target",
                "dr",
            ])
            .ok();
        assert_eq!(
            r.json()["snapshot_id"],
            their_ids[0].as_str(),
            "restic {ver}: {}",
            r.stdout
        );
        let got = env.path(&format!(
            "dr{}/only-on-the-other-host.txt",
            theirs.display()
        ));
        assert_eq!(
            std::fs::read_to_string(&got).unwrap(),
            "theirs\n",
            "restic {ver}"
        );
        let none = env.run(&[
            "restore",
            "latest",
            "--job",
            "files1",
            "--host",
            "omk-it-nobody",
            "--target",
            "x",
        ]);
        assert_eq!(none.code, 1, "{}", none.all());
        assert!(none.stderr.contains("omk-it-nobody"), "{}", none.stderr);
    }
}

#[test]
fn default_host_is_the_machines_and_a_bad_host_is_named() {
    let (_, restic) = restics().remove(0);
    let env = Env::new(&restic);
    env.init();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let snaps = env.restic_cmd(&["snapshots", "--json"]).ok().json();
    assert_eq!(snaps[0]["hostname"], hostname.trim(), "{snaps}");
    with_host(&env, "bad host,name");
    let r = env.run(&["backup"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("repository.host") && r.stderr.contains("omk.toml"),
        "{}",
        r.stderr
    );
}
