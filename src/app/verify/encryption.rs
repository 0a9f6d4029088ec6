//! The encryption proof of a repository, run once per `restore-test`: a random
//! plaintext canary is backed up, shown absent from the raw repository files, restored
//! to prove decryption works, then forgotten; a wrong password must be refused; the
//! `config` file must not be plaintext JSON and every `keys/*` file must be JSON with
//! `"kdf": "scrypt"`. For remote repositories the raw-file checks are reported as
//! skipped with the reason, never as passed silently.

use crate::catalog::Check;
use crate::config::Repository;
use crate::restic::{Restic, ResticError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The tag of canary snapshots (never a job's: `catalog rebuild` ignores them).
pub const CANARY_TAG: &str = "omk:canary";
const CANARY_FILE: &str = "omk-canary";
/// Below this size the whole repository is scanned; above it only the files written by
/// the canary backup (where an unencrypted canary would have to be).
const FULL_SCAN_LIMIT: u64 = 256 << 20;

/// Run every encryption check; `work` is a private folder for the wrong password file.
pub async fn prove(restic: &Restic, repo: &Repository, work: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let canary = match crate::random::hex(32) {
        Ok(c) => c,
        Err(e) => return vec![Check::new("canary-absent", false, e.to_string())],
    };
    let local = repo.local_path();
    let before = SystemTime::now() - Duration::from_secs(2);
    let snap = match restic
        .backup_bytes(CANARY_FILE, &[CANARY_TAG.to_string()], canary.as_bytes())
        .await
    {
        Ok(done) => restic
            .full_id(&done.snapshot_id)
            .await
            .unwrap_or(done.snapshot_id),
        Err(e) => {
            checks.push(Check::new(
                "canary-backup",
                false,
                format!("cannot back up the canary: {e}"),
            ));
            checks.extend(static_checks(local.as_deref()).await);
            checks.push(wrong_password(restic, work).await);
            return checks;
        }
    };

    checks.push(canary_absent(repo, local.as_deref(), &canary, before).await);
    checks.push(canary_restored(restic, &snap, &canary).await);
    checks.push(wrong_password(restic, work).await);
    checks.extend(static_checks(local.as_deref()).await);

    checks.push(forget_canary(restic, &snap).await);
    checks
}

/// The canary is not in the raw repository files (local repositories only).
async fn canary_absent(
    repo: &Repository,
    local: Option<&Path>,
    canary: &str,
    before: SystemTime,
) -> Check {
    match local {
        Some(dir) => {
            let dir = dir.to_path_buf();
            let needle = canary.as_bytes().to_vec();
            match tokio::task::spawn_blocking(move || scan(&dir, &needle, before)).await {
                Ok(Ok(s)) if s.found.is_empty() => Check::new(
                    "canary-absent",
                    s.files > 0,
                    format!(
                        "a random 64-character canary was backed up and is not in the raw repository: searched {} file(s), {} bytes ({}){}",
                        s.files,
                        s.bytes,
                        if s.full {
                            "the whole repository"
                        } else {
                            "every file the canary backup wrote"
                        },
                        if s.files == 0 {
                            "; no file was searched, so nothing is proven"
                        } else {
                            ""
                        }
                    ),
                ),
                Ok(Ok(s)) => Check::new(
                    "canary-absent",
                    false,
                    format!(
                        "THE PLAINTEXT CANARY IS IN THE RAW REPOSITORY FILES ({}): the repository is not encrypted as expected",
                        s.found.join(", ")
                    ),
                ),
                Ok(Err(e)) => Check::new(
                    "canary-absent",
                    false,
                    format!("cannot read the repository files: {e}"),
                ),
                Err(e) => Check::new("canary-absent", false, format!("the scan failed: {e}")),
            }
        }
        None => Check::skipped(
            "canary-absent",
            format!(
                "not checked: {} is a remote repository whose raw files this host cannot read; the canary round trip and the wrong-password refusal were checked",
                repo.url
            ),
        ),
    }
}

/// The canary restores byte for byte: the password decrypts the repository.
async fn canary_restored(restic: &Restic, snap: &str, canary: &str) -> Check {
    match restic.dump_bytes(snap, &format!("/{CANARY_FILE}")).await {
        Ok(b) if b == canary.as_bytes() => Check::new(
            "canary-restored",
            true,
            "the canary restored byte for byte (`restic dump`): the password decrypts the repository",
        ),
        Ok(b) => Check::new(
            "canary-restored",
            false,
            format!(
                "the canary came back different ({} bytes instead of {})",
                b.len(),
                canary.len()
            ),
        ),
        Err(e) => Check::new(
            "canary-restored",
            false,
            format!("cannot restore the canary: {e}"),
        ),
    }
}

/// Forget the canary snapshot (and any a crashed run left behind).
async fn forget_canary(restic: &Restic, snap: &str) -> Check {
    let mut ids = vec![snap.to_string()];
    if let Ok(left) = restic.snapshots(&[CANARY_TAG.to_string()]).await {
        ids.extend(left.into_iter().map(|s| s.id).filter(|id| id != snap));
    }
    match restic.forget_ids(&ids).await {
        Ok(()) => Check::new(
            "canary-forgotten",
            true,
            format!("canary snapshot {} forgotten", &snap[..8.min(snap.len())]),
        ),
        Err(e) => Check::new(
            "canary-forgotten",
            false,
            format!(
                "cannot forget the canary snapshot {snap}: {e}; remove it with `restic forget {snap}`"
            ),
        ),
    }
}

async fn wrong_password(restic: &Restic, work: &Path) -> Check {
    let (name, wrong) = match (crate::random::hex(4), crate::random::hex(16)) {
        (Ok(n), Ok(w)) => (n, w),
        (Err(e), _) | (_, Err(e)) => {
            return Check::new("wrong-password-refused", false, e.to_string());
        }
    };
    let file = work.join(format!("wrong-password-{name}"));
    if let Err(e) = write_private(&file, format!("omk-wrong-{wrong}\n").as_bytes()) {
        return Check::new(
            "wrong-password-refused",
            false,
            format!(
                "cannot write a temporary password file in {}: {e}",
                work.display()
            ),
        );
    }
    let res = restic.with_password_file(&file).open().await;
    let _ = std::fs::remove_file(&file);
    match res {
        Err(ResticError::WrongPassword { .. }) => Check::new(
            "wrong-password-refused",
            true,
            "restic refused a random wrong password (\"wrong password or no key found\")",
        ),
        Ok(()) => Check::new(
            "wrong-password-refused",
            false,
            "THE REPOSITORY OPENED WITH A RANDOM WRONG PASSWORD",
        ),
        Err(e) => Check::new(
            "wrong-password-refused",
            false,
            format!(
                "restic failed with a wrong password, but not with the wrong-password error: {e}"
            ),
        ),
    }
}

/// Write a file only its owner may read.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

async fn static_checks(local: Option<&Path>) -> Vec<Check> {
    let Some(dir) = local else {
        return vec![
            Check::skipped(
                "config-encrypted",
                "not checked: remote repository (raw files not readable from here)",
            ),
            Check::skipped(
                "keys-scrypt",
                "not checked: remote repository (raw files not readable from here)",
            ),
        ];
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || vec![config_check(&dir), keys_check(&dir)])
        .await
        .unwrap_or_default()
}

fn config_check(dir: &Path) -> Check {
    match std::fs::read(dir.join("config")) {
        Ok(b) => {
            let json = serde_json::from_slice::<serde_json::Value>(&b).is_ok();
            let plain = memchr::memmem::find(&b, b"chunker_polynomial").is_some();
            Check::new(
                "config-encrypted",
                !json && !plain,
                if json || plain {
                    "the repository's config file is plaintext JSON".to_string()
                } else {
                    format!("config is {} bytes of ciphertext, not JSON", b.len())
                },
            )
        }
        Err(e) => Check::new(
            "config-encrypted",
            false,
            format!("cannot read {}: {e}", dir.join("config").display()),
        ),
    }
}

fn keys_check(dir: &Path) -> Check {
    let keys = dir.join("keys");
    let entries = match std::fs::read_dir(&keys) {
        Ok(e) => e,
        Err(e) => {
            return Check::new(
                "keys-scrypt",
                false,
                format!("cannot read {}: {e}", keys.display()),
            );
        }
    };
    let mut ok = 0;
    let mut bad = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let kdf = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("kdf").and_then(|k| k.as_str()).map(str::to_string));
        match kdf.as_deref() {
            Some("scrypt") => ok += 1,
            Some(other) => bad.push(format!("{name} (kdf \"{other}\")")),
            None => bad.push(format!("{name} (no kdf field)")),
        }
    }
    Check::new(
        "keys-scrypt",
        ok > 0 && bad.is_empty(),
        if ok > 0 && bad.is_empty() {
            format!(
                "{ok} key file(s), each JSON with \"kdf\": \"scrypt\" (the master key inside is encrypted)"
            )
        } else if bad.is_empty() {
            "no key files found".to_string()
        } else {
            format!("key files without an scrypt KDF: {}", bad.join(", "))
        },
    )
}

struct Scan {
    files: u64,
    bytes: u64,
    full: bool,
    found: Vec<String>,
}

/// Search the repository's raw files for `needle`: all of them when the repository is
/// small, else those modified since `since`.
fn scan(dir: &Path, needle: &[u8], since: SystemTime) -> std::io::Result<Scan> {
    let all = super::hash::walk_files(dir)?;
    let mut sized: Vec<(PathBuf, u64, SystemTime)> = Vec::new();
    let mut total = 0;
    for p in all {
        let m = std::fs::metadata(&p)?;
        total += m.len();
        sized.push((p, m.len(), m.modified().unwrap_or(SystemTime::now())));
    }
    let full = total <= FULL_SCAN_LIMIT;
    let finder = memchr::memmem::Finder::new(needle);
    let mut s = Scan {
        files: 0,
        bytes: 0,
        full,
        found: Vec::new(),
    };
    for (p, len, mtime) in sized {
        if !full && mtime < since {
            continue;
        }
        let b = std::fs::read(&p)?;
        s.files += 1;
        s.bytes += len;
        if finder.find(&b).is_some() {
            s.found
                .push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
        }
    }
    Ok(s)
}
