//! `rclone:` repositories through a real rclone (restic starts `rclone serve restic
//! --stdio` itself) on the local-disk remote `omk-local` of the harness's rclone config
//! (scripts/env/11-rclone.sh): the full cycle on restic 0.14 and 0.18, the encryption
//! proof read with `rclone lsf`/`rclone cat`.

use crate::remote_common::*;
use crate::util::*;

#[test]
fn rclone_repository_full_cycle_with_the_encryption_proof_over_the_wire() {
    for (ver, restic) in restics() {
        full_cycle(ver, &restic, &Backend::rclone());
    }
}
