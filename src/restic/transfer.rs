//! A repository's [`Transfer`] settings as restic's global flags: `--limit-upload`,
//! `--limit-download` (KiB/s), `--compression` and `--cacert`. None of them is a secret,
//! so they may go on argv.

use crate::config::Transfer;

/// restic's global flags for `t`, in a fixed order.
pub(super) fn transfer_flags(t: &Transfer) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(k) = t.limit_upload {
        f.extend(["--limit-upload".to_string(), k.to_string()]);
    }
    if let Some(k) = t.limit_download {
        f.extend(["--limit-download".to_string(), k.to_string()]);
    }
    if let Some(c) = t.compression {
        f.extend(["--compression".to_string(), c.as_str().to_string()]);
    }
    if let Some(p) = &t.cacert {
        f.extend(["--cacert".to_string(), p.display().to_string()]);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;

    #[test]
    fn no_settings_no_flags_and_every_setting_its_flag() {
        assert!(transfer_flags(&Transfer::default()).is_empty());
        let t = Transfer {
            limit_upload: Some(512),
            limit_download: Some(2048),
            compression: Some(Compression::Max),
            cacert: Some("/etc/ca.pem".into()),
        };
        assert_eq!(
            transfer_flags(&t),
            [
                "--limit-upload",
                "512",
                "--limit-download",
                "2048",
                "--compression",
                "max",
                "--cacert",
                "/etc/ca.pem"
            ]
        );
    }
}
