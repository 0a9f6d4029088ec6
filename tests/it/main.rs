//! Integration tests: the real `omk-backup` binary against real restic (0.14 and 0.18),
//! real SQLite, and (for the Docker features) a real dockerd behind a real socket proxy.
//! `scripts/test.sh` installs and starts all of it; a missing tool fails loudly here.

mod util;

mod alarms;
mod backup_restore;
mod bad_input;
mod copies;
mod daemon;
mod deploy;
mod dock;
mod dock2;
mod docker_discover;
mod docker_dumps;
mod docker_labels;
mod docker_quiesce;
mod docker_restore_test;
mod engines;
mod faults;
mod fleet;
mod hangs;
mod notify_runs;
mod permissions;
mod proxy_rules;
mod remote_common;
mod remote_rclone;
mod remote_rest;
mod remote_sftp;
mod remote_transfer;
mod secrets;
mod shared_repo;
mod shrink;
mod signals;
mod soak;
mod stall;
mod verified;
mod verify;
mod web;
mod web_browser;
mod web_http;
