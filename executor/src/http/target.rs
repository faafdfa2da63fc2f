//! Which hosts an HTTP check may reach: the address classes that are never targets, the node's
//! own deny-list of domains, and the shape of an acceptable URL or robots domain.
//!
//! Everything here is pure: the same checks run at intake (an offer for a refused target is
//! declined), on the job's first URL, on every redirect hop, and on every address a host name
//! resolves to (see [`super::fetch`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pocmesh_protocol::http_check::{MAX_ROBOTS_PATHS, MAX_URL_LEN};
use pocmesh_protocol::{DeclineReason, JobParams};
use url::{Host, Url};

/// A kind of address an HTTP check never connects to (loopback only with the devnet flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique local (fc00::/7).
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 0.0.0.0, ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32.
    Documentation,
    /// 100.64.0.0/10 (carrier-grade NAT).
    Shared,
    /// 0/8, 192.0.0/24, 198.18/15 (benchmarking), 240/4, and other special-purpose ranges.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Shared => "shared (carrier-grade NAT)",
            AddressClass::Reserved => "reserved",
        })
    }
}

/// The class of `ip` when it is not a public unicast address; `None` for a public one.
/// IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses are judged by the
/// IPv4 address they carry.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    Some(if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if ip.is_documentation() {
        AddressClass::Documentation
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Shared
    } else if a == 0 || a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (b & 0xfe) == 18)
    {
        AddressClass::Reserved
    } else {
        return None;
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    Some(if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_unique_local() {
        AddressClass::Private
    } else if ip.is_unicast_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        AddressClass::Documentation
    } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (::a.b.c.d, deprecated) and the rest of ::/96.
        AddressClass::Reserved
    } else {
        return None;
    })
}

/// Where in a fetch a check happened, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The job's own URL (at intake or at the start of the job).
    Start,
    /// A `Location` the server redirected to.
    Redirect,
}

/// Why a target is refused. The messages name the host or address and say why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    /// Not a URL or domain at all.
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Longer than [`MAX_URL_LEN`].
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A robots re-check asking about more than [`MAX_ROBOTS_PATHS`] paths.
    TooManyPaths {
        /// Paths asked about.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Neither `http` nor `https`.
    Scheme {
        /// The scheme.
        scheme: String,
        /// Where.
        hop: Hop,
    },
    /// User name or password in the URL: a link check never sends credentials.
    Credentials {
        /// Where.
        hop: Hop,
    },
    /// On this node's deny-list.
    Denied {
        /// The host.
        host: String,
        /// The deny-list entry it matched.
        entry: String,
        /// Where.
        hop: Hop,
    },
    /// An address literal (`http://203.0.113.7/`): jobs name hosts, which allow-lists and
    /// deny-lists can judge; only loopback with the devnet flag is let through.
    AddressLiteral {
        /// The address.
        ip: IpAddr,
        /// Its class when it is not public.
        class: Option<AddressClass>,
        /// Where.
        hop: Hop,
    },
    /// A host name that resolves to an address that is never a target.
    Resolves {
        /// The host.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// Its class.
        class: AddressClass,
    },
    /// A port in a robots domain (allowed only with the devnet loopback flag).
    Port {
        /// The domain as given.
        domain: String,
    },
}

impl fmt::Display for TargetRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "<what> refused" for the job's own target, "redirect to <what> refused" for a hop.
        let refused = |f: &mut fmt::Formatter<'_>, hop: Hop, what: String| match hop {
            Hop::Start => write!(f, "{what} refused"),
            Hop::Redirect => write!(f, "redirect to {what} refused"),
        };
        match self {
            TargetRefusal::Malformed { reason } => write!(f, "target is malformed: {reason}"),
            TargetRefusal::TooLong { len, max } => {
                write!(f, "{len} characters is over the {max}-character limit")
            }
            TargetRefusal::TooManyPaths { count, max } => {
                write!(f, "{count} paths asked about, over the limit of {max}")
            }
            TargetRefusal::Scheme { scheme, hop } => {
                refused(f, *hop, format!("a {scheme}: URL"))?;
                f.write_str(" (only http and https)")
            }
            TargetRefusal::Credentials { hop } => refused(f, *hop, "a URL with credentials".into()),
            TargetRefusal::Denied { host, entry, hop } => {
                refused(f, *hop, format!("denied domain {host}"))?;
                write!(f, " (deny-list entry {entry})")
            }
            TargetRefusal::AddressLiteral { ip, class, hop } => match class {
                Some(class) => refused(f, *hop, format!("a {class} address {ip}")),
                None => {
                    refused(f, *hop, format!("an address literal {ip}"))?;
                    f.write_str(" (checks name hosts, not addresses)")
                }
            },
            TargetRefusal::Resolves { host, ip, class } => {
                write!(f, "host {host} resolves to a {class} address {ip}, refused")
            }
            TargetRefusal::Port { domain } => write!(
                f,
                "domain {domain} names a port, refused (robots re-checks use the default port)"
            ),
        }
    }
}

impl TargetRefusal {
    /// The reason an offer for this target is declined.
    pub fn decline_reason(&self) -> DeclineReason {
        match self {
            TargetRefusal::Malformed { .. } => DeclineReason::InvalidOffer,
            _ => DeclineReason::TargetRefused,
        }
    }
}

/// A deny-list entry that is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deny-list entry {entry:?} is not a domain name (e.g. example.org)")]
pub struct BadDenyEntry {
    /// The entry as given.
    pub entry: String,
}

/// Domains this node never checks, with their subdomains. Entries are normalised like URL hosts
/// (lower case, IDNA, no trailing dot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList {
    domains: Vec<String>,
}

impl DenyList {
    /// A deny-list from domain names; an error names the first entry that is not one.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadDenyEntry> {
        let mut domains = Vec::with_capacity(entries.len());
        for entry in entries {
            let raw = entry.as_ref().trim();
            let bad = || BadDenyEntry {
                entry: raw.to_string(),
            };
            if raw.is_empty() || raw.contains(['/', ':', '@', '?', '#']) {
                return Err(bad());
            }
            let url = Url::parse(&format!("http://{raw}/")).map_err(|_| bad())?;
            match url.host() {
                Some(Host::Domain(d)) => domains.push(d.trim_end_matches('.').to_string()),
                _ => return Err(bad()),
            }
        }
        domains.sort();
        domains.dedup();
        Ok(DenyList { domains })
    }

    /// The entry `host` falls under (itself or a parent domain), if any.
    pub fn matching(&self, host: &str) -> Option<&str> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .iter()
            .find(|d| {
                host == **d
                    || (host.len() > d.len()
                        && host.ends_with(d.as_str())
                        && host.as_bytes()[host.len() - d.len() - 1] == b'.')
            })
            .map(String::as_str)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

/// The target rules of one node: its deny-list and whether loopback is allowed (devnet only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRules {
    /// Domains never checked.
    pub deny: DenyList,
    /// Loopback addresses (127.0.0.0/8, ::1) may be targets: the devnet flag, so tests can serve
    /// on 127.0.0.1. Every other class stays refused.
    pub allow_loopback: bool,
}

impl TargetRules {
    /// Whether an address may be connected to; the error is its class.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            None => Ok(()),
            Some(AddressClass::Loopback) if self.allow_loopback => Ok(()),
            Some(class) => Err(class),
        }
    }

    /// Checks the addresses `host` resolved to: all of them must be allowed (a mix of public
    /// and private answers is refused whole, so a failed connection never falls back to a
    /// private one).
    pub fn check_resolved(&self, host: &str, ips: &[IpAddr]) -> Result<(), TargetRefusal> {
        for &ip in ips {
            self.check_ip(ip).map_err(|class| TargetRefusal::Resolves {
                host: host.to_string(),
                ip,
                class,
            })?;
        }
        Ok(())
    }

    /// Checks one URL, the job's or a redirect's: scheme, credentials, deny-list, and address
    /// literals (which skip DNS, so their address is judged here).
    pub fn check_url(&self, url: &Url, hop: Hop) -> Result<(), TargetRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetRefusal::Scheme {
                scheme: url.scheme().to_string(),
                hop,
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetRefusal::Credentials { hop });
        }
        match url.host() {
            None => Err(TargetRefusal::Malformed {
                reason: format!("{url} has no host"),
            }),
            Some(Host::Domain(domain)) => match self.deny.matching(domain) {
                Some(entry) => Err(TargetRefusal::Denied {
                    host: domain.to_string(),
                    entry: entry.to_string(),
                    hop,
                }),
                None => Ok(()),
            },
            Some(Host::Ipv4(v4)) => self.check_literal(IpAddr::V4(v4), hop),
            Some(Host::Ipv6(v6)) => self.check_literal(IpAddr::V6(v6), hop),
        }
    }

    fn check_literal(&self, ip: IpAddr, hop: Hop) -> Result<(), TargetRefusal> {
        match classify(ip) {
            Some(AddressClass::Loopback) if self.allow_loopback => Ok(()),
            class => Err(TargetRefusal::AddressLiteral { ip, class, hop }),
        }
    }

    /// The URL of a `link_health` job, checked.
    pub fn link_url(&self, url: &str) -> Result<Url, TargetRefusal> {
        if url.len() > MAX_URL_LEN {
            return Err(TargetRefusal::TooLong {
                len: url.len(),
                max: MAX_URL_LEN,
            });
        }
        let parsed = Url::parse(url).map_err(|e| TargetRefusal::Malformed {
            reason: format!("{url:?} is not a URL: {e}"),
        })?;
        self.check_url(&parsed, Hop::Start)?;
        Ok(parsed)
    }

    /// The robots.txt URL of a `robots_recheck` job, checked with its paths: `https://<domain>/
    /// robots.txt`, or `http://` when loopback targets are allowed (devnet test servers speak
    /// plain HTTP), where the domain may also carry a port.
    pub fn robots_url(&self, domain: &str, paths: &[String]) -> Result<Url, TargetRefusal> {
        if paths.len() > MAX_ROBOTS_PATHS {
            return Err(TargetRefusal::TooManyPaths {
                count: paths.len(),
                max: MAX_ROBOTS_PATHS,
            });
        }
        if let Some(path) = paths.iter().find(|p| p.len() > MAX_URL_LEN) {
            return Err(TargetRefusal::TooLong {
                len: path.len(),
                max: MAX_URL_LEN,
            });
        }
        if let Some(path) = paths.iter().find(|p| !p.starts_with('/')) {
            return Err(TargetRefusal::Malformed {
                reason: format!("path {path:?} does not start with /"),
            });
        }
        let malformed = || TargetRefusal::Malformed {
            reason: format!("{domain:?} is not a domain name"),
        };
        if domain.is_empty() || domain.len() > 253 || domain.contains(['/', '@', '?', '#', '\\']) {
            return Err(malformed());
        }
        let scheme = if self.allow_loopback { "http" } else { "https" };
        let url =
            Url::parse(&format!("{scheme}://{domain}/robots.txt")).map_err(|_| malformed())?;
        if url.port().is_some() && !self.allow_loopback {
            return Err(TargetRefusal::Port {
                domain: domain.to_string(),
            });
        }
        self.check_url(&url, Hop::Start)?;
        Ok(url)
    }

    /// Checks an offer's target before it is accepted (other job types have none).
    pub fn check_params(&self, params: &JobParams) -> Result<(), TargetRefusal> {
        match params {
            JobParams::LinkHealth { url, .. } => self.link_url(url).map(|_| ()),
            JobParams::RobotsRecheck { domain, paths } => {
                self.robots_url(domain, paths).map(|_| ())
            }
            JobParams::Hash { .. } | JobParams::Wasm { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn every_special_range_is_classified_and_public_ones_are_not() {
        let cases = [
            ("127.0.0.1", Some(AddressClass::Loopback)),
            ("127.200.0.9", Some(AddressClass::Loopback)),
            ("::1", Some(AddressClass::Loopback)),
            ("10.0.0.1", Some(AddressClass::Private)),
            ("172.16.5.4", Some(AddressClass::Private)),
            ("172.31.255.255", Some(AddressClass::Private)),
            ("192.168.1.1", Some(AddressClass::Private)),
            ("fc00::1", Some(AddressClass::Private)),
            ("fd12:3456::1", Some(AddressClass::Private)),
            ("169.254.169.254", Some(AddressClass::LinkLocal)),
            ("fe80::1", Some(AddressClass::LinkLocal)),
            ("224.0.0.1", Some(AddressClass::Multicast)),
            ("ff02::1", Some(AddressClass::Multicast)),
            ("0.0.0.0", Some(AddressClass::Unspecified)),
            ("::", Some(AddressClass::Unspecified)),
            ("255.255.255.255", Some(AddressClass::Broadcast)),
            ("192.0.2.1", Some(AddressClass::Documentation)),
            ("198.51.100.7", Some(AddressClass::Documentation)),
            ("203.0.113.9", Some(AddressClass::Documentation)),
            ("2001:db8::1", Some(AddressClass::Documentation)),
            ("100.64.0.1", Some(AddressClass::Shared)),
            ("100.127.255.255", Some(AddressClass::Shared)),
            ("198.18.0.1", Some(AddressClass::Reserved)),
            ("240.0.0.1", Some(AddressClass::Reserved)),
            ("0.1.2.3", Some(AddressClass::Reserved)),
            // IPv4 inside IPv6 is judged by its IPv4 address.
            ("::ffff:10.0.0.1", Some(AddressClass::Private)),
            ("::ffff:127.0.0.1", Some(AddressClass::Loopback)),
            ("::ffff:169.254.1.1", Some(AddressClass::LinkLocal)),
            ("64:ff9b::c0a8:101", Some(AddressClass::Private)),
            ("::10.0.0.1", Some(AddressClass::Reserved)),
            // Public.
            ("8.8.8.8", None),
            ("100.128.0.1", None),
            ("172.32.0.1", None),
            ("2606:4700::1111", None),
            ("::ffff:8.8.8.8", None),
        ];
        for (addr, class) in cases {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
    }

    #[test]
    fn the_devnet_flag_lets_loopback_through_and_nothing_else() {
        let strict = TargetRules::default();
        let devnet = TargetRules {
            allow_loopback: true,
            ..TargetRules::default()
        };
        assert_eq!(
            strict.check_ip(ip("127.0.0.1")),
            Err(AddressClass::Loopback)
        );
        assert_eq!(devnet.check_ip(ip("127.0.0.1")), Ok(()));
        assert_eq!(devnet.check_ip(ip("::1")), Ok(()));
        assert_eq!(devnet.check_ip(ip("10.0.0.1")), Err(AddressClass::Private));
        assert_eq!(
            devnet.check_ip(ip("169.254.169.254")),
            Err(AddressClass::LinkLocal)
        );
        let mixed = [ip("8.8.8.8"), ip("10.1.2.3")];
        let e = devnet
            .check_resolved("internal.test", &mixed)
            .expect_err("one private answer refuses the host");
        assert_eq!(
            e.to_string(),
            "host internal.test resolves to a private address 10.1.2.3, refused"
        );
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_literals_and_the_deny_list() {
        let rules = TargetRules {
            deny: DenyList::new(&["Blocked.Example", "bad.test."]).expect("deny-list"),
            allow_loopback: false,
        };
        assert!(rules.link_url("https://ok.example/page?q=1").is_ok());
        let refused = |url: &str| rules.link_url(url).expect_err(url).to_string();
        assert_eq!(
            refused("ftp://ok.example/"),
            "a ftp: URL refused (only http and https)"
        );
        assert!(refused("https://user:pw@ok.example/").contains("credentials"));
        assert_eq!(
            refused("https://www.blocked.example/x"),
            "denied domain www.blocked.example refused (deny-list entry blocked.example)"
        );
        assert!(refused("http://bad.test/").contains("deny-list entry bad.test"));
        assert!(
            rules.link_url("http://notbad.test/").is_ok(),
            "suffix, not subdomain"
        );
        assert_eq!(
            refused("http://10.0.0.1/"),
            "a private address 10.0.0.1 refused"
        );
        assert!(refused("http://8.8.8.8/").contains("an address literal 8.8.8.8"));
        assert!(refused("http://[::1]:8080/").contains("loopback address ::1"));
        assert!(refused("http://127.0.0.1:8080/").contains("loopback"));
        let long = format!("https://ok.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(
            rules.link_url(&long),
            Err(TargetRefusal::TooLong { .. })
        ));
        assert_eq!(
            rules.link_url("not a url").map_err(|e| e.decline_reason()),
            Err(DeclineReason::InvalidOffer)
        );
        let redirect = Url::parse("http://10.0.0.1/").expect("url");
        assert_eq!(
            rules
                .check_url(&redirect, Hop::Redirect)
                .expect_err("private")
                .to_string(),
            "redirect to a private address 10.0.0.1 refused"
        );

        let devnet = TargetRules {
            allow_loopback: true,
            ..rules.clone()
        };
        assert!(devnet.link_url("http://127.0.0.1:8080/").is_ok());
        assert!(devnet.link_url("http://[::1]:8080/").is_ok());
        assert!(devnet.link_url("http://10.0.0.1/").is_err());
    }

    #[test]
    fn robots_domains_and_paths_are_checked() {
        let rules = TargetRules {
            deny: DenyList::new(&["blocked.example"]).expect("deny-list"),
            allow_loopback: false,
        };
        let url = rules
            .robots_url("Example.org", &["/a".into()])
            .expect("plain domain");
        assert_eq!(url.as_str(), "https://example.org/robots.txt");
        assert!(matches!(
            rules.robots_url("example.org:8443", &[]),
            Err(TargetRefusal::Port { .. })
        ));
        assert!(matches!(
            rules.robots_url("sub.blocked.example", &[]),
            Err(TargetRefusal::Denied { .. })
        ));
        assert!(matches!(
            rules.robots_url("example.org/x", &[]),
            Err(TargetRefusal::Malformed { .. })
        ));
        assert!(matches!(
            rules.robots_url("10.0.0.1", &[]),
            Err(TargetRefusal::AddressLiteral { .. })
        ));
        let many: Vec<String> = (0..=MAX_ROBOTS_PATHS).map(|i| format!("/{i}")).collect();
        assert!(matches!(
            rules.robots_url("example.org", &many),
            Err(TargetRefusal::TooManyPaths { .. })
        ));
        assert!(matches!(
            rules.robots_url("example.org", &["relative".into()]),
            Err(TargetRefusal::Malformed { .. })
        ));
        let devnet = TargetRules {
            allow_loopback: true,
            ..rules
        };
        assert_eq!(
            devnet
                .robots_url("127.0.0.1:8080", &[])
                .expect("devnet")
                .as_str(),
            "http://127.0.0.1:8080/robots.txt"
        );
    }

    #[test]
    fn deny_list_entries_must_be_domains() {
        assert!(DenyList::new(&["example.org", "xn--bcher-kva.example"]).is_ok());
        for bad in ["", "http://x.org", "x.org/path", "10.0.0.1", "a b"] {
            assert!(DenyList::new(&[bad]).is_err(), "{bad:?}");
        }
        let unicode = DenyList::new(&["Bücher.example"]).expect("IDNA");
        assert_eq!(
            unicode.matching("xn--bcher-kva.example"),
            Some("xn--bcher-kva.example")
        );
    }
}
