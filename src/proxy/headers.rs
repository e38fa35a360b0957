//! Header rules for both directions: hop-by-hop headers (RFC 9110 §7.6.1, plus every header the
//! `Connection` header names) stop at this hop; everything else passes unchanged.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers, always dropped. `Expect` is answered by this hop (actix sends the
/// `100 Continue`), so it is not passed on; `Proxy-Connection` is the legacy spelling.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "expect",
];

/// The headers of `from` that may cross this hop, minus `also_drop` (lower-case names).
pub fn end_to_end<'a>(
    from: &'a HeaderMap,
    also_drop: &'a [&'a str],
) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> + 'a {
    let named = connection_tokens(from);
    from.iter().filter(move |(name, _)| {
        !HOP_BY_HOP.contains(&name.as_str())
            && !named.iter().any(|n| n.eq_ignore_ascii_case(name.as_str()))
            && !also_drop.contains(&name.as_str())
    })
}

/// The header names listed in every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `X-Forwarded-For` with `peer` appended to what the client (or a proxy before us) sent.
pub fn forwarded_for(headers: &HeaderMap, peer: Option<std::net::IpAddr>) -> Option<String> {
    let earlier: Vec<&str> =
        headers.get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).map(str::trim).collect();
    let mut chain: Vec<String> = earlier.into_iter().filter(|v| !v.is_empty()).map(str::to_owned).collect();
    chain.extend(peer.map(|ip| ip.to_string()));
    (!chain.is_empty()).then(|| chain.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("authorization", "Bearer t"),
            ("shared-user", "uid_1"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let kept: Vec<&str> = end_to_end(&headers, &["authorization"]).map(|(n, _)| n.as_str()).collect();
        assert_eq!(kept, ["shared-user"]);
    }

    #[test]
    fn x_forwarded_for_appends_the_peer() {
        let mut headers = HeaderMap::new();
        let peer = Some("10.0.0.9".parse().unwrap());
        assert_eq!(forwarded_for(&headers, peer).as_deref(), Some("10.0.0.9"));
        headers.append(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("203.0.113.7"));
        headers.append(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("198.51.100.2"));
        assert_eq!(forwarded_for(&headers, peer).as_deref(), Some("203.0.113.7, 198.51.100.2, 10.0.0.9"));
    }
}
