//! Tests of [`super`]: every hostile spelling of a non-public address, the ranges'
//! edges, the name rules, allow-lists and the private-range override.

use std::net::IpAddr;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn policy(ranges: &[&str]) -> AddressPolicy {
    AddressPolicy::new(ranges.iter().map(|r| r.parse().unwrap()).collect())
}

fn rules(rules: &[&str]) -> Vec<HostRule> {
    rules.iter().map(|r| r.parse().unwrap()).collect()
}

/// `check_url` on `url` with these rules and ranges.
fn check(url: &str, hosts: &[&str], ranges: &[&str]) -> Result<String, Refusal> {
    let url = Url::parse(url).map_err(|_| Refusal::Url)?;
    check_url(&url, &rules(hosts), &policy(ranges)).map(|uri| uri.to_string())
}

#[test]
fn public_addresses_pass() {
    for public in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        // NAT64 of a public address, and an IPv4-mapped public address.
        "64:ff9b::808:808",
        "::ffff:8.8.8.8",
        // The edges just outside the refused ranges.
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "192.0.1.255",
        "192.0.3.0",
        "223.255.255.255",
        "11.0.0.0",
        "9.255.255.255",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
    ] {
        assert_eq!(
            AddressPolicy::default().check(ip(public)),
            Ok(()),
            "{public}"
        );
    }
}

#[test]
fn every_non_public_address_is_refused() {
    for hostile in [
        // Loopback, unspecified, "this network".
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",
        "0.1.2.3",
        // RFC 1918.
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        // CGNAT.
        "100.64.0.1",
        "100.127.255.255",
        // Link-local and the metadata address.
        "169.254.0.1",
        "169.254.169.254",
        "169.254.170.2",
        // IETF, documentation, benchmarking, 6to4 relay.
        "192.0.0.8",
        "192.0.0.170",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "198.19.255.255",
        "192.88.99.1",
        // Multicast, reserved, broadcast.
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        // IPv6 loopback and unspecified.
        "::1",
        "::",
        // IPv4-mapped and -compatible forms of loopback, private and metadata.
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "0:0:0:0:0:ffff:7f00:0001",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::7f00:1",
        "::127.0.0.1",
        "::8.8.8.8",
        // NAT64 embedding non-public addresses, and the local-use NAT64 prefix.
        "64:ff9b::7f00:1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::c0a8:1",
        "64:ff9b:1::808:808",
        // ULA, link-local, site-local, multicast, discard, SRv6.
        "fc00::1",
        "fd00::1",
        "fd12:3456:789a::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff05::2",
        "100::1",
        "5f00::1",
        // Documentation, Teredo, ORCHID, 6to4 (which embeds any IPv4 address).
        "2001:db8::1",
        "3fff::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:20::1",
        "2002:7f00:1::1",
        "2002:c0a8:101::1",
        // AWS's IPv6 metadata endpoint.
        "fd00:ec2::254",
    ] {
        assert_eq!(
            AddressPolicy::default().check(ip(hostile)),
            Err(Refusal::Address),
            "{hostile}"
        );
    }
}

#[test]
fn allowed_ranges_let_an_internal_server_through_but_never_metadata() {
    let internal = policy(&["10.20.0.0/16", "127.0.0.1", "fd00:1::/64"]);
    assert_eq!(internal.check(ip("10.20.3.4")), Ok(()));
    assert_eq!(internal.check(ip("10.21.0.1")), Err(Refusal::Address));
    assert_eq!(internal.check(ip("127.0.0.1")), Ok(()));
    assert_eq!(internal.check(ip("127.0.0.2")), Err(Refusal::Address));
    // An IPv4 range holds the IPv4-mapped and NAT64 forms of its addresses.
    assert_eq!(internal.check(ip("::ffff:127.0.0.1")), Ok(()));
    assert_eq!(internal.check(ip("64:ff9b::a14:304")), Ok(()));
    assert_eq!(internal.check(ip("fd00:1::5")), Ok(()));
    assert_eq!(internal.check(ip("fd00:2::5")), Err(Refusal::Address));

    let everything = policy(&["0.0.0.0/0", "::/0"]);
    assert_eq!(everything.check(ip("192.168.1.1")), Ok(()));
    for metadata in [
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "fd00:ec2::254",
        "fd00:ec2::23",
    ] {
        assert_eq!(
            everything.check(ip(metadata)),
            Err(Refusal::Address),
            "{metadata}"
        );
    }
}

#[test]
fn cidrs_parse_strictly() {
    let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
    assert_eq!(mapped.to_string(), "10.0.0.0/8");
    assert!(mapped.contains(ip("10.1.2.3")));
    assert_eq!("fd00::/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
    assert_eq!("1.2.3.4".parse::<Cidr>().unwrap().to_string(), "1.2.3.4/32");
    assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
    let odd = "172.16.0.0/12".parse::<Cidr>().unwrap();
    assert!(odd.contains(ip("172.31.255.255")));
    assert!(!odd.contains(ip("172.32.0.0")));
    for bad in [
        "10.0.0.1/8",
        "10.0.0.0/33",
        "fd00::/129",
        "10.0.0.0/-1",
        "10.0.0.0/",
        "nonsense",
        "2130706433",
        "0x7f.1",
        "",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad}");
    }
}

#[test]
fn host_rules_parse_strictly() {
    for good in [
        "images.example.com",
        "*.cdn.example.com",
        "images.internal:8443",
        "*.example.com:80",
        "10.1.2.3",
        "10.1.2.3:8080",
        "[fd00::1]",
        "[fd00::1]:8443",
        "fd00::1",
        "localhost",
    ] {
        assert!(good.parse::<HostRule>().is_ok(), "{good}");
    }
    for bad in [
        "Images.example.com",
        "bad host",
        "*",
        "*.",
        "**.example.com",
        "a.*.example.com",
        "a..b",
        "-a.example.com",
        "a-.example.com",
        "host:0",
        "host:99999",
        "host:",
        "[::1",
        "[nonsense]",
        "http://example.com",
        "example.com/path",
        "",
    ] {
        assert!(bad.parse::<HostRule>().is_err(), "{bad}");
    }
}

#[test]
fn numeric_host_spellings_are_normalized_then_refused() {
    for hostile in [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://0x7f.0.0.1/",
        "http://127.1/",
        "http://127.0.1/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://127.0.0.1./",
        "http://0/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://2852039166/",
        "http://10.0.0.1/x.png",
        "http://127.0.0.1:80/x.png",
        "https://127.0.0.1:443/x.png",
        // WHATWG turns backslashes into slashes for http(s).
        "http:\\\\127.0.0.1\\x.png",
        "HTTP://127.0.0.1/",
    ] {
        assert_eq!(check(hostile, &[], &[]), Err(Refusal::Address), "{hostile}");
    }
}

#[test]
fn internal_names_are_refused_unless_a_rule_names_them() {
    for hostile in [
        "http://localhost/",
        "http://LOCALHOST./",
        "http://foo.localhost/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata.google.internal./",
        "http://metadata/",
        "http://metadata.goog/",
        "http://instance-data/",
        "http://ip-10-0-0-1.ec2.internal/",
        "http://kubernetes.default.svc/",
        "http://kubernetes.default.svc.cluster.local/",
        "http://images/",
        // IDNA maps these to `localhost`.
        "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
        "http://ＬＯＣＡＬＨＯＳＴ/",
    ] {
        assert_eq!(check(hostile, &[], &[]), Err(Refusal::Host), "{hostile}");
    }
    assert_eq!(
        check("http://images/a.png", &["images"], &[]).as_deref(),
        Ok("http://images/a.png")
    );
}

#[test]
fn schemes_credentials_and_ports() {
    for (url, refusal) in [
        ("ftp://example.com/a.png", Refusal::Scheme),
        ("file:///etc/passwd", Refusal::Scheme),
        ("gopher://example.com/", Refusal::Scheme),
        ("data:image/png;base64,AAAA", Refusal::Scheme),
        ("gs://bucket/a.png", Refusal::Scheme),
        ("http://user:pw@example.com/a.png", Refusal::Userinfo),
        ("http://user@example.com/a.png", Refusal::Userinfo),
        ("http://example.com@127.0.0.1/", Refusal::Userinfo),
        ("http://example.com:8080/a.png", Refusal::Port),
        ("https://example.com:80/a.png", Refusal::Port),
        ("http://[::1", Refusal::Url),
        ("/relative.png", Refusal::Url),
    ] {
        assert_eq!(check(url, &[], &[]), Err(refusal), "{url}");
    }
    // The default port, spelled or not, is the default port; the fragment is not sent.
    assert_eq!(
        check("https://Example.COM:443/a%20b.png?x=1#frag", &[], &[]).as_deref(),
        Ok("https://example.com/a%20b.png?x=1")
    );
}

#[test]
fn allowed_hosts_are_the_only_hosts() {
    let hosts = ["images.example.com", "*.cdn.example.com", "10.1.2.3:8080"];
    let ranges = ["10.1.2.0/24"];
    for ok in [
        "https://images.example.com/a.png",
        "https://images.example.com./a.png",
        "https://a.cdn.example.com/a.png",
        "https://a.b.cdn.example.com/a.png",
        "http://10.1.2.3:8080/a.png",
    ] {
        assert!(check(ok, &hosts, &ranges).is_ok(), "{ok}");
    }
    for (url, refusal) in [
        ("https://evil.example.com/a.png", Refusal::Host),
        ("https://cdn.example.com/a.png", Refusal::Host),
        ("https://evilcdn.example.com/a.png", Refusal::Host),
        ("https://images.example.com.evil.com/a.png", Refusal::Host),
        ("https://images.example.com:8443/a.png", Refusal::Port),
        ("http://10.1.2.3/a.png", Refusal::Port),
        ("http://10.1.2.4:8080/a.png", Refusal::Host),
    ] {
        assert_eq!(check(url, &hosts, &ranges), Err(refusal), "{url}");
    }
    // A named host's address must still pass: naming 127.0.0.1 is not enough.
    assert_eq!(
        check("http://127.0.0.1:9000/a.png", &["127.0.0.1:9000"], &[]),
        Err(Refusal::Address)
    );
    assert!(
        check(
            "http://127.0.0.1:9000/a.png",
            &["127.0.0.1:9000"],
            &["127.0.0.1"]
        )
        .is_ok()
    );
    // Spellings of a named IP address match it.
    assert!(
        check(
            "http://0x7f.1:9000/a.png",
            &["127.0.0.1:9000"],
            &["127.0.0.1"]
        )
        .is_ok()
    );
    assert!(check("http://[::1]:9000/", &["[::1]:9000"], &["::1"]).is_ok());
}
