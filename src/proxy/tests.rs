use super::*;

fn needs() -> Needs {
    Needs {
        exec: ["immich_postgres".to_string(), "wiki.db".to_string()].into(),
        pause: ["vaultwarden".to_string()].into(),
        stop: BTreeSet::new(),
        discover: true,
        scratch: true,
        image_export: false,
        image_load: false,
    }
}

#[test]
fn haproxy_names_every_container_and_scopes_scratch_rights() {
    let t = haproxy(
        &needs(),
        "omk.toml",
        "127.0.0.1:2375",
        "/var/run/docker.sock",
    );
    assert!(
        t.contains("/containers/(immich_postgres|wiki\\.db|omk-restore-[a-zA-Z0-9_.-]+)/exec$'"),
        "{t}"
    );
    assert!(
        t.contains("/containers/(vaultwarden)/(pause|unpause)$'"),
        "{t}"
    );
    assert!(
        !t.contains("(stop|start)"),
        "no stop rule without a stop quiesce: {t}"
    );
    assert!(t.contains("url_param(name) -m reg '^omk-restore-"), "{t}");
    assert!(t.contains("/containers/omk-restore-[a-zA-Z0-9_.-]+$'\n    http-request allow if scratch_delete { method DELETE }"), "{t}");
    assert!(t.trim_end().ends_with("server docker /var/run/docker.sock"));
    // No rule allows a container path for "any" container.
    assert!(!t.contains("/containers/[a-zA-Z0-9][a-zA-Z0-9_.-]*"), "{t}");
}

#[test]
fn without_scratch_or_discovery_nothing_creates_or_lists() {
    let n = Needs {
        scratch: false,
        discover: false,
        ..needs()
    };
    let t = rules_only(&haproxy(
        &n,
        "omk.toml",
        "127.0.0.1:2375",
        "/var/run/docker.sock",
    ));
    for absent in [
        "/containers/create",
        "DELETE",
        "archive",
        "containers_list",
        "omk-restore",
    ] {
        assert!(!t.contains(absent), "{absent} in {t}");
    }
    let c = rules_only(&cetusguard(&n, "omk.toml"));
    assert!(
        !c.contains("create") && !c.contains("DELETE") && !c.contains("omk-restore"),
        "{c}"
    );
    assert!(
        c.contains("POST %API_PREFIX_CONTAINERS%/(immich_postgres|wiki\\.db)/exec"),
        "{c}"
    );
}

#[test]
fn names_that_are_not_docker_names_are_refused() {
    let mut n = needs();
    assert!(n.validate().is_ok());
    n.exec.insert("db|.*".into());
    let e = n.validate().unwrap_err();
    assert!(e.to_string().contains("db|.*"), "{e}");
}

/// The text without comment lines.
fn rules_only(t: &str) -> String {
    t.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.starts_with('!'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn lab_mode_production_rules_allow_no_create_only_the_image_export() {
    let n = Needs {
        scratch: false,
        image_export: true,
        ..needs()
    };
    for t in [
        rules_only(&haproxy(
            &n,
            "omk.toml",
            "127.0.0.1:2375",
            "/var/run/docker.sock",
        )),
        rules_only(&cetusguard(&n, "omk.toml")),
    ] {
        assert!(t.contains("/get"), "{t}");
        for refused in [
            "/create",
            "archive",
            "DELETE",
            "kill",
            "omk-restore",
            "/images/load",
        ] {
            assert!(
                !t.contains(refused),
                "{refused} in lab-mode production rules: {t}"
            );
        }
    }
    // The lab itself: scratch rules and the image load, no database container named.
    let lab = Needs {
        exec: BTreeSet::new(),
        pause: BTreeSet::new(),
        discover: false,
        scratch: true,
        image_load: true,
        ..needs()
    };
    let t = rules_only(&haproxy(
        &lab,
        "omk.toml",
        "127.0.0.1:2375",
        "/var/run/docker.sock",
    ));
    assert!(
        t.contains("/images/load$'") && t.contains("url_param(name)"),
        "{t}"
    );
    assert!(
        !t.contains("immich_postgres") && !t.contains("vaultwarden"),
        "{t}"
    );
    assert!(cetusguard(&lab, "omk.toml").contains("POST %API_PREFIX_IMAGES%/load"));
}
