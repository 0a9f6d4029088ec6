//! The command line: the only module that knows clap, indicatif and the terminal.
//!
//! `main` parses, sets up logging, runs the command on a tokio runtime, renders the
//! report (human text or `--json` on stdout; notes and progress on stderr) and maps
//! the result to the product's exit codes.

mod args;
mod output;
mod progress;

use crate::app::session::Session;
use crate::app::startup::{locked, reconciled};
use crate::app::{self, Globals};
use crate::exit::{Outcome, classify};
use crate::secret::{Secret, read_password_file};
use args::*;
use clap::Parser;
use std::process::ExitCode;

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Outcome::Usage as u8
            } else {
                0
            });
        }
    };
    // The scheduler's own log lines (what ran, when, why not) are its output: show them.
    let scheduler = matches!(
        cli.command,
        Command::Daemon | Command::RunDue | Command::Web { .. }
    );
    init_logging(cli.verbose + u8::from(scheduler), cli.quiet);
    let reporter = progress::TermReporter::new(cli.quiet || cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Outcome::Failed as u8);
        }
    };
    let globals = Globals {
        config: cli.config.clone(),
        no_notify: cli.no_notify,
        ..Default::default()
    };
    let result = if scheduler {
        // The daemon, `run-due` and `web` handle their own signals (per task).
        runtime.block_on(dispatch(&cli, &globals, &reporter))
    } else {
        let work = dispatch(&cli, &globals, &reporter);
        runtime.block_on(until_stopped(work, &globals, &reporter))
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            reporter.clear();
            output::error(&e, cli.json);
            classify(&e)
        }
    };
    ExitCode::from(outcome as u8)
}

/// Run `work` unless SIGINT/SIGTERM comes first. Then `work` is dropped: its guards
/// resume quiesced containers and remove scratch containers and folders, its run is
/// recorded `interrupted` naming the signal, and the error says which signal (130/143).
/// Then the quiesce journal is replayed once, so it is closed (and anything a guard
/// could not resume is retried) before the process exits.
async fn until_stopped(
    work: impl std::future::Future<Output = anyhow::Result<Outcome>>,
    g: &Globals,
    r: &progress::TermReporter,
) -> anyhow::Result<Outcome> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    let (Ok(mut int), Ok(mut term)) = handlers else {
        anyhow::bail!("cannot install the SIGINT/SIGTERM handlers");
    };
    let stopped = async {
        let sig = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        crate::app::recorder::stopping_because(sig);
        sig
    };
    tokio::pin!(stopped);
    let first = tokio::select! {
        biased;
        sig = &mut stopped => Err(sig),
        r = work => Ok(r),
    };
    let signal = match first {
        Err(sig) => sig,
        // A command with its own handler (restore-test) may have ended on the same
        // signal first: the exit code must still say 130/143.
        Ok(r) => match tokio::select! {
            biased;
            sig = &mut stopped => Some(sig),
            _ = std::future::ready(()) => None,
        } {
            Some(sig) => sig,
            None => return r,
        },
    };
    tracing::warn!("{signal}: stopping; the command in progress was abandoned");
    let replay = app::startup::recover_now(g, r);
    if tokio::time::timeout(std::time::Duration::from_secs(60), replay)
        .await
        .is_err()
    {
        tracing::warn!("{signal}: the quiesce journal replay did not finish within 60 s");
    }
    Err(anyhow::Error::new(crate::exit::Stopped { signal }))
}

async fn dispatch(cli: &Cli, g: &Globals, r: &progress::TermReporter) -> anyhow::Result<Outcome> {
    let json = cli.json;
    match &cli.command {
        Command::Backup {
            jobs,
            init,
            accept_shrink,
        } => {
            let session = locked(g, r).await?;
            let rep = app::backup::run(&session, jobs, *init, accept_shrink, r).await?;
            output::backup(&rep, json);
            Ok(rep.outcome())
        }
        Command::Restore {
            snapshot,
            job,
            target,
            overwrite,
            into_container,
            yes_overwrite_live_database,
            host,
            engine,
            allow_unverified,
            from,
        } => {
            if *yes_overwrite_live_database && into_container.is_none() {
                return Err(crate::exit::usage(
                    "--yes-overwrite-live-database confirms a restore --into-container NAME; without --into-container there is nothing to confirm",
                ));
            }
            if let Some(container) = into_container {
                let args = app::restore::IntoContainerArgs {
                    snapshot,
                    job: job.as_deref(),
                    container,
                    confirmed: *yes_overwrite_live_database,
                    allow_unverified: *allow_unverified,
                    host: host.as_deref(),
                    engine: engine.as_deref(),
                };
                let rep = app::restore::into_container(&reconciled(g, r).await?, args, r).await?;
                output::restore_into(&rep, json);
                return Ok(Outcome::from_failures(!rep.passed));
            }
            let Some(target) = target else {
                return Err(crate::exit::usage(
                    "restore needs --target DIR or --into-container NAME",
                ));
            };
            let args = app::restore::RestoreArgs {
                snapshot,
                job: job.as_deref(),
                target,
                overwrite: *overwrite,
                host: host.as_deref(),
                allow_unverified: *allow_unverified,
                from: from.as_deref(),
            };
            let rep = app::restore::run(&reconciled(g, r).await?, args, r).await?;
            output::restore(&rep, json);
            Ok(Outcome::Ok)
        }
        Command::Copy { to, jobs, init } => {
            let s = locked(g, r).await?;
            let rep = app::copy::run(&s, to.as_deref(), jobs, *init, r).await?;
            output::copy(&rep, json);
            Ok(rep.outcome())
        }
        Command::Snapshots { job } => {
            let list = app::query::snapshots(&reconciled(g, r).await?, job.as_deref())?;
            output::snapshots(&list, json);
            Ok(Outcome::Ok)
        }
        Command::Status => {
            let rep = app::query::status(&reconciled(g, r).await?, r)?;
            output::status(&rep, json);
            Ok(Outcome::Ok)
        }
        Command::Fleet => {
            let rep = app::fleet::run(g).await?;
            output::fleet(&rep, json);
            Ok(rep.outcome())
        }
        Command::Forget { jobs, prune } => {
            let rep = app::maintain::forget(&locked(g, r).await?, jobs, *prune, r).await?;
            output::forget(&rep, json);
            Ok(rep.outcome())
        }
        Command::Check { read_data_subset } => {
            let s = locked(g, r).await?;
            let rep = app::maintain::check(&s, read_data_subset.as_deref(), r).await?;
            output::check(&rep, json);
            Ok(if rep.passed {
                Outcome::Ok
            } else {
                Outcome::Failed
            })
        }
        Command::Daemon => crate::web::daemon(g, r).await,
        Command::Web { listen } => crate::web::standalone(g, listen.as_deref()).await,
        Command::RunDue => {
            let rep = app::daemon::run_due(g, r).await?;
            output::run_due(&rep, json);
            Ok(rep.outcome())
        }
        Command::Schedule {
            action: ScheduleAction::List { count },
        } => {
            let rep = app::schedule::list(g, (*count).clamp(1, 100))?;
            output::schedule(&rep, json);
            Ok(Outcome::Ok)
        }
        Command::RestoreTest {
            jobs,
            from_kit,
            passphrase_file,
            repository,
        } => {
            let rep = match from_kit {
                None => {
                    let s = locked(g, r).await?;
                    app::verify::run_on(&s, jobs, repository.as_deref(), r).await?
                }
                Some(kit) => {
                    kit_exists(kit)?;
                    let pass = passphrase(passphrase_file.as_deref(), false)?;
                    app::kit::restore_test_on(kit, &pass, jobs, repository.as_deref(), r).await?
                }
            };
            output::restore_test(&rep, json);
            Ok(rep.outcome())
        }
        Command::Report {
            month,
            format,
            output,
        } => {
            let s = Session::open(g, r).await?;
            let rep = app::report::run(&s, month, format, output.as_deref(), r).await?;
            output::report(&rep, json);
            Ok(Outcome::Ok)
        }
        Command::Kit {
            action:
                KitAction::Export {
                    output,
                    passphrase_file,
                },
        } => {
            let pass = passphrase(passphrase_file.as_deref(), true)?;
            let rep = app::kit::export(&Session::open(g, r).await?, output, &pass).await?;
            output::kit_export(&rep, json);
            Ok(Outcome::Ok)
        }
        Command::Kit {
            action:
                KitAction::Open {
                    kit,
                    into,
                    passphrase_file,
                },
        } => {
            kit_exists(kit)?;
            let pass = passphrase(passphrase_file.as_deref(), false)?;
            let rep = app::kit::open(kit, into, &pass).await?;
            output::kit_open(&rep, json);
            Ok(Outcome::Ok)
        }
        Command::HashBench { paths } => {
            let rep = app::verify::hash::bench(paths)?;
            println!("{rep}");
            Ok(Outcome::Ok)
        }
        Command::ProxyRules {
            format,
            listen,
            socket,
        } => {
            let text = app::proxy_rules::run(&Session::open(g, r).await?, *format, listen, socket)?;
            print!("{text}");
            Ok(Outcome::Ok)
        }
        Command::Recover => {
            let (s, resumed) = app::startup::locked_recovering(g, r).await?;
            let rep = app::maintain::recover(&s, resumed, r).await?;
            output::recover(&rep, json);
            Ok(rep.outcome())
        }
        Command::Catalog {
            action: CatalogAction::Rebuild,
        } => {
            let rep = app::maintain::rebuild(&mut locked(g, r).await?, r).await?;
            output::rebuild(&rep, json);
            Ok(Outcome::Ok)
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let rep = app::query::config_check(&Session::open(g, r).await?);
            output::config(&rep, json);
            Ok(Outcome::Ok)
        }
    }
}

/// Refuse a missing kit before asking for its passphrase.
fn kit_exists(kit: &std::path::Path) -> anyhow::Result<()> {
    if kit.is_file() {
        Ok(())
    } else {
        Err(crate::exit::usage(format!(
            "no kit file at {}; give the path of a file made by `omk-backup kit export`",
            kit.display()
        )))
    }
}

/// The kit passphrase: from a file, else from the terminal (never argv, never echoed).
fn passphrase(file: Option<&std::path::Path>, confirm: bool) -> anyhow::Result<Secret> {
    let pass = match file {
        Some(f) => read_password_file(f)
            .map_err(|e| crate::exit::usage(format!("--passphrase-file: {e}")))?,
        None => {
            let ask = |prompt: &str| {
                rpassword::prompt_password(prompt).map_err(|e| {
                    crate::exit::usage(format!(
                        "cannot ask for the kit passphrase on the terminal ({e}); pass --passphrase-file FILE"
                    ))
                })
            };
            let first = ask("Kit passphrase: ")?;
            if confirm && ask("Repeat the passphrase: ")? != first {
                return Err(crate::exit::usage(
                    "the two passphrases differ; nothing was written",
                ));
            }
            Secret::new(first)
        }
    };
    if confirm && pass.expose().chars().count() < 10 {
        return Err(crate::exit::usage(
            "the kit passphrase is shorter than 10 characters; the kit holds every secret needed to read your backups, so choose a long passphrase (several words)",
        ));
    }
    Ok(pass)
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = if quiet {
        tracing::Level::ERROR
    } else {
        match verbose {
            0 => tracing::Level::WARN,
            1 => tracing::Level::INFO,
            2 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
