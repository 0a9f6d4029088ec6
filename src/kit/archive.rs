//! The kit's payload: a flat archive of named files with their Unix modes.
//!
//! `"OMKKITP1"`, then per entry: name length (u16 LE), name (UTF-8, relative, no `..`),
//! mode (u32 LE), size (u64 LE), bytes. Names are validated on read so a crafted kit
//! cannot write outside the folder it is opened into.

use super::KitError;
use std::path::{Component, Path};

const MAGIC: &[u8; 8] = b"OMKKITP1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    pub entries: Vec<Entry>,
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

impl Archive {
    pub fn add(&mut self, name: &str, mode: u32, bytes: Vec<u8>) {
        self.entries.push(Entry {
            name: name.to_string(),
            mode,
            bytes,
        });
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for e in &self.entries {
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(e.name.as_bytes());
            out.extend_from_slice(&e.mode.to_le_bytes());
            out.extend_from_slice(&(e.bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&e.bytes);
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Archive, KitError> {
        let bad = |why: &str| KitError::Malformed(why.to_string());
        if b.len() < 8 || &b[..8] != MAGIC {
            return Err(bad("unknown payload format"));
        }
        let mut at = 8;
        let mut a = Archive::default();
        while at < b.len() {
            let mut take = |n: usize| -> Result<&[u8], KitError> {
                let s = b
                    .get(at..at + n)
                    .ok_or_else(|| bad("an entry runs past the end"))?;
                at += n;
                Ok(s)
            };
            let len = take(2)?;
            let len = u16::from_le_bytes([len[0], len[1]]) as usize;
            let name = std::str::from_utf8(take(len)?)
                .map_err(|_| bad("a file name is not UTF-8"))?
                .to_string();
            if !safe_name(&name) {
                return Err(bad(&format!("unsafe file name {name:?}")));
            }
            let m = take(4)?;
            let mode = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
            let s = take(8)?;
            let size = u64::from_le_bytes(s.try_into().unwrap_or([0; 8])) as usize;
            let bytes = take(size)?.to_vec();
            a.entries.push(Entry { name, mode, bytes });
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_unsafe_names() {
        let mut a = Archive::default();
        a.add("omk-backup.toml", 0o600, b"x = 1".to_vec());
        a.add("secrets/restic_password", 0o600, b"pw\n".to_vec());
        assert_eq!(Archive::from_bytes(&a.to_bytes()).unwrap(), a);
        let mut evil = Archive::default();
        evil.add("../etc/passwd", 0o644, vec![]);
        assert!(Archive::from_bytes(&evil.to_bytes()).is_err());
    }
}
