//! Randomness from the operating system: the only module that calls `getrandom`.
//!
//! A failure is an error, never silently zero bytes: a recovery kit sealed with a zero
//! salt and nonce prefix, or a scratch database with a predictable password, would look
//! fine and be weak.

/// The operating system's random source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the operating system's random number generator failed ({0}); nothing was written — check /dev/urandom and the kernel's getrandom support"
)]
pub struct RandomError(String);

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| RandomError(e.to_string()))?;
    Ok(b)
}

/// `n` random bytes as lowercase hex (`2n` characters).
pub fn hex(n: usize) -> Result<String, RandomError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| RandomError(e.to_string()))?;
    Ok(::hex::encode(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_not_all_zero_and_differ() {
        let a: [u8; 32] = super::bytes().unwrap();
        let b: [u8; 32] = super::bytes().unwrap();
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, b);
        let h = super::hex(8).unwrap();
        assert_eq!(h.len(), 16);
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
