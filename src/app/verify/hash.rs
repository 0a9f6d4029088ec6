//! Parallel SHA-256 of many files: one worker per core pulls the next file from a shared
//! counter, each with its own 1 MiB read buffer. Big files and many small ones both keep
//! every core busy; results come back in the input's order.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const BUF: usize = 1 << 20;

/// SHA-256 of one file, reading through `buf`.
pub fn hash_file(path: &Path, buf: &mut [u8]) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// How many hashing threads to use: every core the process may run on.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(1)
}

/// Hash every path on all cores; result `i` belongs to `paths[i]`.
pub fn hash_all(paths: &[PathBuf]) -> Vec<std::io::Result<[u8; 32]>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<std::io::Result<[u8; 32]>>>> =
        paths.iter().map(|_| Mutex::new(None)).collect();
    let threads = workers().min(paths.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; BUF];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    let r = hash_file(p, &mut buf);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(std::io::Error::other("hashing thread failed")))
        })
        .collect()
}

/// Every regular file under `root` (symlinks are not followed), sorted.
pub fn walk_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d)?;
        if meta.is_file() {
            out.push(d);
            continue;
        }
        if !meta.is_dir() {
            continue;
        }
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Hash every file under `roots` and say how fast (for `scripts/bench-verify.sh`).
pub fn bench(roots: &[PathBuf]) -> anyhow::Result<String> {
    let mut files = Vec::new();
    for r in roots {
        files.extend(
            walk_files(r).map_err(|e| anyhow::anyhow!("cannot list {}: {e}", r.display()))?,
        );
    }
    let bytes: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let start = std::time::Instant::now();
    let results = hash_all(&files);
    let secs = start.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        anyhow::bail!("cannot hash every file: {e}");
    }
    Ok(format!(
        "files {} bytes {bytes} seconds {secs:.3} MB/s {:.1} threads {}",
        files.len(),
        bytes as f64 / 1e6 / secs.max(1e-9),
        workers()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_digests_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..20 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, vec![b'a'; i * 100_000]).unwrap();
            paths.push(p);
        }
        paths.push(dir.path().join("missing"));
        let got = hash_all(&paths);
        for (i, r) in got.iter().take(20).enumerate() {
            let want: [u8; 32] = Sha256::digest(vec![b'a'; i * 100_000]).into();
            assert_eq!(r.as_ref().unwrap(), &want, "file {i}");
        }
        assert!(got[20].is_err());
        assert_eq!(walk_files(dir.path()).unwrap().len(), 20);
    }
}
