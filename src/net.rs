//! The client's address and scheme, as the limits, the audit trail and the cookie see them.
//!
//! Behind a trusted proxy (`RAMPART_TRUST_FORWARDED=true`) the client is the **right-most**
//! `X-Forwarded-For` entry: the one the proxy itself appended. Everything to its left was
//! written by the client and is never read, whether it parses or not, so a client cannot
//! choose which address gets limited or banned. A port on that entry (`1.2.3.4:5`,
//! `[::1]:443`) is removed; an entry that still does not parse (`unknown`, garbage) falls back
//! to the peer address, never to an entry further left.
//!
//! Limits and bans key IPv6 clients by their /64 ([`limit_key`]): one host usually holds a
//! whole /64, so per-address limits would give it 2^64 fresh addresses.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use actix_web::HttpRequest;

/// The header a trusted proxy appends the client address to.
const FORWARDED_FOR: &str = "x-forwarded-for";
/// The header a trusted proxy sets to the scheme the client used.
const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The peer address, unless `trust_forwarded` is set: then the right-most `X-Forwarded-For`
/// entry (see the module doc). IPv4-mapped IPv6 addresses are reported as IPv4.
pub fn client_ip(req: &HttpRequest, trust_forwarded: bool) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
        .to_canonical();
    if !trust_forwarded {
        return peer;
    }
    let headers = req.headers().get_all(FORWARDED_FOR).map(|v| v.as_bytes());
    forwarded_client(headers, peer)
}

/// The client address from the values of every `X-Forwarded-For` header (in order), or `peer`
/// when there is none or its right-most entry does not parse.
pub fn forwarded_client<'a>(values: impl Iterator<Item = &'a [u8]>, peer: IpAddr) -> IpAddr {
    // Several headers are one list joined by commas (RFC 9110 §5.3): the right-most entry is
    // the last one of the last header.
    let Some(last) = values.last() else {
        return peer;
    };
    let entry = match last.iter().rposition(|b| *b == b',') {
        Some(comma) => &last[comma + 1..],
        None => last,
    };
    std::str::from_utf8(entry)
        .ok()
        .and_then(parse_hop)
        .map(|ip| ip.to_canonical())
        .unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:443`)
/// or in brackets (`[::1]`).
pub fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// Whether the client reached the server over TLS: the listener's own scheme, or, only when
/// the proxy is trusted, the right-most `X-Forwarded-Proto` entry. A client-written header
/// never decides the cookie's `Secure` flag on its own.
pub fn is_https(req: &HttpRequest, trust_forwarded: bool) -> bool {
    if trust_forwarded {
        let last = req
            .headers()
            .get_all(FORWARDED_PROTO)
            .filter_map(|v| v.to_str().ok())
            .next_back()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        if let Some(proto) = last {
            return proto.eq_ignore_ascii_case("https");
        }
    }
    req.app_config().secure()
}

/// The address a limit or a ban is kept under: IPv4 addresses as they are, IPv6 addresses
/// reduced to their /64 (the rest of the bits zero).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PEER: &str = "10.1.1.1";

    fn seen(headers: &[&str], trust: bool) -> IpAddr {
        let mut req = TestRequest::default().peer_addr(format!("{PEER}:5000").parse().unwrap());
        for h in headers {
            req = req.append_header((FORWARDED_FOR, *h));
        }
        client_ip(&req.to_http_request(), trust)
    }

    #[test]
    fn forwarded_for_is_read_only_when_trusted_and_only_its_last_entry() {
        let cases: &[(&[&str], &str)] = &[
            // (headers, client address seen with trust on)
            (&[], PEER),
            (&["203.0.113.7"], "203.0.113.7"),
            (&["6.6.6.6, 203.0.113.7"], "203.0.113.7"),
            (&["6.6.6.6", "203.0.113.7"], "203.0.113.7"),
            // Ports are removed, brackets too.
            (&["6.6.6.6, 203.0.113.7:4711"], "203.0.113.7"),
            (&["6.6.6.6, [2001:db8::5]:443"], "2001:db8::5"),
            (&["6.6.6.6, [2001:db8::5]"], "2001:db8::5"),
            (&["6.6.6.6,2001:db8::5"], "2001:db8::5"),
            // A last entry that does not parse means the peer, never an entry to its left.
            (&["6.6.6.6, unknown"], PEER),
            (&["6.6.6.6, 1.2.3.4:notaport"], PEER),
            (&["6.6.6.6, "], PEER),
            (&["6.6.6.6,"], PEER),
            (&["6.6.6.6", "unknown"], PEER),
            (&["6.6.6.6, 300.1.1.1"], PEER),
            // Mapped addresses count as the IPv4 address they carry.
            (&["::ffff:198.51.100.2"], "198.51.100.2"),
        ];
        for (headers, want) in cases {
            assert_eq!(seen(headers, true), ip(want), "trusted, {headers:?}");
            assert_eq!(seen(headers, false), ip(PEER), "untrusted, {headers:?}");
        }
    }

    #[test]
    fn https_follows_the_trust_setting_not_a_bare_header() {
        let req = |proto: Option<&str>| {
            let mut r = TestRequest::default();
            if let Some(p) = proto {
                r = r.insert_header((FORWARDED_PROTO, p));
            }
            r.to_http_request()
        };
        assert!(!is_https(&req(Some("https")), false));
        assert!(is_https(&req(Some("https")), true));
        assert!(is_https(&req(Some("http, https")), true));
        assert!(!is_https(&req(Some("https, http")), true));
        assert!(!is_https(&req(None), true));
        assert!(!is_https(&req(None), false));
    }

    #[test]
    fn ipv6_is_limited_by_its_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }

    proptest! {
        /// Whatever the client writes into the header, the result is the peer or exactly the
        /// parse of the last entry; an entry to its left never wins.
        #[test]
        fn only_the_last_entry_can_name_the_client(
            left in proptest::collection::vec(any::<Vec<u8>>(), 0..4),
            last in any::<Vec<u8>>(),
        ) {
            let peer = ip(PEER);
            let mut values = left.clone();
            values.push(last.clone());
            let got = forwarded_client(values.iter().map(|v| v.as_slice()), peer);
            let tail = match last.iter().rposition(|b| *b == b',') {
                Some(c) => &last[c + 1..],
                None => &last[..],
            };
            let want = std::str::from_utf8(tail)
                .ok()
                .and_then(parse_hop)
                .map(|i| i.to_canonical())
                .unwrap_or(peer);
            prop_assert_eq!(got, want);
        }

        /// A forged left part does not change the answer for a well-formed last entry.
        #[test]
        fn forged_prefixes_do_not_matter(
            forged in "[ -~]{0,64}",
            a in any::<[u8; 4]>(),
            port in proptest::option::of(any::<u16>()),
        ) {
            let real = IpAddr::from(a);
            let last = match port {
                Some(p) => format!("{real}:{p}"),
                None => real.to_string(),
            };
            let header = format!("{forged},{last}");
            let got = forwarded_client(std::iter::once(header.as_bytes()), ip(PEER));
            prop_assert_eq!(got, real);
        }

        #[test]
        fn limit_keys_are_idempotent(bits in any::<u128>()) {
            let v6 = IpAddr::V6(Ipv6Addr::from(bits));
            let k = limit_key(v6);
            prop_assert_eq!(limit_key(k), k);
        }
    }
}
