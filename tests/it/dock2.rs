//! The harness's second Docker engine (scripts/env/20-dockerd2.sh) for tests/it/engines.rs:
//! its socket and proxy, the docker CLI on it, throw-away containers on it, and an image
//! of our own made on the first engine only.

use crate::dock::*;
use crate::util::*;
use std::process::{Command, Output, Stdio};

pub fn engine2_socket() -> String {
    need("OMK_TEST_DOCKER2_SOCKET")
}

pub fn engine2_proxy() -> String {
    need("OMK_TEST_DOCKER2_PROXY")
}

/// The docker CLI on the second engine.
pub fn docker2(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", engine2_socket())
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI (installed by scripts/setup-test-env.sh)")
}

#[track_caller]
pub fn docker2_ok(args: &[&str]) -> String {
    let o = docker2(args);
    assert!(
        o.status.success(),
        "docker (engine 2) {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A container on the second engine, removed (with its volumes) when dropped.
pub struct Container2 {
    pub name: String,
}

impl Container2 {
    pub fn run(prefix: &str, args: &[&str], image_var: &str) -> Container2 {
        let image = need(image_var);
        let name = format!("omk-it-{prefix}-{}", unique());
        let mut a = vec!["run", "-d", "--name", &name, "--label", "omk-it=1"];
        a.extend_from_slice(args);
        a.push(&image);
        docker2_ok(&a);
        Container2 { name }
    }

    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        docker2_ok(&["exec", &self.name, "sh", "-c", script])
    }

    pub fn wait_for(&self, secs: u64, script: &str) {
        wait_until(secs, script, || {
            docker2(&["exec", &self.name, "sh", "-c", script])
                .status
                .success()
        });
    }
}

impl Drop for Container2 {
    fn drop(&mut self) {
        let _ = docker2(&["rm", "-f", "-v", &self.name]);
    }
}

pub fn postgres2(password: &str) -> Container2 {
    let env = format!("POSTGRES_PASSWORD={password}");
    let c = Container2::run("pg2", &["-e", &env], "OMK_TEST_IMAGE_POSTGRES");
    c.wait_for(120, "pg_isready -h 127.0.0.1 -U postgres");
    c
}

/// A derived image (new id, shared layers) made on the first engine only, removed from
/// both engines when dropped.
pub struct OwnImage {
    pub tag: String,
}

impl OwnImage {
    pub fn build() -> OwnImage {
        let tag = format!("omk-it-engines/pg:{}", unique());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {}\nLABEL omk-it.engines=\"{tag}\"\n",
                need("OMK_TEST_IMAGE_POSTGRES")
            ),
        )
        .unwrap();
        let o = Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.path())
            .env("DOCKER_HOST", need("OMK_TEST_DOCKER_SOCKET"))
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "docker build failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        OwnImage { tag }
    }

    pub fn id(&self) -> String {
        docker_ok(&["image", "inspect", "-f", "{{.Id}}", &self.tag])
    }
}

impl Drop for OwnImage {
    fn drop(&mut self) {
        let id = docker_ok(&["image", "inspect", "-f", "{{.Id}}", &self.tag]);
        let _ = docker2(&["rmi", "-f", &id]);
        let _ = docker(&["rmi", "-f", &self.tag]);
    }
}
