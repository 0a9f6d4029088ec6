//! Fill a catalog with N backup runs (default 100,000) for the `status`/`snapshots`
//! benchmark (scripts/bench-catalog.sh). Retention is realistic: each job keeps its
//! newest 30 snapshots; older ones are marked forgotten, as `forget` would leave them.
//!
//! usage: cargo run --release --example populate_catalog -- CATALOG [RUNS] [JOBS]

use omk_backup::catalog::{Catalog, SnapshotRow};
use omk_backup::domain::{RunStatus, SnapshotState};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: populate_catalog CATALOG [RUNS] [JOBS]")?;
    let runs: i64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let jobs: i64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let mut cat = Catalog::open(std::path::Path::new(&path))?;
    let start = 1_600_000_000_000i64;
    cat.in_transaction(|c| {
        for i in 0..runs {
            let t = start + i * 3_600_000;
            let run = format!("r{i:08}");
            c.start_run(&run, "backup", "daemon", t)?;
            for j in 0..jobs {
                let job = format!("job{j}");
                let step = c.start_step(&run, Some(&job), "backup", t)?;
                let failed = i % 97 == 0;
                if !failed {
                    let keep = i >= runs - 30;
                    c.insert_snapshot(&SnapshotRow {
                        snapshot_id: format!("{:064x}", i * jobs + j),
                        job: job.clone(),
                        run_id: Some(run.clone()),
                        time: t + 1000,
                        bytes: Some(1 << 30),
                        files: Some(10_000),
                        data_added: Some(1 << 20),
                        duration_ms: Some(60_000),
                        state: if keep {
                            SnapshotState::Good
                        } else {
                            SnapshotState::Forgotten
                        },
                        note: None,
                    })?;
                }
                let status = if failed {
                    RunStatus::Failed
                } else {
                    RunStatus::Success
                };
                c.finish_step(
                    step,
                    status,
                    None,
                    failed.then_some("benchmark failure"),
                    t + 60_000,
                )?;
            }
            c.finish_run(&run, RunStatus::Success, None, t + 60_000)?;
        }
        Ok(())
    })?;
    println!("{runs} runs x {jobs} jobs written to {path}");
    Ok(())
}
