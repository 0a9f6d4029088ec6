//! `[web]`: the dashboard's listen address, whether it may act (back up / restore-test
//! now), which proxies' `Remote-User` headers it trusts, the basic-auth password file
//! and the RPO target the overview measures against.

use super::error::ConfigError;
use super::raw::RawWeb;
use super::{Validator, parse_duration};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use toml::Spanned;

/// The RPO target when `[web] rpo_target` is not set: a daily backup plus slack.
pub const DEFAULT_RPO_TARGET: std::time::Duration = std::time::Duration::from_secs(26 * 3600);

/// A network in CIDR notation (`172.20.0.0/16`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 peer counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `[web]` as validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// Where the daemon serves the dashboard; `None`: it does not.
    pub listen: Option<SocketAddr>,
    /// Allow "back up now" and "restore-test now" (default false).
    pub actions: bool,
    /// With a trusted proxy: actions need this group in `Remote-Groups`.
    pub actions_group: Option<String>,
    pub trusted_proxies: Vec<Cidr>,
    /// HTTP basic auth: the password on the file's first line (any user name).
    pub password_file: Option<PathBuf>,
    pub rpo_target: std::time::Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: None,
            actions: false,
            actions_group: None,
            trusted_proxies: Vec::new(),
            password_file: None,
            rpo_target: DEFAULT_RPO_TARGET,
        }
    }
}

impl Validator<'_> {
    pub(super) fn web(&self, raw: Option<RawWeb>) -> Result<WebConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(WebConfig::default());
        };
        let listen = match &raw.listen {
            Some(l) => Some(parse_listen(l.get_ref()).ok_or_else(|| {
                self.err(l, format!("web.listen: `{}` is not an address:port", l.get_ref()))
                    .hint("e.g. \"127.0.0.1:8427\" (localhost only) or \"0.0.0.0:8427\" behind a trusted proxy")
            })?),
            None => None,
        };
        let mut trusted_proxies = Vec::new();
        for p in raw.trusted_proxies.iter().flatten() {
            trusted_proxies.push(Cidr::parse(p.get_ref()).ok_or_else(|| {
                self.err(p, format!("web.trusted_proxies: `{}` is not an address or CIDR", p.get_ref()))
                    .hint("e.g. \"172.20.0.0/16\" (the Docker network Traefik reaches us on) or \"10.0.0.5\"")
            })?);
        }
        let password_file = match &raw.password_file {
            Some(f) => Some(self.web_password_file(f)?),
            None => None,
        };
        let rpo_target = match &raw.rpo_target {
            Some(t) => parse_duration(t.get_ref())
                .filter(|d| d.as_secs() > 0)
                .ok_or_else(|| {
                    self.err(
                        t,
                        format!("web.rpo_target: `{}` is not a duration", t.get_ref()),
                    )
                    .hint("write a number with a unit: 26h, 2d, 90m")
                })?,
            None => DEFAULT_RPO_TARGET,
        };
        let actions_group = match &raw.actions_group {
            Some(g) if g.get_ref().trim().is_empty() || g.get_ref().contains(',') => {
                return Err(self
                    .err(g, "web.actions_group must be one group name")
                    .hint("the group (as Authelia sends it in Remote-Groups) allowed to start backups, e.g. \"admins\""));
            }
            Some(g) => Some(g.get_ref().trim().to_string()),
            None => None,
        };
        Ok(WebConfig {
            listen,
            actions: raw.actions.unwrap_or(false),
            actions_group,
            trusted_proxies,
            password_file,
            rpo_target,
        })
    }

    fn web_password_file(&self, f: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        let path = self.resolve(f.get_ref());
        crate::secret::read_password_file(&path).map_err(|e| {
            self.err(f, format!("web.password_file: {e}"))
                .hint("the file must be readable by this user and hold the dashboard password on its first line")
        })?;
        Ok(path)
    }
}

/// `host:port`, `[v6]:port`; `localhost:port` means 127.0.0.1.
pub fn parse_listen(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix("localhost:") {
        return Some(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?)));
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("172.20.0.0/16").unwrap();
        assert!(n.contains("172.20.3.4".parse().unwrap()));
        assert!(!n.contains("172.21.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:172.20.0.9".parse().unwrap()));
        let one = Cidr::parse("10.0.0.5").unwrap();
        assert!(one.contains("10.0.0.5".parse().unwrap()));
        assert!(!one.contains("10.0.0.6".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen("localhost:8427"),
            "127.0.0.1:8427".parse().ok()
        );
        assert_eq!(parse_listen("[::1]:80"), "[::1]:80".parse().ok());
        assert_eq!(parse_listen("8427"), None);
    }
}
