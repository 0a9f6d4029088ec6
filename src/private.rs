//! Files that hold state or evidence (the catalog and its WAL, reports, the metrics
//! textfile) are created without world access: the catalog 0600, what a monitoring group
//! may read 0640. Files that already exist lose their world bits.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The catalog and everything beside it that only omk-backup reads.
pub const OWNER_ONLY: u32 = 0o600;
/// Reports and metrics: readable by a group (node_exporter, a web server), not by all.
pub const GROUP_READ: u32 = 0o640;

/// Create `path` empty with `mode` if it does not exist; if it does, drop its world bits.
pub fn ensure(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => strip_world(path),
        Err(e) => Err(e),
    }
}

/// Remove the "other" permission bits of an existing file (a missing file is fine).
pub fn strip_world(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o007 != 0 => std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(m.permissions().mode() & !0o007 & 0o7777),
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Write `bytes` to `path` (created with `mode`, or truncated and stripped of world bits).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    strip_world(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_have_no_world_bits_and_old_ones_lose_them() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        ensure(&a, OWNER_ONLY).unwrap();
        assert_eq!(mode(&a) & 0o077, 0);
        let b = d.path().join("b");
        std::fs::write(&b, "x").unwrap();
        std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure(&b, OWNER_ONLY).unwrap();
        assert_eq!(mode(&b), 0o640);
        write(&b, b"y", GROUP_READ).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"y");
        let c = d.path().join("c");
        write(&c, b"z", GROUP_READ).unwrap();
        assert_eq!(mode(&c) & 0o007, 0);
    }
}
