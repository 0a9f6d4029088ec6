//! omk-backup: a backup-and-recovery orchestrator for Docker homelabs.
//!
//! The crate is split by the outside thing each module owns (see ARCHITECTURE.md):
//! `restic` starts restic, `catalog` holds SQL, `cli` knows the terminal, `config` reads
//! TOML, `docker` speaks the Engine API, `engine` knows each database engine (it builds
//! commands and reads their output, never runs them), `kit` seals the recovery kit,
//! `report` renders the monthly report. `domain` is pure and imports none of them;
//! `app` wires them together.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod docker;
pub mod domain;
pub mod engine;
pub mod exit;
pub mod fault;
pub mod fingerprint;
pub mod kit;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod private;
pub mod proxy;
pub mod random;
pub mod redact;
pub mod remote;
pub mod report;
pub mod restic;
pub mod schedule;
pub mod secret;
pub mod web;
