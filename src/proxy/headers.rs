//! Header rules for both directions: hop-by-hop headers (RFC 9110 §7.6.1, plus every header the
//! `Connection` header names) stop at this hop; everything else passes unchanged, except the
//! forwarding headers, which only a trusted proxy may write (`server.trusted_proxies`): from
//! any other peer they are replaced by what this hop saw itself.

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
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

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

/// Headers by which an answer tells the server in front to do something else than pass it on:
/// nginx's `X-Accel-*` (serve an internal location, throttle, buffer), Apache's and lighttpd's
/// send-file. Only this service's own download answers may carry them.
pub fn steers_a_front_server(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("x-accel-") || name == "x-sendfile" || name == "x-lighttpd-send-file"
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

/// `X-Forwarded-For`: `peer` appended to what a trusted proxy before us sent, else `peer` alone.
pub fn forwarded_for(headers: &HeaderMap, peer: Option<IpAddr>, trusted: bool) -> Option<String> {
    let mut chain = String::new();
    let earlier = headers.get_all(&X_FORWARDED_FOR).filter_map(|v| v.to_str().ok()).map(str::trim);
    for hop in earlier.filter(|v| trusted && !v.is_empty()) {
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

/// An IPv4 address digit by digit, not through std's `Display` (padding support, a buffer, a
/// formatter per octet), which cost more than the rest of the forwarding headers together
/// (bench/PROFILE.md, "`X-Forwarded-*` without `ConnectionInfo`"): kept for that figure.
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

/// A `Forwarded` element (RFC 7239) of what this hop knows: `for=1.2.3.4;proto=http;host="h"`.
/// `client` is written only if it is an address (`unknown` otherwise).
pub fn forwarded_element(client: Option<&str>, scheme: &str, host: &str) -> String {
    let mut out = String::from("for=");
    match client.and_then(|c| c.parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => push_ip(&mut out, IpAddr::V4(v4)),
        Some(IpAddr::V6(v6)) => out.push_str(&format!("\"[{v6}]\"")),
        None => out.push_str("unknown"),
    }
    out.push_str(";proto=");
    out.push_str(scheme);
    out.push_str(";host=\"");
    for c in host.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The scheme and host the client asked for. From a trusted proxy: the last value of
/// `X-Forwarded-Proto` / `X-Forwarded-Host` (the one that proxy wrote; a client's own values
/// come before it), else this connection's. From any other peer: this connection's scheme (TLS
/// or not; an absolute-form request target is the client's word, not the connection's) and
/// its `Host`. `Forwarded` is never read: this hop writes its own (see [`forwarded_element`]).
/// A host that is not `name[:port]` or `[v6][:port]` is refused: it would go into headers.
///
/// Not actix's `ConnectionInfo`: it believes `Forwarded` and `X-Forwarded-*` from any peer, so a
/// client could name the scheme and host the backend sees (README, "What the service trusts").
pub fn client_scheme_and_host(req: &HttpRequest, trusted: bool) -> Result<(&str, &str), &'static str> {
    let last_of = |name: &HeaderName| {
        let value = req.headers().get_all(name).filter_map(|v| v.to_str().ok()).last()?;
        value.rsplit(',').next().map(str::trim).filter(|v| !v.is_empty())
    };
    let connection_scheme = if req.app_config().secure() { "https" } else { "http" };
    let scheme = match trusted {
        true => last_of(&X_FORWARDED_PROTO).filter(|s| matches!(*s, "http" | "https")),
        false => None,
    };
    let host = match trusted {
        true => last_of(&X_FORWARDED_HOST),
        false => None,
    };
    let host = host
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
        .unwrap_or_else(|| req.app_config().host());
    if !plain_host(host) {
        return Err("Host: not a host name or address with an optional port");
    }
    Ok((scheme.unwrap_or(connection_scheme), host))
}

/// `name[:port]` or `[v6][:port]`: letters, digits, `.`, `-`, `_`, `:`, brackets; nothing a
/// header list or a `Forwarded` parser would split on.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

/// The client's address as trusted proxies report it: the rightmost entry of the
/// `X-Forwarded-For` chain (ending with `peer`) that is not a trusted proxy itself; the leftmost
/// if all are; `None` if the walk ends at an entry that is not an address.
pub fn client_ip(chain: &str, is_trusted: impl Fn(IpAddr) -> bool) -> Option<&str> {
    let mut entries = chain.split(',').map(str::trim).filter(|e| !e.is_empty()).rev().peekable();
    while let Some(entry) = entries.next() {
        let ip = entry.parse::<IpAddr>().ok()?;
        if !is_trusted(ip) || entries.peek().is_none() {
            return Some(entry);
        }
    }
    None
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
    fn headers_that_steer_a_front_server_are_recognised() {
        for name in [
            "x-accel-redirect",
            "x-accel-limit-rate",
            "x-accel-whatever",
            "x-sendfile",
            "x-lighttpd-send-file",
        ] {
            assert!(steers_a_front_server(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["x-accelerate", "content-type", "x-request-id"] {
            assert!(!steers_a_front_server(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn x_forwarded_for_appends_the_peer_to_a_trusted_chain_and_replaces_any_other() {
        let mut headers = HeaderMap::new();
        let peer = Some("10.0.0.9".parse().unwrap());
        assert_eq!(forwarded_for(&headers, peer, true).as_deref(), Some("10.0.0.9"));
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.2"));
        assert_eq!(
            forwarded_for(&headers, peer, true).as_deref(),
            Some("203.0.113.7, 198.51.100.2, 10.0.0.9")
        );
        assert_eq!(forwarded_for(&headers, None, true).as_deref(), Some("203.0.113.7, 198.51.100.2"));
        assert_eq!(forwarded_for(&headers, peer, false).as_deref(), Some("10.0.0.9"));
        assert_eq!(forwarded_for(&headers, None, false), None);
    }

    #[test]
    fn a_forwarded_element_quotes_ipv6_and_the_host() {
        let v4 = forwarded_element(Some("10.0.0.9"), "http", "ota.example:8080");
        assert_eq!(v4, r#"for=10.0.0.9;proto=http;host="ota.example:8080""#);
        let v6 = forwarded_element(Some("2001:db8::7"), "https", r#"a"b\c"#);
        assert_eq!(v6, r#"for="[2001:db8::7]";proto=https;host="a\"b\\c""#);
        assert_eq!(forwarded_element(Some("x;for=1"), "http", "h"), r#"for=unknown;proto=http;host="h""#);
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
    fn scheme_and_host_come_from_a_trusted_proxys_last_value_else_the_connection() {
        use actix_web::test::TestRequest;
        let plain = TestRequest::default().insert_header(("host", "ota.example:8080")).to_http_request();
        assert_eq!(client_scheme_and_host(&plain, true), Ok(("http", "ota.example:8080")));
        let behind_lb = TestRequest::default()
            .insert_header(("host", "10.0.0.5"))
            .insert_header(("x-forwarded-proto", "gopher, https"))
            .insert_header(("x-forwarded-host", "evil.example, api.nowatch.example"))
            .insert_header(("forwarded", "proto=https;host=ignored.example"))
            .to_http_request();
        assert_eq!(client_scheme_and_host(&behind_lb, true), Ok(("https", "api.nowatch.example")));
        assert_eq!(client_scheme_and_host(&behind_lb, false), Ok(("http", "10.0.0.5")));
        let absolute = TestRequest::default()
            .uri("https://ota.example/v1/user")
            .insert_header(("host", "a.example"))
            .to_http_request();
        assert_eq!(client_scheme_and_host(&absolute, false), Ok(("http", "a.example")));
        let smuggled =
            TestRequest::default().insert_header(("host", "evil.example,for=6.6.6.6")).to_http_request();
        assert!(client_scheme_and_host(&smuggled, false).is_err());
        let v6 = TestRequest::default().insert_header(("host", "[2001:db8::1]:8080")).to_http_request();
        assert_eq!(client_scheme_and_host(&v6, false), Ok(("http", "[2001:db8::1]:8080")));
    }

    #[test]
    fn the_client_ip_is_the_rightmost_untrusted_entry() {
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        assert_eq!(client_ip("6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.1", trusted), Some("203.0.113.7"));
        assert_eq!(client_ip("10.0.0.3, 10.0.0.1", trusted), Some("10.0.0.3"));
        assert_eq!(client_ip("garbage, 10.0.0.1", trusted), None);
        assert_eq!(client_ip("garbage, 203.0.113.7, 10.0.0.1", trusted), Some("203.0.113.7"));
        assert_eq!(client_ip("", trusted), None);
    }
}
