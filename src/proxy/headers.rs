//! Header rules for both directions: hop-by-hop headers (RFC 9110 §7.6.1, plus every header the
//! `Connection` header names) stop at this hop; everything else passes unchanged.

use std::net::IpAddr;

use actix_web::HttpRequest;
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

// Parsed at compile time: a name given as `&str` is parsed (and checked) on every lookup.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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
pub fn forwarded_for(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<String> {
    let mut chain = String::new();
    let earlier = headers.get_all(&X_FORWARDED_FOR).filter_map(|v| v.to_str().ok()).map(str::trim);
    for hop in earlier.filter(|v| !v.is_empty()) {
        push_separator(&mut chain);
        chain.push_str(hop);
    }
    if let Some(peer) = peer {
        push_separator(&mut chain);
        push_ip(&mut chain, peer);
    }
    (!chain.is_empty()).then_some(chain)
}

fn push_separator(chain: &mut String) {
    if !chain.is_empty() {
        chain.push_str(", ");
    }
}

/// An IPv4 address digit by digit: `Ipv4Addr`'s `Display` (padding support, a buffer, a
/// formatter per octet) cost more than the rest of the forwarding headers together.
fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        out.push_str(&ip.to_string());
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

/// The scheme and host the client asked for, as a proxy before us reports them (`Forwarded`,
/// then `X-Forwarded-Proto` / `X-Forwarded-Host`), else as this connection has them: the rules
/// of actix-web's `ConnectionInfo`, which also formats the peer's address into a new `String`
/// on every request, a cost the proxy does not need.
pub fn client_scheme_and_host(req: &HttpRequest) -> (&str, &str) {
    let (mut scheme, mut host) = (None, None);
    let pairs = req
        .headers()
        .get_all(header::FORWARDED)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([';', ',']))
        .filter_map(|pair| pair.trim().split_once('='));
    for (name, value) in pairs {
        let value = value.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("proto") {
            scheme.get_or_insert(value);
        } else if name.trim().eq_ignore_ascii_case("host") {
            host.get_or_insert(value);
        }
    }
    let first_of = |name: &HeaderName| {
        let value = req.headers().get(name)?.to_str().ok()?;
        value.split(',').next().map(str::trim)
    };
    let scheme = scheme
        .or_else(|| first_of(&X_FORWARDED_PROTO))
        .or_else(|| req.uri().scheme_str())
        .unwrap_or(if req.app_config().secure() { "https" } else { "http" });
    let host = host
        .or_else(|| first_of(&X_FORWARDED_HOST))
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_else(|| req.app_config().host());
    (scheme, host)
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
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.2"));
        assert_eq!(forwarded_for(&headers, peer).as_deref(), Some("203.0.113.7, 198.51.100.2, 10.0.0.9"));
        assert_eq!(forwarded_for(&headers, None).as_deref(), Some("203.0.113.7, 198.51.100.2"));
    }

    #[test]
    fn addresses_are_written_as_ipaddr_displays_them() {
        for ip in ["0.0.0.0", "10.0.0.9", "127.0.0.1", "192.168.100.255", "8.80.99.100", "::1", "2001:db8::7"]
        {
            let mut out = String::new();
            push_ip(&mut out, ip.parse().unwrap());
            assert_eq!(out, ip);
        }
    }

    #[test]
    fn scheme_and_host_come_from_forwarded_then_x_forwarded_then_the_request() {
        use actix_web::test::TestRequest;
        let plain = TestRequest::default().insert_header(("host", "ota.example:8080")).to_http_request();
        assert_eq!(client_scheme_and_host(&plain), ("http", "ota.example:8080"));
        let behind_lb = TestRequest::default()
            .insert_header(("host", "10.0.0.5"))
            .insert_header(("x-forwarded-proto", "https, http"))
            .insert_header(("x-forwarded-host", "api.nowatch.example"))
            .to_http_request();
        assert_eq!(client_scheme_and_host(&behind_lb), ("https", "api.nowatch.example"));
        let forwarded = TestRequest::default()
            .insert_header(("host", "10.0.0.5"))
            .insert_header(("x-forwarded-host", "ignored.example"))
            .insert_header((
                "forwarded",
                r#"for=192.0.2.60;Proto=https;host="ota.nowatch.example", for=10.0.0.1"#,
            ))
            .to_http_request();
        assert_eq!(client_scheme_and_host(&forwarded), ("https", "ota.nowatch.example"));
    }
}
