//! Queries over a repository shared by several hosts: every host's snapshots (for
//! `fleet` and the maintenance claim — never for retention or restore), and retention
//! of this host's small omk records (attestations, claims) by tag set.

use super::{ForgetGroup, Restic, ResticError, Snapshot, parse_json};

impl Restic {
    /// Every host's snapshots carrying every tag given (a shared repository's view for
    /// `fleet` and the maintenance claim; never used for retention or restore).
    pub async fn snapshots_all_hosts(&self, tags: &[String]) -> Result<Vec<Snapshot>, ResticError> {
        let mut args = vec!["snapshots", "--json"];
        let joined = tags.join(",");
        if !tags.is_empty() {
            args.push("--tag");
            args.push(&joined);
        }
        let out = self.run_unlocking(&args).await?;
        parse_json(&out, "snapshots --json")
    }

    /// Keep the newest `keep_last` of this host's snapshots with `tag` in each group of
    /// identical tag sets (`--group-by host,tags`); no prune. Returns the removed ids.
    pub async fn forget_keep_last_per_tags(
        &self,
        tag: &str,
        keep_last: u32,
    ) -> Result<Vec<String>, ResticError> {
        let keep = keep_last.max(1).to_string();
        let args = [
            "forget",
            "--json",
            "--host",
            &self.host,
            "--tag",
            tag,
            "--group-by",
            "host,tags",
            "--keep-last",
            &keep,
        ];
        let out = self.run_unlocking(&args).await?;
        // Nothing matched the tag: restic prints nothing at all.
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let groups: Vec<ForgetGroup> = parse_json(&out, "forget --json")?;
        Ok(groups
            .into_iter()
            .flat_map(|g| g.remove.unwrap_or_default())
            .map(|s| s.id)
            .collect())
    }
}
