//! The command line's grammar: every command, flag and argument clap parses. `mod.rs`
//! dispatches them; nothing here runs anything.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "omk-backup",
    version,
    about = "Backups for Docker homelabs that are proven to restore"
)]
pub(super) struct Cli {
    /// Config file (default: $OMK_BACKUP_CONFIG, then /etc/omk-backup/omk-backup.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub(super) json: bool,
    /// More log output on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(super) verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub(super) quiet: bool,
    /// Send no start/success/fail notifications for this run ([notify] targets)
    #[arg(long, global = true)]
    pub(super) no_notify: bool,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Back up now (all jobs when none are named)
    Backup {
        jobs: Vec<String>,
        /// Create the repository first if it does not exist
        #[arg(long)]
        init: bool,
        /// Accept that JOB's source really shrank: skip its shrink check this run
        /// (repeatable)
        #[arg(long, value_name = "JOB")]
        accept_shrink: Vec<String>,
    },
    /// Restore a snapshot (`latest` or an id) into a folder, or a database dump into a
    /// running database container
    Restore {
        /// `latest` or a snapshot id (prefix)
        snapshot: String,
        #[arg(long)]
        job: Option<String>,
        /// Folder to restore into (must be empty unless --overwrite)
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "into_container",
            conflicts_with = "into_container"
        )]
        target: Option<PathBuf>,
        /// Restore into a non-empty target, replacing files
        #[arg(long)]
        overwrite: bool,
        /// Load a database job's dump into this running container (replaces its data)
        #[arg(long, value_name = "NAME")]
        into_container: Option<String>,
        /// Confirm that --into-container replaces the live database's data
        #[arg(long, requires = "into_container")]
        yes_overwrite_live_database: bool,
        /// Restore another host's snapshot from a shared repository (disaster recovery);
        /// default: this host ([repository] host)
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// --into-container: the Docker engine running that container (`local` or an
        /// [engines.NAME]); default: the job's engine
        #[arg(long, value_name = "ENGINE", requires = "into_container")]
        engine: Option<String>,
        /// Also hand out a snapshot nobody vouched for (unverified, only in the
        /// repository, another host's); default: only good snapshots
        #[arg(long)]
        allow_unverified: bool,
        /// Restore from this copy ([copies.NAME]) alone (the primary may be gone)
        #[arg(long, value_name = "COPY", conflicts_with_all = ["host", "into_container"])]
        from: Option<String>,
    },
    /// Copy good snapshots to the [copies.*] repositories that lack them (3-2-1)
    Copy {
        /// Only this copy (default: every [copies.NAME])
        #[arg(long, value_name = "COPY")]
        to: Option<String>,
        jobs: Vec<String>,
        /// Create a copy repository that does not exist yet (primary's chunker parameters)
        #[arg(long)]
        init: bool,
    },
    /// List snapshots from the catalog
    Snapshots {
        #[arg(long)]
        job: Option<String>,
    },
    /// Per job: last backup, last verified restore, RPO, next run
    Status,
    /// Every host's jobs sharing this repository, read from the repository alone: newest
    /// snapshot, last verified restore, RTO, RPO, problems (exit 1 when there are any)
    Fleet,
    /// Apply retention
    Forget {
        jobs: Vec<String>,
        /// Also remove unreferenced data
        #[arg(long)]
        prune: bool,
    },
    /// Check repository integrity
    Check {
        /// Read this part of the data, e.g. 1/7 or 10%
        #[arg(long, value_name = "K/N")]
        read_data_subset: Option<String>,
    },
    /// Run the schedules in the foreground (SIGTERM-safe; SIGHUP reloads)
    Daemon,
    /// Run what is due now (missed within the grace window), then exit (systemd timer)
    RunDue,
    /// A read-only dashboard of this catalog ([web] listen; the daemon serves the full one)
    Web {
        /// Listen here instead of [web] listen (default 127.0.0.1:8427)
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
    },
    /// Schedules
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// Restore the latest backups into scratch space and prove they are complete, and
    /// that the repository is encrypted
    RestoreTest {
        jobs: Vec<String>,
        /// Prove a restore works from this recovery kit alone
        #[arg(long, value_name = "KIT")]
        from_kit: Option<PathBuf>,
        /// The kit's passphrase (first line of this file); else asked on the terminal
        #[arg(long, value_name = "FILE", requires = "from_kit")]
        passphrase_file: Option<PathBuf>,
        /// Restore from this copy ([copies.NAME]) alone instead of the primary
        #[arg(long, value_name = "COPY")]
        repository: Option<String>,
    },
    /// SHA-256 every file under the paths on all cores (the benchmark's hasher)
    #[command(hide = true)]
    HashBench { paths: Vec<PathBuf> },
    /// The monthly restore-test report
    Report {
        /// YYYY-MM, `previous` or `current`
        #[arg(long, default_value = "current")]
        month: String,
        /// md, html or json
        #[arg(long, default_value = "md")]
        format: String,
        /// Write the report here (else to stdout)
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The disaster-recovery kit
    Kit {
        #[command(subcommand)]
        action: KitAction,
    },
    /// Resume containers a crashed run left paused or stopped
    Recover,
    /// Print the tightest socket-proxy rules for this config (container names filled in)
    ProxyRules {
        /// haproxy (a whole haproxy.cfg, Tecnativa/linuxserver style) or cetusguard
        #[arg(long)]
        format: crate::app::proxy_rules::Format,
        /// haproxy: the address the proxy listens on
        #[arg(long, default_value = "127.0.0.1:2375")]
        listen: String,
        /// haproxy: the Docker socket it forwards to
        #[arg(long, default_value = "/var/run/docker.sock")]
        socket: String,
    },
    /// Catalog maintenance
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Configuration
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ScheduleAction {
    /// Next runs of every schedule line, in its zone and in UTC
    List {
        /// How many next runs to show per line
        #[arg(long, short = 'n', default_value_t = 3)]
        count: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum KitAction {
    /// Seal config, repository password, database passwords and catalog into one file
    Export {
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// The passphrase (first line of this file); else asked twice on the terminal
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Unseal a kit into a folder as a working config
    Open {
        kit: PathBuf,
        #[arg(long, value_name = "DIR")]
        into: PathBuf,
        /// The passphrase (first line of this file); else asked on the terminal
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum CatalogAction {
    /// Rebuild the catalog from the repository's snapshots and tags
    Rebuild,
}

#[derive(Debug, Subcommand)]
pub(super) enum ConfigAction {
    /// Validate the config and print the jobs it defines
    Check,
}
