//! The recovery kit's sealed format: the only module that does cryptography.
//!
//! A kit is a small versioned header followed by the payload sealed with
//! XChaCha20-Poly1305 in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár):
//! the payload is cut into 64 KiB chunks, chunk `i` is sealed under the nonce
//! `prefix (19 random bytes) ‖ i (u32, big endian) ‖ last (1 byte: 1 on the final chunk)`,
//! so reordering, dropping, truncating or extending chunks fails authentication. The key
//! is Argon2id(passphrase, salt) with the parameters stored in the header; the whole
//! header is the associated data of every chunk, so it cannot be altered either. The
//! header also holds SHA-256 of a second Argon2 output block (a passphrase verifier),
//! which lets `kit open` say "wrong passphrase" rather than "damaged": it gives an
//! attacker nothing the first chunk does not already give.
//!
//! ```text
//! offset size
//!  0      7   magic "OMK-KIT"
//!  7      1   format version (1)
//!  8      4   argon2 m_cost (KiB, u32 LE)
//! 12      4   argon2 t_cost
//! 16      4   argon2 p_cost
//! 20     16   salt
//! 36     19   STREAM nonce prefix
//! 55      4   chunk size (u32 LE)
//! 59     32   SHA-256(verifier block)
//! 91          chunks: chunk ‖ 16-byte tag, the last one shorter (at least the tag)
//! ```
//!
//! The payload is a simple archive of files (see [`Archive`]).

mod archive;

pub use archive::{Archive, Entry};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 7] = b"OMK-KIT";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 91;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (OWASP's recommended minimum is 19 MiB/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

/// Why a kit cannot be opened (or sealed). Each says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KitError {
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
    #[error("this is not an omk-backup recovery kit (no OMK-KIT header)")]
    NotAKit,
    #[error(
        "this kit uses format version {0}, which this omk-backup cannot read; use a newer omk-backup"
    )]
    UnsupportedVersion(u8),
    #[error(
        "the kit's header is damaged (implausible key-derivation parameters); use another copy of the kit"
    )]
    BadHeader,
    #[error(
        "wrong passphrase (or the kit's header was altered): the kit was not opened; try again, or use another copy"
    )]
    WrongPassphrase,
    #[error(
        "the kit is truncated: it ends before its final chunk; use another (complete) copy of the kit"
    )]
    Truncated,
    #[error(
        "the kit is damaged or was tampered with: chunk {chunk} of {chunks} fails authentication; nothing was written — use another copy of the kit"
    )]
    Tampered { chunk: usize, chunks: usize },
    #[error("the kit's contents are malformed: {0}")]
    Malformed(String),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("encryption failed")]
    Seal,
}

/// The most memory a kit may ask Argon2 for (1 GiB; we seal with 64 MiB).
const MAX_M_COST_KIB: u32 = 1024 * 1024;
/// The most Argon2 passes a kit may ask for (we seal with 3).
const MAX_T_COST: u32 = 16;

struct Keys {
    cipher: XChaCha20Poly1305,
    verifier: [u8; 32],
}

fn derive(pass: &[u8], salt: &[u8], p: KdfParams) -> Result<Keys, KitError> {
    let params = argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(64))
        .map_err(|e| KitError::Kdf(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 64];
    a.hash_password_into(pass, salt, &mut out)
        .map_err(|e| KitError::Kdf(e.to_string()))?;
    let cipher =
        XChaCha20Poly1305::new_from_slice(&out[..32]).map_err(|e| KitError::Kdf(e.to_string()))?;
    let verifier: [u8; 32] = Sha256::digest(&out[32..]).into();
    zeroize::Zeroize::zeroize(&mut out);
    Ok(Keys { cipher, verifier })
}

fn nonce(prefix: &[u8], i: usize, last: bool) -> Result<XNonce, KitError> {
    let counter = u32::try_from(i).map_err(|_| KitError::Malformed("too many chunks".into()))?;
    let mut n = [0u8; 24];
    n[..19].copy_from_slice(prefix);
    n[19..23].copy_from_slice(&counter.to_be_bytes());
    n[23] = u8::from(last);
    Ok(XNonce::from(n))
}

/// Seal `plaintext` under `passphrase`.
pub fn seal(plaintext: &[u8], passphrase: &[u8], p: KdfParams) -> Result<Vec<u8>, KitError> {
    let salt: [u8; 16] = crate::random::bytes()?;
    let prefix: [u8; 19] = crate::random::bytes()?;
    let keys = derive(passphrase, &salt, p)?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(VERSION);
    header.extend_from_slice(&p.m_cost.to_le_bytes());
    header.extend_from_slice(&p.t_cost.to_le_bytes());
    header.extend_from_slice(&p.p_cost.to_le_bytes());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&prefix);
    header.extend_from_slice(&(CHUNK as u32).to_le_bytes());
    header.extend_from_slice(&keys.verifier);
    debug_assert_eq!(header.len(), HEADER_LEN);
    let mut out = header.clone();
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(CHUNK).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        let n = nonce(&prefix, i, i + 1 == chunks.len())?;
        let sealed = keys
            .cipher
            .encrypt(
                &n,
                Payload {
                    msg: c,
                    aad: &header,
                },
            )
            .map_err(|_| KitError::Seal)?;
        out.extend_from_slice(&sealed);
    }
    Ok(out)
}

/// Open a sealed kit, refusing a wrong passphrase, tampering and truncation.
pub fn open(sealed: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, KitError> {
    if sealed.len() < 8 || &sealed[..7] != MAGIC {
        return Err(KitError::NotAKit);
    }
    if sealed[7] != VERSION {
        return Err(KitError::UnsupportedVersion(sealed[7]));
    }
    if sealed.len() < HEADER_LEN {
        return Err(KitError::Truncated);
    }
    let header = &sealed[..HEADER_LEN];
    let u32_at =
        |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    let p = KdfParams {
        m_cost: u32_at(8),
        t_cost: u32_at(12),
        p_cost: u32_at(16),
    };
    let chunk = u32_at(55) as usize;
    // Refuse parameters that would make opening a denial of service: a hostile kit
    // must not make a small machine allocate gigabytes or spin for minutes.
    if p.m_cost > MAX_M_COST_KIB
        || p.t_cost > MAX_T_COST
        || p.p_cost > 16
        || !(1024..=1 << 24).contains(&chunk)
    {
        return Err(KitError::BadHeader);
    }
    let keys = derive(passphrase, &header[20..36], p)?;
    if keys.verifier[..] != header[59..91] {
        return Err(KitError::WrongPassphrase);
    }
    let prefix = &header[36..55];
    let body = &sealed[HEADER_LEN..];
    if body.len() < TAG {
        return Err(KitError::Truncated);
    }
    let pieces: Vec<&[u8]> = body.chunks(chunk + TAG).collect();
    let count = pieces.len();
    let mut out = Vec::with_capacity(body.len());
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == count;
        let open_with = |flag: bool| -> Result<Vec<u8>, KitError> {
            keys.cipher
                .decrypt(
                    &nonce(prefix, i, flag)?,
                    Payload {
                        msg: piece,
                        aad: header,
                    },
                )
                .map_err(|_| KitError::Tampered {
                    chunk: i + 1,
                    chunks: count,
                })
        };
        match open_with(last) {
            Ok(pt) => out.extend_from_slice(&pt),
            Err(e) => {
                // A valid non-final chunk at the end: the rest was cut off.
                if last && open_with(false).is_ok() {
                    return Err(KitError::Truncated);
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[test]
    fn hostile_kdf_parameters_are_refused_before_any_work() {
        let kit = seal(b"x", b"pw", fast()).unwrap();
        for (at, value) in [(8, MAX_M_COST_KIB + 1), (12, MAX_T_COST + 1), (16, 17)] {
            let mut bad = kit.clone();
            bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            let t = std::time::Instant::now();
            assert_eq!(open(&bad, b"pw"), Err(KitError::BadHeader), "field at {at}");
            assert!(
                t.elapsed() < std::time::Duration::from_secs(1),
                "field at {at}: derived anyway"
            );
        }
    }

    #[test]
    fn roundtrip_sizes() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let kit = seal(&data, b"correct horse", fast()).unwrap();
            assert_eq!(open(&kit, b"correct horse").unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn refuses_wrong_passphrase_tamper_truncation() {
        let data = vec![7u8; 2 * CHUNK + 100];
        let kit = seal(&data, b"pass phrase", fast()).unwrap();
        assert_eq!(open(&kit, b"pass phrasE"), Err(KitError::WrongPassphrase));
        // A flipped byte anywhere in the body.
        for at in [HEADER_LEN, HEADER_LEN + CHUNK + 20, kit.len() - 1] {
            let mut t = kit.clone();
            t[at] ^= 1;
            assert!(
                matches!(open(&t, b"pass phrase"), Err(KitError::Tampered { .. })),
                "{at}"
            );
        }
        // A flipped header byte (the salt): the key changes, so it reads as wrong.
        let mut t = kit.clone();
        t[25] ^= 1;
        assert_eq!(open(&t, b"pass phrase"), Err(KitError::WrongPassphrase));
        // Cut at a chunk boundary: every remaining chunk is valid, the final one missing.
        let cut = &kit[..HEADER_LEN + 2 * (CHUNK + TAG)];
        assert_eq!(open(cut, b"pass phrase"), Err(KitError::Truncated));
        let cut = &kit[..kit.len() - 10];
        assert!(open(cut, b"pass phrase").is_err());
        assert_eq!(open(b"hello", b"x"), Err(KitError::NotAKit));
    }
}
