//! The client's IP address, as the limits and the audit trail see it.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// The peer address, unless `trust_forwarded` is set: then the right-most `X-Forwarded-For`
/// entry, which is the one the trusted proxy appended. Entries to its left were written by the
/// client and are ignored, so a client cannot choose its own IP.
pub fn client_ip(req: &HttpRequest, trust_forwarded: bool) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if !trust_forwarded {
        return peer;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .last()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_only_its_last_hop() {
        let req = TestRequest::default()
            .peer_addr("10.1.1.1:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, false),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(&req, true),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let bare = TestRequest::default()
            .peer_addr("10.1.1.1:5000".parse().unwrap())
            .to_http_request();
        assert_eq!(
            client_ip(&bare, true),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
    }
}
