//! The raw-file half of the encryption proof, on bytes wherever they came from (a local
//! folder or [`crate::remote`] over the wire): the canary search, `config` is not
//! plaintext JSON, every `keys/*` file is JSON with `"kdf": "scrypt"`; and the remote
//! flow (list before the canary backup, list after, read what it wrote).

use crate::catalog::Check;
use crate::remote::RawReader;
use std::collections::BTreeSet;
use std::path::Path;

/// The files of a remote repository before the canary backup (or why not).
pub type Before = Result<BTreeSet<String>, String>;

pub async fn list_before(reader: &RawReader) -> Before {
    reader
        .list()
        .await
        .map(|v| v.into_iter().collect())
        .map_err(|e| e.to_string())
}

/// The canary is in none of the files the canary backup wrote (read over the wire).
/// Returns the check and the listing after the backup (for the static checks).
pub async fn canary_absent_remote(
    reader: &RawReader,
    before: &Before,
    canary: &str,
    work: &Path,
) -> (Check, Option<Vec<String>>) {
    let how = reader.describe();
    let fail = |d: String| Check::new("canary-absent", false, d);
    let before = match before {
        Ok(b) => b,
        Err(e) => {
            return (
                fail(format!("cannot list the raw files ({how}): {e}")),
                None,
            );
        }
    };
    let after = match reader.list().await {
        Ok(a) => a,
        Err(e) => {
            return (
                fail(format!("cannot list the raw files ({how}): {e}")),
                None,
            );
        }
    };
    let new: Vec<String> = after
        .iter()
        .filter(|n| !before.contains(*n) && *n != "config")
        .cloned()
        .collect();
    if new.is_empty() {
        let d =
            format!("no raw file appeared after the canary backup ({how}), so nothing is proven");
        return (fail(d), Some(after));
    }
    let files = match reader.read(&new, work).await {
        Ok(f) => f,
        Err(e) => {
            return (
                fail(format!("cannot read the raw files ({how}): {e}")),
                Some(after),
            );
        }
    };
    let finder = memchr::memmem::Finder::new(canary.as_bytes());
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let found: Vec<&str> = files
        .iter()
        .filter(|(_, b)| finder.find(b).is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    let check = if found.is_empty() {
        Check::new(
            "canary-absent",
            true,
            format!(
                "a random 64-character canary was backed up and is not in the raw repository files read over the wire ({how}): searched {} file(s), {bytes} bytes (every file the canary backup wrote: {})",
                files.len(),
                kinds(&new)
            ),
        )
    } else {
        fail(format!(
            "THE PLAINTEXT CANARY IS IN THE RAW REPOSITORY FILES ({}): the repository is not encrypted as expected",
            found.join(", ")
        ))
    };
    (check, Some(after))
}

/// `config` and `keys/*` of a remote repository, read over the wire.
pub async fn static_remote(
    reader: &RawReader,
    listing: Option<Vec<String>>,
    work: &Path,
) -> Vec<Check> {
    let how = reader.describe();
    let listing = match listing {
        Some(l) => Ok(l),
        None => reader.list().await.map_err(|e| e.to_string()),
    };
    let keys: Vec<String> = match &listing {
        Ok(l) => l
            .iter()
            .filter(|n| n.starts_with("keys/"))
            .cloned()
            .collect(),
        Err(_) => Vec::new(),
    };
    let config = reader
        .read(&["config".to_string()], work)
        .await
        .map_err(|e| format!("cannot read config ({how}): {e}"))
        .and_then(|mut v| {
            v.pop()
                .map(|(_, b)| b)
                .ok_or_else(|| "config: no data".into())
        });
    let keys = match listing {
        Err(e) => Err(format!("cannot list keys/ ({how}): {e}")),
        Ok(_) => reader
            .read(&keys, work)
            .await
            .map_err(|e| format!("cannot read keys/ ({how}): {e}")),
    };
    vec![config_check(config), keys_check(keys)]
}

/// The folders the new files are in, e.g. "data, index, snapshots".
fn kinds(names: &[String]) -> String {
    let k: BTreeSet<&str> = names
        .iter()
        .map(|n| n.split('/').next().unwrap_or(n))
        .collect();
    k.into_iter().collect::<Vec<_>>().join(", ")
}

/// `config` must be ciphertext, not restic's plaintext JSON.
pub fn config_check(bytes: Result<Vec<u8>, String>) -> Check {
    match bytes {
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
        Err(e) => Check::new("config-encrypted", false, e),
    }
}

/// Every key file is JSON naming scrypt as its KDF (the master key inside is encrypted).
pub fn keys_check(files: Result<Vec<(String, Vec<u8>)>, String>) -> Check {
    let files = match files {
        Ok(f) => f,
        Err(e) => return Check::new("keys-scrypt", false, e),
    };
    let mut ok = 0;
    let mut bad = Vec::new();
    for (name, b) in files {
        let kdf = serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v.get("kdf").and_then(|k| k.as_str()).map(str::to_string));
        let name = name.rsplit('/').next().unwrap_or(&name).to_string();
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
