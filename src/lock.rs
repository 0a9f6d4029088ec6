//! The run lock: one omk-backup run at a time per catalog (and so per repository).
//!
//! An advisory `flock` on `<catalog>.lock`, held for the process's life and released by
//! the kernel when the process dies, however it dies — so a lock can never be stale.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Another process holds the lock: exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("another omk-backup run holds the lock {path}{}; wait for it to finish (or stop it) and try again", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
pub struct LockHeld {
    pub path: PathBuf,
    pub holder: Option<u32>,
}

/// The held lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file that guards a catalog.
pub fn lock_path(catalog: &Path) -> PathBuf {
    let mut name = catalog.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Take the lock without waiting; another holder is a [`LockHeld`] error (exit 3).
pub fn acquire(catalog: &Path) -> anyhow::Result<RunLock> {
    match try_acquire(catalog)? {
        Ok(lock) => Ok(lock),
        Err(held) => Err(held.into()),
    }
}

/// Take the lock without waiting, or say who holds it. Unlike [`acquire`], a busy lock
/// is not an error: read-only commands use this to reconcile only when nobody runs
/// (one atomic `flock`, no check-then-take race).
pub fn try_acquire(catalog: &Path) -> anyhow::Result<Result<RunLock, LockHeld>> {
    let path = lock_path(catalog);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the lock file {}: {e}; check that its folder exists and is writable",
                path.display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Ok(Err(LockHeld {
                path,
                holder: text.trim().parse().ok(),
            }));
        }
        Err(TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display());
        }
    }
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(Ok(RunLock { _file: file, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let cat = dir.path().join("c.db");
        let held = acquire(&cat).unwrap();
        let err = acquire(&cat).unwrap_err();
        let held_err = err.downcast_ref::<LockHeld>().expect("LockHeld");
        assert_eq!(held_err.holder, Some(std::process::id()));
        assert!(try_acquire(&cat).unwrap().is_err(), "busy is not an error");
        drop(held);
        assert!(try_acquire(&cat).unwrap().is_ok());
    }
}
