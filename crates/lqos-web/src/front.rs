//! The first thing every request meets: who is really asking, over what, and for which host.
//!
//! * [`Peer`]: the client's address and whether the browser's connection is HTTPS. The TCP
//!   peer is the client unless it is one of `[web] trusted_proxies`; then the right-most
//!   address of `X-Forwarded-For` that is not itself a trusted proxy is, and
//!   `X-Forwarded-Proto` / `X-Forwarded-Host` are believed. Anyone else's forwarding headers
//!   are ignored.
//! * DNS rebinding: the `Host` (or a trusted proxy's `X-Forwarded-Host`) must be an IP
//!   literal, `localhost`, or a name in [`crate::WebOptions::allowed_hosts`] (`"*"` accepts
//!   any). Otherwise the answer is 421 before any handler runs, so a page on another site
//!   whose name was re-pointed at this box can neither read the GUI nor the API.
//! * HTTPS answers carry `Strict-Transport-Security`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use crate::WebState;

/// `Strict-Transport-Security` sent on every HTTPS answer (one year).
pub const HSTS: &str = "max-age=31536000";

/// The request's real origin, as far as this server can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address; `None` without connection info (tests driving the router).
    pub ip: Option<IpAddr>,
    /// True when the browser talks HTTPS to us (directly, or to a trusted proxy that says so).
    pub secure: bool,
    /// The host the browser asked for (`Host`, or a trusted proxy's `X-Forwarded-Host`),
    /// with its port, lowercase.
    pub host: Option<String>,
}

impl Peer {
    /// True when the client is on this machine (loopback address).
    pub fn is_local(&self) -> bool {
        self.ip.is_some_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
    }
}

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    proxies.iter().any(|n| n.contains(&ip))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    // A repeated forwarding header is joined as a list, like a single comma-separated one.
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn last_header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Works out the [`Peer`] of a request that came from `tcp_peer` (pure, for tests).
pub fn resolve_peer(
    tcp_peer: Option<IpAddr>,
    headers: &HeaderMap,
    tls: bool,
    proxies: &[IpNet],
) -> Peer {
    let host = header_str(headers, header::HOST.as_str()).map(str::to_ascii_lowercase);
    let Some(peer) = tcp_peer else { return Peer { ip: None, secure: tls, host } };
    if !trusted(proxies, peer) {
        return Peer { ip: Some(peer), secure: tls, host };
    }
    // Walk X-Forwarded-For from the right: the first hop that is not a trusted proxy is the
    // client. Garbage ends the walk at the last trusted hop.
    let mut client = peer;
    for hop in last_header_values(headers, "x-forwarded-for").iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted(proxies, ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let proto = last_header_values(headers, "x-forwarded-proto").pop();
    let secure = tls || proto.is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let host = last_header_values(headers, "x-forwarded-host")
        .pop()
        .map(|h| h.to_ascii_lowercase())
        .or(host);
    Peer { ip: Some(client), secure, host }
}

/// The name part of a `Host` value (`name`, `name:port`, `[v6]:port`), lowercase.
pub fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// True when `host` (a `Host` header value) may be served: an IP literal, `localhost`, or a
/// name in `allowed` (`"*"` allows any).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']');
    let name = host_name(host).trim_end_matches('.');
    if name.is_empty() || !host.bytes().all(legal) {
        return false;
    }
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a == "*" || a.trim_end_matches('.').eq_ignore_ascii_case(name))
}

/// Middleware: resolves the [`Peer`], refuses unknown hosts, adds HSTS on HTTPS.
pub(crate) async fn front(State(state): State<WebState>, mut req: Request, next: Next) -> Response {
    let opts = state.opts();
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return (StatusCode::BAD_REQUEST, "more than one Host header\n").into_response();
    }
    let tcp = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let peer = resolve_peer(tcp, req.headers(), opts.tls, &opts.trusted_proxies);
    if let Some(host) = &peer.host
        && !host_allowed(host, &opts.allowed_hosts)
    {
        tracing::debug!(host = %host, "request for an unknown host refused");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this host name is not served here; add it to [web] allowed_hosts in lqos.conf\n",
        )
            .into_response();
    }
    let secure = peer.secure;
    req.extensions_mut().insert(peer);
    let mut resp = next.run(req).await;
    if secure {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    resp
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Peer>().cloned().unwrap_or(Peer {
            ip: None,
            secure: false,
            host: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["127.0.0.1/32".parse().expect("net")];
        let h = headers(&[
            ("host", "127.0.0.1:9123"),
            ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "Shaper.Example.NET"),
        ]);
        let via_proxy = resolve_peer(Some("127.0.0.1".parse().expect("ip")), &h, false, &proxies);
        assert_eq!(via_proxy.ip, Some("198.51.100.7".parse().expect("ip")));
        assert!(via_proxy.secure);
        assert_eq!(via_proxy.host.as_deref(), Some("shaper.example.net"));
        // The same headers from anyone else are ignored.
        let direct = resolve_peer(Some("192.0.2.1".parse().expect("ip")), &h, false, &proxies);
        assert_eq!(direct.ip, Some("192.0.2.1".parse().expect("ip")));
        assert!(!direct.secure);
        assert_eq!(direct.host.as_deref(), Some("127.0.0.1:9123"));
        // A forged left part does not matter: the right-most untrusted hop is the client.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, not-an-ip, 198.51.100.7")]);
        let p = resolve_peer(Some("127.0.0.1".parse().expect("ip")), &h, false, &proxies);
        assert_eq!(p.ip, Some("198.51.100.7".parse().expect("ip")));
    }

    #[test]
    fn only_ip_literals_localhost_and_listed_names_are_served() {
        let none: Vec<String> = vec![];
        for ok in ["10.0.0.1", "10.0.0.1:9123", "[2001:db8::1]:9123", "localhost:9123", "[::1]"] {
            assert!(host_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:9123",
            "",
            ":9123",
            "10.0.0.1.evil.com",
            "10.0.0.1/@evil.com",
        ] {
            assert!(!host_allowed(bad, &none), "{bad}");
        }
        let listed = vec!["Shaper.example.net".to_string()];
        assert!(host_allowed("shaper.example.net:9123", &listed));
        assert!(host_allowed("SHAPER.example.net.", &listed));
        assert!(!host_allowed("other.example.net", &listed));
        assert!(host_allowed("anything.example", &["*".to_string()]));
        assert!(!host_allowed("evil.example/x", &["*".to_string()]), "still a host name");
    }
}
