//! The image fetcher's guard against server-side request forgery: which URLs, hosts and
//! addresses the sidecar may fetch an image from on a client's behalf.
//!
//! A URL is parsed by the WHATWG rules (the `url` crate), so every spelling of an
//! address a browser would accept (`2130706433`, `0x7f.1`, `127.1`, `017700000001`) is
//! normalized before it is checked, and the normalized URL is what is dialled. Then:
//!
//! - only `http` and `https`, no user name or password, no port but the scheme's default
//!   unless an [`HostRule`] names it;
//! - the host must match an allowed-hosts rule when the model has any; names that are
//!   internal by nature (`localhost`, `*.localhost`, the cloud metadata names,
//!   single-label names, `*.internal`, `*.cluster.local`, `*.svc`) are refused unless a
//!   rule names them;
//! - every address the host is or resolves to must be public ([`AddressPolicy::check`]):
//!   loopback, private (RFC 1918, CGNAT, ULA), link-local, unspecified, multicast,
//!   broadcast, documentation, benchmarking and other reserved ranges are refused, as are
//!   their IPv4-mapped (`::ffff:127.0.0.1`), IPv4-compatible (`::7f00:1`), 6to4 and
//!   NAT64 (`64:ff9b::a00:1`) forms, unless the model's `allowPrivateAddresses` lists a
//!   range holding them. Cloud metadata addresses are refused even then.
//!
//! Resolution is checked where the connection is made (see `fetch`): the resolver hands
//! the connector only addresses that passed, so what was checked is what is dialled.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use url::{Host, Url};

/// Why a URL or address is not fetched. Each is a fixed reason, never the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not an absolute URL the sidecar can send.
    Url,
    /// A scheme other than `http` and `https`.
    Scheme,
    /// A user name or password in the URL.
    Userinfo,
    /// A host the model does not fetch from.
    Host,
    /// A port other than the scheme's default that no rule allows.
    Port,
    /// The host is, or resolves to, an address that is not public.
    Address,
}

impl Refusal {
    /// What is wrong, for the client's error message.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Url => "is not an absolute URL the sidecar can fetch",
            Refusal::Scheme => "is not an http or https URL",
            Refusal::Userinfo => "carries a user name or password",
            Refusal::Host => "names a host this model does not fetch images from",
            Refusal::Port => {
                "uses a port other than the scheme's default that the model's allowedHosts does not name"
            }
            Refusal::Address => {
                "is or resolves to a loopback, private, link-local or otherwise non-public address"
            }
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Url | Refusal::Scheme | Refusal::Userinfo => "refused_url",
            Refusal::Host => "refused_host",
            Refusal::Port => "refused_port",
            Refusal::Address => "refused_address",
        }
    }
}

/// An IP range in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a range of
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range. IPv4 ranges also hold the IPv4-mapped IPv6 forms of
    /// their addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0..={max}"))?,
        };
        if masked(net, prefix) != net {
            return Err(format!(
                "{text:?} has host bits set; write the range's first address"
            ));
        }
        // An IPv4-mapped range is the IPv4 range it maps.
        Ok(match net {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Cidr {
                    net: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => Cidr { net, prefix },
            },
            _ => Cidr { net, prefix },
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    fn mask<const N: usize>(mut octets: [u8; N], prefix: u8) -> [u8; N] {
        for (i, byte) in octets.iter_mut().enumerate() {
            let start = i * 8;
            let keep = usize::from(prefix).saturating_sub(start).min(8);
            *byte &= !(0xffu16 >> keep) as u8;
        }
        octets
    }
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask(v4.octets(), prefix))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask(v6.octets(), prefix))),
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Which addresses may be dialled: public ones, and non-public ones inside an allowed
/// range (an internal image server), never a cloud metadata address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<Cidr>,
}

impl AddressPolicy {
    /// Public addresses, plus these non-public ranges.
    pub fn new(allowed: Vec<Cidr>) -> Self {
        AddressPolicy { allowed }
    }

    /// Whether `ip` may be dialled.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = embedded(ip);
        if is_metadata(ip) {
            return Err(Refusal::Address);
        }
        if is_public(ip) || self.allowed.iter().any(|c| c.contains(ip)) {
            Ok(())
        } else {
            Err(Refusal::Address)
        }
    }
}

/// The IPv4 address an IPv4-mapped address (`::ffff:a.b.c.d`) stands for.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address an IPv6 address reaches, where it embeds one: IPv4-mapped, and the
/// NAT64 well-known prefix `64:ff9b::/96`, whose translator connects to the embedded
/// address. Other IPv6 forms embedding IPv4 (compatible, 6to4, Teredo) are not public.
fn embedded(ip: IpAddr) -> IpAddr {
    match unmap(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [_, _, _, _, _, _, _, _, _, _, _, _, a, b, c, d] = v6.octets();
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            } else {
                IpAddr::V6(v6)
            }
        }
        v4 => v4,
    }
}

/// Cloud instance metadata endpoints: AWS (IMDS, ECS task, EKS Pod Identity), Google,
/// Azure and Oracle (all `169.254.169.254`), Alibaba, and AWS's IPv6 IMDS.
fn is_metadata(ip: IpAddr) -> bool {
    const V4: &[Ipv4Addr] = &[
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(169, 254, 170, 2),
        Ipv4Addr::new(169, 254, 170, 23),
        Ipv4Addr::new(100, 100, 100, 200),
    ];
    const V6: &[Ipv6Addr] = &[
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
    ];
    match ip {
        IpAddr::V4(v4) => V4.contains(&v4),
        IpAddr::V6(v6) => V6.contains(&v6),
    }
}

/// Whether `ip` is a globally reachable unicast address (IANA's special-purpose
/// registries, conservatively: a range that is not plainly public is refused).
pub fn is_public(ip: IpAddr) -> bool {
    match embedded(ip) {
        IpAddr::V4(v4) => {
            const NOT_PUBLIC: &[([u8; 4], u8)] = &[
                ([0, 0, 0, 0], 8),       // "this network", unspecified
                ([10, 0, 0, 0], 8),      // private
                ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
                ([127, 0, 0, 0], 8),     // loopback
                ([169, 254, 0, 0], 16),  // link-local, metadata
                ([172, 16, 0, 0], 12),   // private
                ([192, 0, 0, 0], 24),    // IETF protocol assignments
                ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
                ([192, 88, 99, 0], 24),  // 6to4 relay anycast
                ([192, 168, 0, 0], 16),  // private
                ([198, 18, 0, 0], 15),   // benchmarking
                ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
                ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
                ([224, 0, 0, 0], 4),     // multicast
                ([240, 0, 0, 0], 4),     // reserved, broadcast
            ];
            let octets = v4.octets();
            !NOT_PUBLIC
                .iter()
                .any(|(net, prefix)| prefix_eq(net, &octets, *prefix))
        }
        IpAddr::V6(v6) => {
            const NOT_PUBLIC: &[(u16, u16, u8)] = &[
                (0x2001, 0x0000, 23), // IETF protocol assignments, Teredo, ORCHID
                (0x2001, 0x0db8, 32), // documentation
                (0x2002, 0x0000, 16), // 6to4 (embeds any IPv4 address)
                (0x3fff, 0x0000, 20), // documentation
            ];
            let octets = v6.octets();
            // Global unicast is 2000::/3; everything else (loopback, unspecified,
            // compatible, NAT64 local-use, discard, ULA, link-local, site-local,
            // multicast, SRv6) is not public.
            octets[0] & 0xe0 == 0x20
                && !NOT_PUBLIC.iter().any(|(a, b, prefix)| {
                    let [a0, a1] = a.to_be_bytes();
                    let [b0, b1] = b.to_be_bytes();
                    prefix_eq(&[a0, a1, b0, b1], &octets[..4], *prefix)
                })
        }
    }
}

/// One entry of a model's allowed hosts: `images.example.com`, `*.cdn.example.com`
/// (any subdomain, not the domain itself), an IP address (`10.1.2.3`, `[fd00::1]`),
/// each optionally with a port (`images.internal:8443`), which a URL must then use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRule {
    host: Pattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Name(String),
    /// `*.example.com`, kept as `.example.com`.
    Suffix(String),
    Ip(IpAddr),
}

impl FromStr for HostRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{text:?} is not a host rule: write a lower-case host name, *.domain, an IP \
                 address or [IPv6 address], optionally with :port"
            )
        };
        let (host, port) = match text.rsplit_once(':') {
            // An IPv6 address without brackets has colons but no port.
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(bad)?;
                (host, Some(port))
            }
            _ => (text, None),
        };
        let pattern = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            IpAddr::V6(v6.parse().map_err(|_| bad())?).into()
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            ip.into()
        } else {
            let (wild, name) = match host.strip_prefix("*.") {
                Some(name) => (true, name),
                None => (false, host),
            };
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if name.len() > 253 || !name.split('.').all(label_ok) {
                return Err(bad());
            }
            if wild {
                Pattern::Suffix(format!(".{name}"))
            } else {
                Pattern::Name(name.to_owned())
            }
        };
        Ok(HostRule {
            host: pattern,
            port,
        })
    }
}

impl From<IpAddr> for Pattern {
    fn from(ip: IpAddr) -> Self {
        Pattern::Ip(ip)
    }
}

impl HostRule {
    fn host_matches(&self, host: &Host<&str>) -> bool {
        match (&self.host, host) {
            (Pattern::Name(rule), Host::Domain(name)) => trim_dot(name) == rule,
            (Pattern::Suffix(suffix), Host::Domain(name)) => trim_dot(name).ends_with(suffix),
            (Pattern::Ip(rule), Host::Ipv4(ip)) => unmap(*rule) == IpAddr::V4(*ip),
            (Pattern::Ip(rule), Host::Ipv6(ip)) => unmap(*rule) == unmap(IpAddr::V6(*ip)),
            _ => false,
        }
    }
}

fn trim_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Names that reach the machine itself, the cloud's metadata server or the cluster's
/// own services: refused unless an allowed-hosts rule names them.
fn internal_name(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "localhost",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    ];
    const SUFFIXES: &[&str] = &[".localhost", ".cluster.local", ".svc", ".internal"];
    let name = trim_dot(name);
    !name.contains('.') || NAMES.contains(&name) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Checks a URL against the scheme, credential, host and port rules, and a literal
/// address against `addresses` (a name's addresses are checked when it is resolved).
/// Returns the URL to send, without its fragment.
pub fn check_url(
    url: &Url,
    hosts: &[HostRule],
    addresses: &AddressPolicy,
) -> Result<http::Uri, Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Userinfo);
    }
    let host = url.host().ok_or(Refusal::Url)?;
    // `port()` is `None` for the scheme's default port, however the URL spelled it.
    let port = url.port();
    if hosts.is_empty() {
        if port.is_some() {
            return Err(Refusal::Port);
        }
        if let Host::Domain(name) = host
            && internal_name(name)
        {
            return Err(Refusal::Host);
        }
    } else {
        let mut named = hosts.iter().filter(|r| r.host_matches(&host)).peekable();
        if named.peek().is_none() {
            return Err(Refusal::Host);
        }
        if !named.any(|r| r.port == port) {
            return Err(Refusal::Port);
        }
    }
    match host {
        Host::Ipv4(ip) => addresses.check(IpAddr::V4(ip))?,
        Host::Ipv6(ip) => addresses.check(IpAddr::V6(ip))?,
        Host::Domain(_) => {}
    }
    let mut sent = url.clone();
    sent.set_fragment(None);
    sent.as_str().parse().map_err(|_| Refusal::Url)
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
