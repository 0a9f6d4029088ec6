//! The `omk-backup` binary: parse the command line, run it, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    omk_backup::cli::main()
}
